//! `GET /devices/{device_id}/profile`: a contact or group profile, detected from the JID.

use serde::Serialize;
use waedge_jid::{Jid, Kind};
use waedge_sdk::{Device, ErrorClass, ProfileExtras, Query};

use crate::links;

/// A profile, written as `{"type": "contact" | "group", "profile": {…}}`.
#[derive(Serialize)]
#[serde(tag = "type", content = "profile", rename_all = "lowercase")]
pub enum Profile {
    /// A user's profile.
    Contact(ContactProfile),
    /// A group's profile.
    Group(GroupProfile),
}

/// A contact profile. `None` fields are omitted: WhatsApp withheld them (privacy), for
/// `phone_jid`/`lid` no mapping is known, or no `verified_link` was made.
#[derive(Serialize)]
pub struct ContactProfile {
    jid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_jid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    picture_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    picture_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    push_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    business_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    devices: Option<Vec<String>>,
    /// The tenant's verified link of the contact (see [`links`](crate::links)), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_link: Option<links::Link>,
}

/// A group profile. Empty strings stand for a picture or description that is not set.
#[derive(Serialize)]
pub struct GroupProfile {
    jid: String,
    name: String,
    subject: String,
    description: String,
    picture_url: String,
    picture_id: String,
    participants: Vec<String>,
}

/// Serves the profile endpoint for `device`.
pub fn get(device: &Device, query: &Query) -> Result<Profile, ErrorClass> {
    let raw = query
        .get_non_empty("jid")
        .ok_or_else(|| ErrorClass::validation("`jid` is required: a phone number, phone JID, LID or group JID"))?;
    let jid = Jid::normalize(raw).map_err(|e| ErrorClass::validation(e.to_string()))?.without_device();
    let preview = query.flag("preview").map_err(ErrorClass::validation)?.unwrap_or(false);
    Ok(match jid.kind() {
        Kind::Contact => Profile::Contact(contact(device, &jid, preview)?),
        Kind::Group => Profile::Group(group(device, &jid, preview)?),
    })
}

fn contact(device: &Device, jid: &Jid, preview: bool) -> Result<ContactProfile, ErrorClass> {
    let text = jid.to_string();
    let extras = if preview { ProfileExtras::PICTURE | ProfileExtras::PREVIEW } else { ProfileExtras::PICTURE };
    // The host finds the names under the other identity of the same account too, linked only
    // by the mapping WhatsApp gave.
    let profile = device.get_contact_profile(&text, extras)?;
    let info = profile.info;
    let (phone_jid, lid) = if jid.is_lid() {
        (profile.lid_mapping.map(|m| m.phone_jid), Some(text.clone()))
    } else {
        (None, info.lid.clone().or(profile.lid_mapping.map(|m| m.lid)))
    };
    let (picture_url, picture_id) = match info.picture_id.as_deref() {
        None => (None, None),
        Some("") => (Some(String::new()), Some(String::new())),
        Some(_) => match profile.picture {
            Some(picture) => (Some(picture.url), Some(picture.id)),
            None => (Some(String::new()), Some(String::new())),
        },
    };
    let names = profile.names;
    let business_name = match info.is_business {
        None => None,
        Some(false) => Some(String::new()),
        Some(true) => Some(
            names
                .as_ref()
                .and_then(|c| c.business_name.clone())
                .or_else(|| info.verified_name.clone())
                .unwrap_or_default(),
        ),
    };
    let verified_link = links::of_profile(device, &text);
    Ok(ContactProfile {
        jid: text,
        phone_jid,
        lid,
        status: info.status,
        picture_url,
        picture_id,
        push_name: names.and_then(|c| c.push_name),
        business_name,
        verified_name: info.verified_name,
        devices: info.devices,
        verified_link,
    })
}

fn group(device: &Device, jid: &Jid, preview: bool) -> Result<GroupProfile, ErrorClass> {
    let text = jid.to_string();
    let group = device.get_group_info(&text)?;
    let picture = device.get_profile_picture(&text, preview)?;
    let (picture_url, picture_id) = picture.map(|p| (p.url, p.id)).unwrap_or_default();
    Ok(GroupProfile {
        jid: group.jid,
        name: group.subject.clone(),
        subject: group.subject,
        description: group.description.unwrap_or_default(),
        picture_url,
        picture_id,
        participants: group.participants,
    })
}

//! The two endpoints and their response shapes.

use serde::Serialize;
use waedge_jid::Jid;
use waedge_sdk::{BusinessProfile, Device, Error, ErrorClass, Query, whatsapp};

/// `data` of `GET /contacts/profile`.
#[derive(Serialize)]
pub struct Profile {
    jid: String,
    user_info: UserInfo,
    business_profile: Option<Business>,
}

/// `data` of `GET /contacts/profile-picture`.
#[derive(Serialize)]
pub struct Picture {
    jid: String,
    preview: bool,
    picture: Option<PictureData>,
}

/// `data.picture`, when there is one.
#[derive(Serialize)]
struct PictureData {
    id: String,
    url: String,
    direct_path: Option<String>,
}

/// `data.user_info`, in the field spelling the API document uses.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserInfo {
    status: String,
    #[serde(rename = "PictureID")]
    picture_id: String,
    devices: Vec<String>,
    verified_name: Option<String>,
}

/// `data.business_profile` for business accounts.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Business {
    #[serde(rename = "JID")]
    jid: String,
    description: String,
    email: String,
    websites: Vec<String>,
    categories: Vec<Category>,
    address: String,
    business_hours_time_zone: String,
    business_hours: Vec<Hours>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Category {
    #[serde(rename = "ID")]
    id: String,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Hours {
    day_of_week: String,
    mode: String,
    open_time: Option<u32>,
    close_time: Option<u32>,
}

impl From<BusinessProfile> for Business {
    fn from(profile: BusinessProfile) -> Self {
        Business {
            jid: profile.jid,
            description: profile.description,
            email: profile.email.unwrap_or_default(),
            websites: profile.websites,
            categories: profile.categories.into_iter().map(|c| Category { id: c.id, name: c.name }).collect(),
            address: profile.address.unwrap_or_default(),
            business_hours_time_zone: profile.time_zone.unwrap_or_default(),
            business_hours: profile
                .hours
                .into_iter()
                .map(|h| Hours {
                    day_of_week: h.day_of_week.as_str().to_string(),
                    mode: h.mode.as_str().to_string(),
                    open_time: h.open_time,
                    close_time: h.close_time,
                })
                .collect(),
        }
    }
}

/// `GET /contacts/profile`.
pub fn user_profile(device: &str, contact: &Jid) -> Result<Profile, ErrorClass> {
    // Two calls, not get-contact-profile: this endpoint shows no names or LID mapping, and a
    // failure of those look-ups must not fail it.
    let jid = contact.to_string();
    let device = open(device)?;
    let info = device
        .get_user_info(std::slice::from_ref(&jid))
        .map_err(api_error)?
        .into_iter()
        .next()
        .ok_or_else(|| not_on_whatsapp(&jid))?;
    let business_profile = match info.is_business {
        Some(true) => device.get_business_profile(&jid).map_err(api_error)?.map(Business::from),
        _ => None,
    };
    let user_info = UserInfo {
        status: info.status.unwrap_or_default(),
        picture_id: info.picture_id.unwrap_or_default(),
        devices: info.devices.unwrap_or_default(),
        verified_name: info.verified_name.filter(|name| !name.is_empty()),
    };
    Ok(Profile { jid, user_info, business_profile })
}

/// `GET /contacts/profile-picture`.
pub fn picture(device: &str, contact: &Jid, query: &Query) -> Result<Picture, ErrorClass> {
    let preview = query.flag("preview").map_err(ErrorClass::validation)?.unwrap_or(false);
    let jid = contact.to_string();
    let picture = open(device)?.get_profile_picture(&jid, preview).map_err(api_error)?;
    let picture = picture.map(|p| PictureData { id: p.id, url: p.url, direct_path: p.direct_path });
    Ok(Picture { jid, preview, picture })
}

/// The user's device, opened for the look-ups (after the request is validated).
fn open(device: &str) -> Result<Device, ErrorClass> {
    whatsapp::open_device(device).map_err(api_error)
}

fn not_on_whatsapp(jid: &str) -> ErrorClass {
    ErrorClass::new(404, "NOT_FOUND", format!("{jid} is not on WhatsApp"))
}

/// Host errors in this API's vocabulary: identifier problems are validation errors.
fn api_error(error: Error) -> ErrorClass {
    match error {
        Error::InvalidJid(reason) => ErrorClass::validation(reason),
        other => ErrorClass::from(other),
    }
}

//! The two endpoints and their response shapes.

use serde::Serialize;
use waedge_jid::Jid;
use waedge_sdk::{BusinessProfile, Error, ErrorClass, Query, whatsapp};

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
                    day_of_week: h.day_of_week,
                    mode: h.mode,
                    open_time: h.open_time,
                    close_time: h.close_time,
                })
                .collect(),
        }
    }
}

/// `GET /contacts/profile`.
pub fn user_profile(device: &str, contact: &Jid, _query: &Query) -> Result<serde_json::Value, ErrorClass> {
    let jid = contact.to_string();
    let info = whatsapp::get_user_info(device, std::slice::from_ref(&jid))
        .map_err(api_error)?
        .into_iter()
        .next()
        .ok_or_else(|| not_on_whatsapp(&jid))?;
    let business_profile = if info.is_business == Some(true) {
        whatsapp::get_business_profile(device, &jid).map_err(api_error)?.map(Business::from)
    } else {
        None
    };
    let user_info = UserInfo {
        status: info.status.unwrap_or_default(),
        picture_id: info.picture_id.unwrap_or_default(),
        devices: info.devices.unwrap_or_default(),
        verified_name: info.verified_name.filter(|name| !name.is_empty()),
    };
    Ok(serde_json::json!({ "jid": jid, "user_info": user_info, "business_profile": business_profile }))
}

/// `GET /contacts/profile-picture`.
pub fn picture(device: &str, contact: &Jid, query: &Query) -> Result<serde_json::Value, ErrorClass> {
    let preview = query.flag("preview").map_err(ErrorClass::validation)?.unwrap_or(false);
    let jid = contact.to_string();
    let picture = whatsapp::get_profile_picture(device, &jid, preview).map_err(api_error)?;
    let picture = picture.map(|p| serde_json::json!({ "id": p.id, "url": p.url, "direct_path": p.direct_path }));
    Ok(serde_json::json!({ "jid": jid, "preview": preview, "picture": picture }))
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

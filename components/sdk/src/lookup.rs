//! The look-ups most handlers start with: a contact named in the query, and what WhatsApp
//! knows about it.

use crate::{Device, ErrorClass, Request, UserInfo};

/// The query parameter `name` as a user JID: a phone number as people write it
/// (`+62 812-3456-7890`), a phone JID or a LID, normalised; a 400 when it is missing or is
/// none of those.
pub fn user_jid(request: &Request, name: &str) -> Result<String, ErrorClass> {
    let value = request
        .query()
        .get_non_empty(name)
        .ok_or_else(|| ErrorClass::validation(format!("give the contact as ?{name}=")))?;
    let jid = waedge_jid::Jid::normalize(value).map_err(|e| ErrorClass::validation(format!("{name}: {e}")))?;
    if jid.is_group() {
        return Err(ErrorClass::validation(format!("{name}: a group is not a contact")));
    }
    Ok(jid.to_string())
}

/// What WhatsApp tells `device` about the user `jid`; a 404 when it is not on WhatsApp.
pub fn user_info(device: &Device, jid: &str) -> Result<UserInfo, ErrorClass> {
    device
        .get_user_info(&[jid.to_string()])?
        .into_iter()
        .next()
        .ok_or_else(|| ErrorClass::new(404, "NOT_FOUND", "this contact is not on WhatsApp"))
}

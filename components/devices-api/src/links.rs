//! Verified LID ↔ phone links, as the document advises before merging a LID's thread with a
//! phone number's ("link them only with a reliable signal"):
//!
//! - `POST /devices/{device_id}/lid-verifications` sends a one-time code to a phone number
//!   (`202`, the verification, `pending`; the code itself is never shown);
//! - `GET /devices/{device_id}/lid-verifications/{id}` shows how far it got (`linked` once a
//!   LID answered with the code, with the LID);
//! - `GET /devices/{device_id}/lid-links?jid=…` is the tenant's verified link of a LID or phone
//!   number.

use serde::{Deserialize, Serialize};
use waedge_jid::Jid;
use waedge_sdk::{
    Device, ErrorClass, LidVerification, LidVerificationRequest, LidVerificationState, Query, Request, Response,
    VerifiedLink,
};

/// The longest text, in bytes (the host's limit).
const MAX_TEXT_BYTES: usize = 4_096;

/// The text sent when the request names none.
const DEFAULT_TEXT: &str = "Your verification code is {code}. Reply with it to confirm this number.";

/// The body of a verification.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// A phone number or phone JID.
    phone: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<u32>,
}

/// A verification as the API shows it.
#[derive(Serialize)]
pub struct Verification {
    id: String,
    phone_jid: String,
    state: &'static str,
    message_id: String,
    lid: Option<String>,
    created_at: String,
    expires_at: String,
    linked_at: Option<String>,
}

impl From<LidVerification> for Verification {
    fn from(verification: LidVerification) -> Self {
        let state = match verification.state {
            LidVerificationState::Pending => "pending",
            LidVerificationState::Linked => "linked",
            LidVerificationState::Expired => "expired",
        };
        Verification {
            id: verification.id,
            phone_jid: verification.phone_jid,
            state,
            message_id: verification.message_id,
            lid: verification.lid,
            created_at: verification.created_at,
            expires_at: verification.expires_at,
            linked_at: verification.linked_at,
        }
    }
}

/// A verified link as the API shows it (in a profile too).
#[derive(Serialize)]
pub struct Link {
    lid: String,
    phone_jid: String,
    device: String,
    verification_id: String,
    linked_at: String,
}

impl From<VerifiedLink> for Link {
    fn from(link: VerifiedLink) -> Self {
        Link {
            lid: link.lid,
            phone_jid: link.phone_jid,
            device: link.device,
            verification_id: link.verification,
            linked_at: link.linked_at,
        }
    }
}

/// `POST /devices/{device_id}/lid-verifications`.
pub fn start(device: &Device, request: &Request) -> Result<Response, ErrorClass> {
    let body: StartBody = serde_json::from_slice(request.body()).map_err(|e| {
        ErrorClass::validation(format!(
            "the body must be JSON {{\"phone\": …, \"text\": \"… {{code}} …\", \"ttl_seconds\": …}}: {e}"
        ))
    })?;
    let phone = Jid::normalize(&body.phone).map_err(|e| ErrorClass::validation(format!("`phone`: {e}")))?;
    if !phone.is_phone() {
        return Err(ErrorClass::validation("`phone`: name a phone number or phone JID; the LID is what answers"));
    }
    let text = body.text.unwrap_or_else(|| DEFAULT_TEXT.to_string());
    if text.matches("{code}").count() != 1 || text.len() > MAX_TEXT_BYTES {
        return Err(ErrorClass::validation(format!(
            "`text` must hold {{code}} exactly once, where the code goes, in at most {MAX_TEXT_BYTES} bytes"
        )));
    }
    if body.ttl_seconds.is_some_and(|ttl| !(60..=3_600).contains(&ttl)) {
        return Err(ErrorClass::validation("`ttl_seconds` must be 60 to 3600 (600 when left out)"));
    }
    let request =
        LidVerificationRequest { phone_jid: phone.without_device().to_string(), text, ttl_seconds: body.ttl_seconds };
    let verification = device.start_lid_verification(&request)?;
    Ok(Response::json(202, &serde_json::json!({ "data": Verification::from(verification) })))
}

/// `GET /devices/{device_id}/lid-verifications/{id}`.
pub fn get(device: &Device, id: &str) -> Result<Verification, ErrorClass> {
    let message = format!("this device started no LID verification with id `{id}`");
    let found = device.get_lid_verification(id)?;
    found.map(Verification::from).ok_or_else(|| ErrorClass::new(404, "VERIFICATION_NOT_FOUND", message))
}

/// `GET /devices/{device_id}/lid-links?jid=…`.
pub fn link(device: &Device, query: &Query) -> Result<Link, ErrorClass> {
    let raw = query
        .get_non_empty("jid")
        .ok_or_else(|| ErrorClass::validation("`jid` is required: a LID, phone number or phone JID"))?;
    let jid = Jid::normalize(raw).map_err(|e| ErrorClass::validation(e.to_string()))?.without_device();
    if !(jid.is_phone() || jid.is_lid()) {
        return Err(ErrorClass::validation("`jid`: name a LID or a phone number; groups have no link"));
    }
    let message = format!("no verified link of {jid}: start a LID verification to its phone number");
    let found = device.get_verified_link(&jid.to_string())?;
    found.map(Link::from).ok_or_else(|| ErrorClass::new(404, "LINK_NOT_FOUND", message))
}

/// The verified link a profile of `jid` shows, if the tenant has one; a profile is shown
/// without it when the link cannot be read.
pub fn of_profile(device: &Device, jid: &str) -> Option<Link> {
    device.get_verified_link(jid).ok().flatten().map(Link::from)
}

//! The benchmarks' baseline (cargo feature `bench`; never part of a release build).
//!
//! [`NativeProfile`] is a native port of the built-in devices API's contact profile
//! (`GET {prefix}/devices/{device}/profile?jid=…`), served by routes naming
//! `native:devices-profile` ([`NAME`]) in the builds that register it (`app::gateway`).
//! Everything around it — tenant selection, routing, admission, the body limit, the
//! deadline, the access log, the metrics — is what a component request gets, and it makes
//! the same host calls on the same cached sessions and writes the same JSON, so the
//! difference between a route to it and a route to `builtin:devices-api` is the cost of the
//! Wasm edge. It serves only what the benchmark asks (a contact's profile; query values taken
//! as sent) and answers anything else with an error.
//!
//! It is a deliberate copy of `components/devices-api/src/profile.rs` in native code (a
//! baseline cannot share the code it is measured against); both benchmarks assert that the
//! two answer the same JSON, so a change to one that is not made to the other fails
//! `cargo test`.

use async_trait::async_trait;
use http::StatusCode;
use http::request::Parts;
use hyper::Response;
use serde::Serialize;
use waedge_contract::types::{Error, ProfileExtras};
use waedge_jid::Jid;

use crate::bearer::bearer;
use crate::body::ResponseBody;
use crate::capability::Capabilities;
use crate::gateway::{error, json_response};
use crate::tenancy::native::NativeHandler;

/// The name routes give it: `native:devices-profile`.
pub const NAME: &str = "devices-profile";

/// The native contact profile endpoint.
pub struct NativeProfile;

#[async_trait]
impl NativeHandler for NativeProfile {
    async fn serve(&self, capabilities: Capabilities, request: &Parts) -> Response<ResponseBody> {
        match profile(&capabilities, request).await {
            Ok(profile) => json_response(StatusCode::OK, &Envelope { data: Data { r#type: "contact", profile } }),
            Err((status, code, message)) => error(status, code, &message),
        }
    }
}

/// A failed request: status, error code and message.
type Failure = (StatusCode, &'static str, String);

/// A successful answer: `{"data": {"type": "contact", "profile": {…}}}`.
#[derive(Serialize)]
struct Envelope {
    data: Data,
}

#[derive(Serialize)]
struct Data {
    r#type: &'static str,
    profile: ContactProfile,
}

/// The contact profile, with the component's fields in the component's order.
#[derive(Serialize)]
struct ContactProfile {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_link: Option<Link>,
}

/// The tenant's verified link of the contact, as the component shows it.
#[derive(Serialize)]
struct Link {
    lid: String,
    phone_jid: String,
    device: String,
    verification_id: String,
    linked_at: String,
}

async fn profile(capabilities: &Capabilities, request: &Parts) -> Result<ContactProfile, Failure> {
    let prefix = capabilities.request.route_prefix.trim_end_matches('/');
    let path = request.uri.path().strip_prefix(prefix).unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["devices", device, "profile"] = segments.as_slice() else {
        return Err((StatusCode::NOT_FOUND, "NOT_FOUND", format!("no native endpoint at `{}`", request.uri.path())));
    };
    let device = device.to_string();
    if request.method != http::Method::GET {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "use GET".into()));
    }
    let unauthorized = || (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "missing or invalid bearer token".to_string());
    let token = bearer(&request.headers).ok_or_else(unauthorized)?.to_string();
    let principal = capabilities.principal(&token).ok_or_else(unauthorized)?;
    capabilities.session(&device).map_err(failure)?;
    if !principal.devices.contains(&device) {
        return Err((StatusCode::FORBIDDEN, "FORBIDDEN", format!("this token may not use device `{device}`")));
    }
    let raw = request.uri.query().unwrap_or_default().split('&').find_map(|pair| pair.strip_prefix("jid="));
    let raw = raw.ok_or_else(|| (StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "`jid` is required".to_string()))?;
    let jid = Jid::normalize(raw).map_err(|e| (StatusCode::BAD_REQUEST, "VALIDATION_ERROR", e.to_string()))?;
    let jid = jid.without_device();
    if jid.is_group() {
        return Err((StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "the native baseline serves contacts only".into()));
    }
    contact(capabilities, &device, &jid).await
}

/// The contact profile, field for field as the built-in component builds it.
async fn contact(capabilities: &Capabilities, device: &str, jid: &Jid) -> Result<ContactProfile, Failure> {
    let text = jid.to_string();
    let session = capabilities.session(device).map_err(failure)?;
    let profile = capabilities.contact_profile(&*session, &text, ProfileExtras::PICTURE).await.map_err(failure)?;
    // Like the component: a link that cannot be read is left out.
    let verified_link = capabilities.verified_link(&*session, &text).await.ok().flatten().map(|link| Link {
        lid: link.lid,
        phone_jid: link.phone_jid,
        device: link.device,
        verification_id: link.verification,
        linked_at: link.linked_at,
    });
    let (info, mapping, names) = (profile.info, profile.lid_mapping, profile.names);
    let (phone_jid, lid) = if jid.is_lid() {
        (mapping.map(|m| m.phone_jid), Some(text.clone()))
    } else {
        (None, info.lid.clone().or(mapping.map(|m| m.lid)))
    };
    let (picture_url, picture_id) = match (info.picture_id.as_deref(), profile.picture) {
        (None, _) => (None, None),
        (Some(_), Some(picture)) => (Some(picture.url), Some(picture.id)),
        (Some(_), None) => (Some(String::new()), Some(String::new())),
    };
    let business_name = match info.is_business {
        None => None,
        Some(false) => Some(String::new()),
        Some(true) => Some(
            (names.as_ref().and_then(|c| c.business_name.clone()).or_else(|| info.verified_name.clone()))
                .unwrap_or_default(),
        ),
    };
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

fn failure(error: Error) -> Failure {
    match error {
        Error::DeviceNotFound => (StatusCode::NOT_FOUND, "DEVICE_NOT_FOUND", "no such device for this tenant".into()),
        Error::DeviceNotConnected(state) => {
            (StatusCode::SERVICE_UNAVAILABLE, "DEVICE_NOT_CONNECTED", format!("the device is {state}"))
        }
        Error::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", "WhatsApp has no such user or group".into()),
        other => (StatusCode::BAD_GATEWAY, "UPSTREAM_ERROR", format!("{other:?}")),
    }
}

//! The built-in devices API, served exactly as `seeds/devices-api.md` specifies:
//!
//! - `GET /devices/{device_id}/profile?jid=…[&preview=true]` — a contact or group profile;
//! - `GET /devices/{device_id}/groups` — every group the device participates in;
//!
//! and, beyond the document, messages ([`messages`]):
//!
//! - `POST /devices/{device_id}/messages` — sends a text;
//! - `GET /devices/{device_id}/messages/{message_id}` — how far a sent message got;
//!
//! and verified LID ↔ phone links ([`links`]), which profiles show too:
//!
//! - `POST /devices/{device_id}/lid-verifications` — sends a one-time code to a phone number;
//! - `GET /devices/{device_id}/lid-verifications/{id}` — whether a LID answered it;
//! - `GET /devices/{device_id}/lid-links?jid=…` — the verified link of a LID or phone number.
//!
//! Successful responses are `{"data": …}`; errors are
//! `{"error": {"code": "…", "message": "…"}}` with a fitting HTTP status.

mod links;
mod messages;
mod profile;

use serde::Serialize;
use waedge_sdk::{Device, ErrorClass, Handler, Request, Response, authenticate, require_device, whatsapp};

struct DevicesApi;

impl Handler for DevicesApi {
    fn handle(request: Request) -> Response {
        route(&request).unwrap_or_else(Response::from)
    }
}

waedge_sdk::export_handler!(DevicesApi);

/// A successful answer: `{"data": …}`.
#[derive(Serialize)]
struct Envelope {
    data: Data,
}

/// What an endpoint answers.
#[derive(Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant, reason = "one value per request, moved once: a box would only add an allocation")]
enum Data {
    Profile(profile::Profile),
    Groups(Groups),
    Message(messages::Message),
    Verification(links::Verification),
    Link(links::Link),
}

/// The endpoints, by the path after `/devices/{device_id}`.
enum Endpoint<'a> {
    Profile,
    Groups,
    Messages,
    Message(&'a str),
    Verifications,
    Verification(&'a str),
    Link,
}

fn route(request: &Request) -> Result<Response, ErrorClass> {
    let segments = request.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (device_id, endpoint) = match segments.as_slice() {
        ["devices", device_id, "profile"] => (*device_id, Endpoint::Profile),
        ["devices", device_id, "groups"] => (*device_id, Endpoint::Groups),
        ["devices", device_id, "messages"] => (*device_id, Endpoint::Messages),
        ["devices", device_id, "messages", id] => (*device_id, Endpoint::Message(id)),
        ["devices", device_id, "lid-verifications"] => (*device_id, Endpoint::Verifications),
        ["devices", device_id, "lid-verifications", id] => (*device_id, Endpoint::Verification(id)),
        ["devices", device_id, "lid-links"] => (*device_id, Endpoint::Link),
        _ => return Err(ErrorClass::no_route(request.path())),
    };
    let method = if matches!(endpoint, Endpoint::Messages | Endpoint::Verifications) { "POST" } else { "GET" };
    if request.method() != method {
        return Err(ErrorClass::method_not_allowed(request.method(), &[method]));
    }
    let principal = authenticate(request)?;
    // Unknown to this tenant (404) before not granted to this user (403): a token cannot
    // probe another tenant's device ids.
    let device = whatsapp::open_device(device_id)?;
    require_device(&principal, device_id)?;
    let data = match endpoint {
        Endpoint::Profile => Data::Profile(profile::get(&device, request.query())?),
        Endpoint::Groups => Data::Groups(groups(&device)?),
        Endpoint::Messages => return messages::send(&device, request),
        Endpoint::Message(id) => Data::Message(messages::get(&device, id)?),
        Endpoint::Verifications => return links::start(&device, request),
        Endpoint::Verification(id) => Data::Verification(links::get(&device, id)?),
        Endpoint::Link => Data::Link(links::link(&device, request.query())?),
    };
    Ok(Response::json(200, &Envelope { data }))
}

/// One entry of `GET /devices/{device_id}/groups`.
#[derive(Serialize)]
struct GroupSummary {
    jid: String,
    name: String,
    subject: String,
    description: String,
    participant_count: u32,
    is_announce: bool,
    is_locked: bool,
    is_ephemeral: bool,
    is_join_approval_required: bool,
}

/// `GET /devices/{device_id}/groups`.
#[derive(Serialize)]
struct Groups {
    groups: Vec<GroupSummary>,
    count: usize,
}

fn groups(device: &Device) -> Result<Groups, ErrorClass> {
    let groups: Vec<GroupSummary> = device
        .list_joined_groups()?
        .into_iter()
        .map(|group| GroupSummary {
            jid: group.jid,
            name: group.subject.clone(),
            subject: group.subject,
            description: group.description.unwrap_or_default(),
            participant_count: group.participant_count,
            is_announce: group.is_announce,
            is_locked: group.is_locked,
            is_ephemeral: group.is_ephemeral,
            is_join_approval_required: group.is_join_approval_required,
        })
        .collect();
    Ok(Groups { count: groups.len(), groups })
}

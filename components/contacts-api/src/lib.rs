//! The built-in contacts API, served exactly as `seeds/contacts-api.md` specifies:
//!
//! - `GET /contacts/profile?jid=…|number=…` — user info and, for business accounts, the
//!   business profile;
//! - `GET /contacts/profile-picture?jid=…|number=…[&preview=true]` — the profile picture.
//!
//! The bearer token is a per-user API token: it names the tenant, the user and the device the
//! lookups run on (the user's first device). Responses are
//! `{"success": true, "data": …}`; errors are
//! `{"success": false, "error": "…", "error_code": "…", "timestamp": "<RFC 3339 UTC>"}`.

mod profile;

use serde::Serialize;
use waedge_jid::Jid;
use waedge_sdk::{ErrorClass, Handler, Principal, Query, Request, Response, authenticate};

struct ContactsApi;

impl Handler for ContactsApi {
    fn handle(request: Request) -> Response {
        match route(&request) {
            Ok(data) => Response::json(200, &Success { success: true, data }),
            Err(error) => error.respond(&Failure {
                success: false,
                error: &error.message,
                error_code: error.code,
                timestamp: waedge_sdk::now().to_rfc3339(),
            }),
        }
    }
}

waedge_sdk::export_handler!(ContactsApi);

/// A successful answer: `{"success": true, "data": …}`.
#[derive(Serialize)]
struct Success {
    success: bool,
    data: Data,
}

/// A failed answer, in this API's envelope.
#[derive(Serialize)]
struct Failure<'a> {
    success: bool,
    error: &'a str,
    error_code: &'static str,
    timestamp: String,
}

/// What an endpoint answers.
#[derive(Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant, reason = "one value per request, moved once: a box would only add an allocation")]
enum Data {
    Profile(profile::Profile),
    Picture(profile::Picture),
}

/// The endpoints.
enum Endpoint {
    Profile,
    Picture,
}

fn route(request: &Request) -> Result<Data, ErrorClass> {
    let endpoint = match request.path().trim_end_matches('/') {
        "/contacts/profile" => Endpoint::Profile,
        "/contacts/profile-picture" => Endpoint::Picture,
        _ => return Err(ErrorClass::no_route(request.path())),
    };
    if request.method() != "GET" {
        return Err(ErrorClass::method_not_allowed(request.method(), &["GET"]));
    }
    let principal = authenticate(request)?;
    let device = user_device(&principal)?;
    let contact = contact_jid(request.query())?;
    Ok(match endpoint {
        Endpoint::Profile => Data::Profile(profile::user_profile(device, &contact)?),
        Endpoint::Picture => Data::Picture(profile::picture(device, &contact, request.query())?),
    })
}

/// The device a user's lookups run on: the first device the token grants.
fn user_device(principal: &Principal) -> Result<&str, ErrorClass> {
    principal.devices.first().map(String::as_str).ok_or_else(|| {
        ErrorClass::new(403, "FORBIDDEN", "this token is not allowed to use any device; ask the operator to grant one")
    })
}

/// The contact a request is about: `jid` if given, else `number`. Groups are refused.
fn contact_jid(query: &Query) -> Result<Jid, ErrorClass> {
    let jid = match (query.get_non_empty("jid"), query.get_non_empty("number")) {
        (Some(jid), _) => Jid::normalize(jid),
        (None, Some(number)) => Jid::from_phone_number(number),
        (None, None) => {
            return Err(ErrorClass::validation("either `jid` or `number` is required, e.g. ?number=5511999999999"));
        }
    }
    .map_err(|e| ErrorClass::validation(e.to_string()))?;
    if jid.is_group() {
        return Err(ErrorClass::validation(
            "a group JID has no contact profile: send a phone number, phone JID or LID",
        ));
    }
    Ok(jid.without_device())
}

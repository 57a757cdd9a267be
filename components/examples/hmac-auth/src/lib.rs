//! Example plugin: an alternative auth scheme. Server-to-server clients sign each request
//! with a shared secret instead of sending a bearer token:
//!
//! ```text
//! x-waedge-timestamp: 1790000000                       (unix seconds, within 5 minutes)
//! x-waedge-signature: hex(HMAC-SHA256(secret, "GET\n/signed/main/groups\n1790000000"))
//! ```
//!
//! The tenant's settings hold the secret (`hmac_secret`) and the devices signed requests may
//! use (`hmac_devices`, comma-separated). `GET /signed/{device}/groups` (routed at `/signed`,
//! or any other prefix; the signature covers the whole path) then answers like the devices
//! API's groups endpoint.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use waedge_sdk::{ErrorClass, Handler, Request, Response, config, now, whatsapp};

/// How far a request's timestamp may be from the gateway's clock, in seconds.
const MAX_SKEW: i64 = 300;

struct HmacAuth;

impl Handler for HmacAuth {
    fn handle(request: Request) -> Response {
        serve(&request).unwrap_or_else(Response::from)
    }
}

fn serve(request: &Request) -> Result<Response, ErrorClass> {
    let segments = request.route_segments();
    let [device, endpoint] = segments.as_slice() else { return Err(ErrorClass::no_route(request.path())) };
    if endpoint != "groups" {
        return Err(ErrorClass::no_route(request.path()));
    }
    verify(request)?;
    let allowed = config::get("hmac_devices").unwrap_or_default();
    if !allowed.split(',').any(|d| d.trim() == device) {
        return Err(ErrorClass::new(403, "FORBIDDEN", format!("signed requests may not use device `{device}`")));
    }
    let groups = whatsapp::open_device(device)?.list_joined_groups()?;
    let groups: Vec<_> = groups
        .iter()
        .map(|g| json!({ "jid": g.jid, "subject": g.subject, "participant_count": g.participants.len() }))
        .collect();
    Ok(Response::json(200, &json!({ "data": { "count": groups.len(), "groups": groups } })))
}

/// Checks the timestamp and the signature of `request`.
fn verify(request: &Request) -> Result<(), ErrorClass> {
    let unauthorized = |message: &str| ErrorClass::new(401, "UNAUTHORIZED", message);
    let secret =
        config::get("hmac_secret").ok_or_else(|| unauthorized("signed requests are not set up for this tenant"))?;
    let timestamp = request.header("x-waedge-timestamp").ok_or_else(|| unauthorized("missing x-waedge-timestamp"))?;
    let seconds: i64 = timestamp.parse().map_err(|_| unauthorized("x-waedge-timestamp must be unix seconds"))?;
    if (now().0 as i64 - seconds).abs() > MAX_SKEW {
        return Err(unauthorized("x-waedge-timestamp is more than 5 minutes from the gateway's clock"));
    }
    let signature = request.header("x-waedge-signature").ok_or_else(|| unauthorized("missing x-waedge-signature"))?;
    let signature = hex::decode(signature).map_err(|_| unauthorized("x-waedge-signature must be hex"))?;
    let path_and_query = match request.query_string() {
        Some(query) => format!("{}?{query}", request.path()),
        None => request.path().to_string(),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{}\n{path_and_query}\n{timestamp}", request.method()).as_bytes());
    // Compared in constant time.
    mac.verify_slice(&signature).map_err(|_| unauthorized("the signature does not match"))
}

waedge_sdk::export_handler!(HmacAuth);

//! `/v1/tenants/{tenant}/events`: the tenant's events from its outbox, oldest first, a page
//! at a time.

use http::{Method, StatusCode};
use serde_json::json;

use super::{Admin, Answer, Call, json, no_endpoint};

/// How many events a page holds unless the call asks for fewer.
const PAGE: usize = 100;
/// The most events a page holds.
const MAX_PAGE: usize = 1000;

/// Answers `/v1/tenants/{tenant}/events`.
pub async fn answer(admin: &Admin, call: &Call, tenant: &str) -> Answer {
    if call.method != Method::GET {
        return Err(no_endpoint(call));
    }
    let limit = call.limit(PAGE, MAX_PAGE)?;
    let after = call.query("after");
    let (t, from) = (tenant.to_string(), after.clone());
    let events = admin.run(move |store| store.events(&t, from.as_deref(), limit)).await?;
    // Where the next page starts: after this one's last event, or where this one started.
    let next = events.last().map(|event| event.id.clone()).or(after);
    json(StatusCode::OK, &json!({ "events": events, "next": next }))
}

//! `/v1/tenants/{tenant}/events`: the tenant's events from its outbox, oldest first, a page
//! at a time; and `/v1/tenants/{tenant}/events/stream`, the same events as a
//! `text/event-stream` that follows the outbox, for clients that prefer pulling to webhooks.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use waedge_device::mailbox::Subscription;
use waedge_store::events::EventRecord;

use super::{Admin, Answer, Call, Failure, json, no_endpoint};

/// How many events a page holds unless the call asks for fewer.
const PAGE: usize = 100;
/// The most events a page holds.
const MAX_PAGE: usize = 1000;
/// How long an idle stream waits for a wake-up before it looks for new events anyway.
const POLL: Duration = Duration::from_secs(1);
/// How often an idle stream sends a comment line, so that proxies keep it open and a client
/// that went away is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The most event streams open at once on the admin listener; more are refused with 503.
pub const MAX_STREAMS: usize = 64;

/// Answers `/v1/tenants/{tenant}/events` and `/v1/tenants/{tenant}/events/stream`.
pub async fn answer(admin: &Admin, call: &Call, tenant: &str, rest: &[&str]) -> Answer {
    if call.method != Method::GET {
        return Err(no_endpoint(call));
    }
    match rest {
        [] => list(admin, call, tenant).await,
        ["stream"] => stream(admin, call, tenant).await,
        _ => Err(no_endpoint(call)),
    }
}

/// A page of events after the `after` event.
async fn list(admin: &Admin, call: &Call, tenant: &str) -> Answer {
    let limit = call.limit(PAGE, MAX_PAGE)?;
    let after = call.query("after");
    let events = page(admin, tenant, after.clone(), limit).await?;
    // Where the next page starts: after this one's last event, or where this one started.
    let next = events.last().map(|event| event.id.clone()).or(after);
    json(StatusCode::OK, &json!({ "events": events, "next": next }))
}

/// Up to `limit` events of `tenant` after the event `after`.
async fn page(admin: &Admin, tenant: &str, after: Option<String>, limit: usize) -> Result<Vec<EventRecord>, Failure> {
    let tenant = tenant.to_string();
    admin.run(move |store| store.events(&tenant, after.as_deref(), limit)).await
}

/// Every event after the `after` query parameter or the `Last-Event-ID` header (from the first
/// without either), then each new one as it is recorded: `id:` is the event's id (a client's
/// `EventSource` resumes after it by itself), `event:` its type, `data:` the event as the list
/// shows it. The stream ends when the tenant is deleted.
async fn stream(admin: &Admin, call: &Call, tenant: &str) -> Answer {
    let permit = admin.streams.clone().try_acquire_owned().map_err(|_| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_STREAMS",
            format!("{MAX_STREAMS} event streams are open on this listener; close one, or page through the events"),
        )
    })?;
    let after = call.query("after").or_else(|| call.last_event_id.clone());
    // An unknown cursor is refused now, with the list's answer, not in the middle of a stream.
    let first = page(admin, tenant, after.clone(), PAGE).await?;
    let (sender, body) = Channel::<Bytes, std::convert::Infallible>::new(PAGE);
    let appended = admin.webhooks.appended().subscribe(tenant, None);
    tokio::spawn(follow(admin.clone(), tenant.to_string(), after, first, sender, (appended, permit)));
    let mut response = http::Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Writes `first`, then every event recorded after it, to `sender` until the client goes
/// away or the tenant is deleted; woken by `appended`, and holding its place among the streams.
async fn follow(
    admin: Admin,
    tenant: String,
    mut after: Option<String>,
    mut events: Vec<EventRecord>,
    mut sender: http_body_util::channel::Sender<Bytes, std::convert::Infallible>,
    (mut appended, _place): (Subscription, OwnedSemaphorePermit),
) {
    let mut idle = Duration::ZERO;
    loop {
        if events.is_empty() {
            // A wake-up missed (or one of the tenant's events that tells no one) waits a poll.
            let _ = tokio::time::timeout(POLL, appended.changed()).await;
            idle += POLL;
            if idle >= KEEP_ALIVE {
                idle = Duration::ZERO;
                if sender.send_data(Bytes::from_static(b": idle\n\n")).await.is_err() {
                    return;
                }
            }
        }
        for event in events.drain(..) {
            idle = Duration::ZERO;
            let data = serde_json::to_string(&event).expect("events serialise");
            let line = format!("id: {}\nevent: {}\ndata: {data}\n\n", event.id, event.kind);
            if sender.send_data(Bytes::from(line)).await.is_err() {
                return;
            }
            after = Some(event.id);
        }
        match page(&admin, &tenant, after.clone(), PAGE).await {
            Ok(next) => events = next,
            Err(failure) => {
                tracing::debug!(tenant, "an event stream ends: {}", failure.message);
                return;
            }
        }
    }
}

//! `/v1/tenants/{tenant}/events`: the tenant's events from its outbox, oldest first, a page
//! at a time; and `/v1/tenants/{tenant}/events/stream`, the same events as a
//! `text/event-stream` that follows the outbox, for clients that prefer pulling to webhooks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use serde_json::json;
use waedge_device::mailbox::Subscription;
use waedge_store::events::EventRecord;

use super::{Admin, Answer, Call, Failure, json, no_endpoint};

/// How many events a page holds unless the call asks for fewer.
const PAGE: usize = 100;
/// The most events a page holds.
const MAX_PAGE: usize = 1000;
/// How long an idle stream waits for a wake-up before it looks for new events anyway (every
/// commit of events wakes it: this only catches a wake-up missed).
const POLL: Duration = Duration::from_secs(5);
/// How often an idle stream sends a comment line, so that proxies keep it open and a client
/// that went away is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The most event streams open at once on the admin listener; more are refused with 503.
pub const MAX_STREAMS: usize = 64;
/// The most event streams of one tenant open at once, so that one tenant's token cannot take
/// every place.
pub const MAX_STREAMS_PER_TENANT: usize = 8;
/// How long a stream waits for its client to take an event before it gives its place up (a
/// client that stopped reading).
const SEND_WAIT: Duration = Duration::from_secs(30);

/// The event streams open on the listener, by tenant.
#[derive(Default)]
pub struct Streams(Mutex<HashMap<String, usize>>);

/// A stream's place among the open ones, given back when it is dropped.
struct Place {
    streams: Arc<Streams>,
    tenant: String,
}

impl Streams {
    /// A place for a stream of `tenant`, unless [`MAX_STREAMS`] are open, or
    /// [`MAX_STREAMS_PER_TENANT`] of the tenant.
    fn enter(self: &Arc<Self>, tenant: &str) -> Result<Place, Failure> {
        let mut open = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (all, own) = (open.values().sum::<usize>(), open.get(tenant).copied().unwrap_or(0));
        if all >= MAX_STREAMS || own >= MAX_STREAMS_PER_TENANT {
            let message = format!(
                "{} event streams are open ({own} of tenant `{tenant}`; at most {MAX_STREAMS_PER_TENANT} a tenant, \
                 {MAX_STREAMS} in all): close one, or page through the events",
                all
            );
            return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, "TOO_MANY_STREAMS", message));
        }
        *open.entry(tenant.to_string()).or_default() += 1;
        Ok(Place { streams: self.clone(), tenant: tenant.to_string() })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

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
/// shows it. The stream ends when the tenant is deleted or the stream's token stops being live.
async fn stream(admin: &Admin, call: &Call, tenant: &str) -> Answer {
    let place = admin.streams.enter(tenant)?;
    // A browser's `EventSource` reconnects to the same URL with `Last-Event-ID`: the header is
    // where it got to, the URL's `after` where it first started.
    let after = call.last_event_id.clone().or_else(|| call.query("after"));
    // An unknown cursor is refused now, with the list's answer, not in the middle of a stream.
    let first = page(admin, tenant, after.clone(), PAGE).await?;
    let (sender, body) = Channel::<Bytes, std::convert::Infallible>::new(PAGE);
    let appended = admin.webhooks.appended().subscribe(tenant, None);
    let reader = Reader { tenant: tenant.to_string(), token: call.author.clone() };
    tokio::spawn(follow(admin.clone(), reader, after, first, sender, (appended, place)));
    let mut response = http::Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Who reads a stream: the tenant whose events it follows, and the id of the admin token that
/// opened it.
struct Reader {
    tenant: String,
    token: String,
}

/// Writes `first`, then every event recorded after it, to `sender` until the client goes
/// away (or stops reading), the tenant is deleted, or the token that opened the stream is
/// revoked or expires (looked at before every read of the outbox: within [`POLL`]); woken by
/// `appended`, and holding its place among the streams.
async fn follow(
    admin: Admin,
    Reader { tenant, token }: Reader,
    mut after: Option<String>,
    mut events: Vec<EventRecord>,
    mut sender: http_body_util::channel::Sender<Bytes, std::convert::Infallible>,
    (mut appended, _place): (Subscription, Place),
) {
    let mut sent_last = Instant::now();
    loop {
        if events.is_empty() {
            let _ = tokio::time::timeout(POLL, appended.changed()).await;
            if sent_last.elapsed() >= KEEP_ALIVE {
                if !send(&mut sender, Bytes::from_static(b": idle\n\n")).await {
                    return;
                }
                sent_last = Instant::now();
            }
        }
        for event in events.drain(..) {
            let data = serde_json::to_string(&event).expect("events serialise");
            let line = format!("id: {}\nevent: {}\ndata: {data}\n\n", event.id, event.kind);
            if !send(&mut sender, Bytes::from(line)).await {
                return;
            }
            sent_last = Instant::now();
            after = Some(event.id);
        }
        let id = token.clone();
        let live = admin.run(move |store| Ok(store.admin_tokens()?.iter().any(|t| t.id == id && t.is_live()))).await;
        if !matches!(live, Ok(true)) {
            tracing::debug!(tenant, "an event stream ends: its admin token is revoked or expired");
            return;
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

/// Sends `chunk` to the client; `false` when it went away or did not take it within
/// [`SEND_WAIT`].
async fn send(sender: &mut http_body_util::channel::Sender<Bytes, std::convert::Infallible>, chunk: Bytes) -> bool {
    matches!(tokio::time::timeout(SEND_WAIT, sender.send_data(chunk)).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_has_at_most_its_share_of_the_streams_and_a_closed_one_frees_its_place() {
        let streams = Arc::new(Streams::default());
        let acme: Vec<Place> = (0..MAX_STREAMS_PER_TENANT).map(|_| streams.enter("acme").unwrap()).collect();
        let refused = streams.enter("acme").err().expect("acme has its share");
        assert_eq!((refused.status, refused.code), (StatusCode::SERVICE_UNAVAILABLE, "TOO_MANY_STREAMS"));
        let others: Vec<Place> = (MAX_STREAMS_PER_TENANT..MAX_STREAMS)
            .map(|n| streams.enter(&format!("t{}", n / MAX_STREAMS_PER_TENANT)).expect("another tenant's stream"))
            .collect();
        assert!(streams.enter("globex").is_err(), "{MAX_STREAMS} in all");
        drop(acme);
        assert!(streams.enter("globex").is_ok(), "closed streams give their places back");
        drop(others);
        assert_eq!(streams.0.lock().unwrap().values().sum::<usize>(), 0);
    }
}

//! One delivery attempt: the event's JSON POSTed to the webhook's URL, signed, through the
//! tenant's outbound address rules, and what the answer means for the next step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use waedge_store::events::EventRecord;
use waedge_store::webhooks::{Attempt, WebhookRecord};
use wasmtime_wasi_http::{Error, RequestOptions};

use super::sign;
use crate::capability::outbound::Outbound;
use crate::telemetry::violation::Reporter;

/// How long an attempt may take to connect, and then to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What an attempt's answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A 2xx: the event is delivered.
    Delivered,
    /// Worth another attempt later: no answer, a 5xx, 408 or 429.
    Retry(String),
    /// Another attempt would fare no better (a 4xx other than 408 and 429, an address the
    /// tenant's rules refuse, a URL that cannot be sent to): the event becomes a dead letter.
    GiveUp(String),
}

/// Where an attempt goes, and under which rules.
pub struct Target<'a> {
    /// The webhook.
    pub webhook: &'a WebhookRecord,
    /// Whether its host may resolve to an internal address (the tenant's private allow-list).
    pub may_be_internal: bool,
    /// Reports refused addresses as the tenant's violations.
    pub reporter: &'a Reporter,
}

/// Sends `event` to `target` as attempt number `attempt`; returns the log entry and what it
/// means.
pub async fn attempt(
    outbound: &Arc<Outbound>,
    target: &Target<'_>,
    event: &EventRecord,
    attempt: u32,
) -> (Attempt, Verdict) {
    let started = Instant::now();
    let at = chrono::Utc::now();
    let (status, verdict) = match send(outbound, target, event, at.timestamp()).await {
        Ok(status) => (Some(status), verdict(status)),
        Err(Error::DestinationIpProhibited) => (
            None,
            Verdict::GiveUp(format!(
                "{}: its host resolves to an address off the public internet; put the host on the tenant's \
                 outbound_private_hosts to allow it",
                target.webhook.url
            )),
        ),
        Err(e @ (Error::HttpRequestUriInvalid | Error::InvalidDnsNameError(_))) => {
            (None, Verdict::GiveUp(format!("{}: {e}", target.webhook.url)))
        }
        Err(e) => (None, Verdict::Retry(format!("no answer: {e}"))),
    };
    (log(event, attempt, status, &verdict, at, started), verdict)
}

/// The delivery log's entry of attempt number `attempt` at `event`, begun at `at` (`started`
/// on the monotonic clock), which the endpoint answered with `status` (none: no answer, or an
/// event handler), and what it means.
pub fn log(
    event: &EventRecord,
    attempt: u32,
    status: Option<u16>,
    verdict: &Verdict,
    at: chrono::DateTime<chrono::Utc>,
    started: Instant,
) -> Attempt {
    let error = match verdict {
        Verdict::Delivered => None,
        Verdict::Retry(error) | Verdict::GiveUp(error) => Some(error.clone()),
    };
    Attempt {
        event_id: event.id.clone(),
        attempt,
        status,
        error,
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        millis: started.elapsed().as_millis() as u64,
    }
}

/// What a status code means for the event.
fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry(format!("the endpoint answered {status}")),
        _ => Verdict::GiveUp(format!("the endpoint answered {status}, which another attempt would not change")),
    }
}

/// POSTs the event and returns the answer's status; the answer's body is not read.
async fn send(
    outbound: &Arc<Outbound>,
    target: &Target<'_>,
    event: &EventRecord,
    timestamp: i64,
) -> Result<u16, Error> {
    let body = serde_json::to_vec(event).expect("an event serialises");
    let signature = sign::signature(&target.webhook.secret, &event.id, timestamp, &body);
    let request = Request::builder()
        .method(Method::POST)
        .uri(&target.webhook.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, concat!("waedge/", env!("CARGO_PKG_VERSION")))
        .header(sign::ID_HEADER, &event.id)
        .header(sign::TIMESTAMP_HEADER, timestamp.to_string())
        .header(sign::SIGNATURE_HEADER, signature)
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let options = RequestOptions {
        connect_timeout: Some(TIMEOUT),
        first_byte_timeout: Some(TIMEOUT),
        between_bytes_timeout: Some(TIMEOUT),
    };
    let until = Instant::now() + TIMEOUT;
    let (response, _io) = outbound.send(target.reporter, request, Some(options), target.may_be_internal, until).await?;
    // Only the status counts: the body is not read (an endpoint could send gigabytes), and
    // dropping the response with the connection's I/O closes the connection, which is not
    // reused.
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_that_may_change_is_retried() {
        assert_eq!(verdict(200), Verdict::Delivered);
        assert_eq!(verdict(204), Verdict::Delivered);
        for retried in [408, 429, 500, 502, 503] {
            assert!(matches!(verdict(retried), Verdict::Retry(_)), "{retried}");
        }
        for given_up in [301, 400, 401, 403, 404, 410, 422] {
            assert!(matches!(verdict(given_up), Verdict::GiveUp(_)), "{given_up}");
        }
    }
}

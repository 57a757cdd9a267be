//! The admin HTTP endpoint (JSON) driving the simulated phones and faults.
//!
//! `GET /healthz`, `POST /scan-qr {"qr","phone"}`, `POST /pair-code {"phone","code"}`,
//! `POST /messages {"from","to","text"}` (→ `{"id","devices"}`), `POST /unacknowledged {"phone"}`
//! (→ `{"unacknowledged"}`), `POST /received {"phone"}` (→ `{"received":[{"from_phone",
//! "from_lid","id","text","reply_to","at"}]}`), `POST /auto-delivery {"phone","on"}`,
//! `POST /read {"phone","id"}`, `POST /faults/drop [{"phone"}]`, `POST /faults/refuse {"seconds"}`,
//! `POST /faults/logout {"phone"}`, `POST /faults/replace {"phone"}`,
//! `POST /faults/latency {"ms"}`, `POST /faults/nack {"to","code","count"}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::error::SimError;
use crate::pairing;
use crate::sim::Shared;
use crate::{chat, faults, receipts};

const MAX_BODY: usize = 64 * 1024;

/// Serves admin requests until the task is aborted.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(shared.clone(), req));
            let io = hyper_util::rt::TokioIo::new(tcp);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!("admin connection: {e}");
            }
        });
    }
}

/// A failed admin request: status and message.
struct Failure(StatusCode, String);

impl From<SimError> for Failure {
    fn from(e: SimError) -> Self {
        let status = match e {
            SimError::UnknownAccount(_)
            | SimError::UnknownQr
            | SimError::NoPairCodeRequest(_)
            | SimError::UnknownMessage { .. } => StatusCode::NOT_FOUND,
            SimError::BadQr(_) | SimError::WrongPairCode | SimError::SelfMessage => StatusCode::BAD_REQUEST,
            SimError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::CONFLICT,
        };
        Failure(status, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanQr {
    qr: String,
    phone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairCode {
    phone: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    from: String,
    to: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Phone {
    phone: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MaybePhone {
    phone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoDelivery {
    phone: String,
    on: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    phone: String,
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nack {
    to: String,
    code: u16,
    count: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seconds {
    seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Millis {
    ms: u64,
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = match (method, path.as_str()) {
        (Method::GET, "/healthz") => Ok(json!({"ok": true})),
        (Method::POST, _) => post(&shared, &path, req).await,
        _ => Err(Failure(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))),
    };
    let (status, body) = match result {
        Ok(v) => (StatusCode::OK, v),
        Err(Failure(status, msg)) => (status, json!({"error": msg})),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(resp)
}

async fn post(shared: &Arc<Shared>, path: &str, req: Request<Incoming>) -> Result<Value, Failure> {
    let body = read_body(req).await?;
    match path {
        "/scan-qr" => {
            let b: ScanQr = parse(&body)?;
            pairing::scan_qr(shared, &b.qr, &b.phone).await?;
            Ok(json!({"ok": true}))
        }
        "/pair-code" => {
            let b: PairCode = parse(&body)?;
            pairing::enter_pair_code(shared, &b.phone, &b.code).await?;
            Ok(json!({"ok": true}))
        }
        "/messages" => {
            let b: Text = parse(&body)?;
            let sent = chat::send_text(shared, &b.from, &b.to, &b.text).await?;
            Ok(json!({"id": sent.id, "devices": sent.devices}))
        }
        "/unacknowledged" => {
            let b: Phone = parse(&body)?;
            known(shared, &b.phone)?;
            Ok(json!({"unacknowledged": shared.hub.mailboxes().unacknowledged(&b.phone)}))
        }
        "/received" => {
            let b: Phone = parse(&body)?;
            Ok(json!({"received": shared.inboxes.received(&known(shared, &b.phone)?)}))
        }
        "/auto-delivery" => {
            let b: AutoDelivery = parse(&body)?;
            shared.inboxes.set_auto_delivery(&known(shared, &b.phone)?, b.on);
            Ok(json!({"ok": true}))
        }
        "/read" => {
            let b: Read = parse(&body)?;
            receipts::read(shared, &b.phone, &b.id)?;
            Ok(json!({"ok": true}))
        }
        "/faults/drop" => {
            let b: MaybePhone = if body.is_empty() { MaybePhone::default() } else { parse(&body)? };
            Ok(json!({"dropped": faults::drop_connections(&shared.hub, b.phone.as_deref())}))
        }
        "/faults/refuse" => {
            let b: Seconds = parse(&body)?;
            shared.faults.refuse_for(Duration::from_secs(b.seconds));
            Ok(json!({"ok": true}))
        }
        "/faults/logout" => {
            let b: Phone = parse(&body)?;
            known(shared, &b.phone)?;
            Ok(json!({"kicked": faults::log_out(&shared.hub, &shared.world, &b.phone)}))
        }
        "/faults/replace" => {
            let b: Phone = parse(&body)?;
            known(shared, &b.phone)?;
            Ok(json!({"kicked": faults::replace(&shared.hub, &b.phone)}))
        }
        "/faults/latency" => {
            let b: Millis = parse(&body)?;
            shared.faults.set_latency(Duration::from_millis(b.ms));
            Ok(json!({"ok": true}))
        }
        "/faults/nack" => {
            let b: Nack = parse(&body)?;
            shared.faults.nack_next(&known(shared, &b.to)?, b.code, b.count);
            Ok(json!({"ok": true}))
        }
        _ => Err(Failure(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))),
    }
}

/// The account's phone number as the world spells it (without a leading `+`).
fn known(shared: &Shared, phone: &str) -> Result<String, Failure> {
    match shared.world.account_by_phone(phone) {
        Some(account) => Ok(account.phone.clone()),
        None => Err(SimError::UnknownAccount(phone.to_owned()).into()),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Failure> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

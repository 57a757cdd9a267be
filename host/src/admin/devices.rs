//! `/v1/tenants/{tenant}/devices…`: devices, their live status, linking (QR as JSON, PNG and
//! server-sent events; pair code), reconnecting, log-out and removal.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use waedge_contract::types::DeviceState;
use waedge_device::is_terminal;
use waedge_device::link::{LinkState, first_news};
use waedge_store::devices::recorded_state;
use waedge_store::{DeviceRecord, Store, StoreError};

use crate::tenancy::Tenants;

use super::{Admin, Answer, Call, Failure, json, no_content, no_endpoint, respond};

/// How long `POST …/link` waits for the first QR code.
const FIRST_CODE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A device as the admin API shows it: the stored record with the live session's state, its
/// text owned or (in a list) borrowed.
#[derive(Debug, Serialize)]
pub struct DeviceView<S = String> {
    #[serde(flatten)]
    record: DeviceRecord<S>,
    /// Whether a linking is in progress.
    linking: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairCodeRequest {
    phone_number: String,
}

/// Answers `/v1/tenants/{tenant}/devices` followed by `rest`.
pub async fn answer(admin: &Admin, call: &Call, tenant: &str, rest: &[&str]) -> Answer {
    let t = tenant.to_string();
    match (&call.method, rest) {
        (&Method::GET, []) => {
            let (tenants, linking) = (admin.gateway.tenants(), admin.gateway.devices().devices_linking(tenant));
            let body = admin.run(move |store| device_list(store, &t, &tenants, &linking)).await?;
            Ok(respond(StatusCode::OK, "application/json", body))
        }
        (&Method::POST, []) => {
            let new: NewDevice = call.json()?;
            let record = admin.change(move |store| store.create_device(&t, &new.id)).await?;
            json(StatusCode::CREATED, &view(admin, record))
        }
        (&Method::GET, [device]) => json(StatusCode::OK, &current(admin, tenant, device).await?),
        (&Method::DELETE, [device]) => {
            current(admin, tenant, device).await?;
            // The store first: once the device is gone from it, nothing serves it any more;
            // then its WhatsApp session is logged out and its data deleted — even when the
            // gateway cannot apply the deletion yet, so no client outlives its device.
            let d = device.to_string();
            admin.run(move |store| store.delete_device(&t, &d)).await?;
            let removed = remove_session(admin, tenant, device).await;
            admin.apply().await?;
            removed.and_then(|()| no_content())
        }
        (&Method::POST, [device, "logout"]) => {
            current(admin, tenant, device).await?;
            admin.gateway.devices().logout(tenant, device).await.map_err(|e| Failure::conflict(format!("{e:#}")))?;
            json(StatusCode::OK, &current(admin, tenant, device).await?)
        }
        (&Method::POST, [device, "reconnect"]) => {
            current(admin, tenant, device).await?;
            admin.gateway.devices().reconnect(tenant, device).await.map_err(|e| Failure::conflict(format!("{e:#}")))?;
            json(StatusCode::OK, &current(admin, tenant, device).await?)
        }
        (&Method::POST, [device, "link"]) => {
            let mut watch = start_qr(admin, tenant, device).await?;
            json(StatusCode::OK, &first_news(&mut watch, FIRST_CODE_TIMEOUT).await)
        }
        (&Method::GET, [device, "link"]) => {
            current(admin, tenant, device).await?;
            let watch = admin.gateway.devices().linking(tenant, device).ok_or_else(|| not_linking(tenant, device))?;
            let state = watch.borrow().clone();
            json(StatusCode::OK, &state)
        }
        (&Method::DELETE, [device, "link"]) => {
            current(admin, tenant, device).await?;
            admin.gateway.devices().linking_now(tenant, device).ok_or_else(|| not_linking(tenant, device))?;
            admin
                .gateway
                .devices()
                .cancel_link(tenant, device)
                .await
                .map_err(|e| Failure::conflict(format!("{e:#}")))?;
            no_content()
        }
        (&Method::GET, [device, "link", "qr.png"]) => {
            current(admin, tenant, device).await?;
            let watch =
                admin.gateway.devices().linking_now(tenant, device).ok_or_else(|| not_linking(tenant, device))?;
            let state = watch.borrow().clone();
            let LinkState::Qr { code, .. } = state else {
                return Err(Failure::conflict("no QR code yet: WhatsApp has not sent one; retry in a second"));
            };
            let png = crate::qr::png(&code)
                .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "QR_FAILED", e.to_string()))?;
            let mut response = respond(StatusCode::OK, "image/png", png);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        (&Method::GET, [device, "link", "events"]) => {
            let watch = start_qr(admin, tenant, device).await?;
            Ok(event_stream(watch))
        }
        (&Method::POST, [device, "pair-code"]) => {
            let request: PairCodeRequest = call.json()?;
            let phone: String = request.phone_number.chars().filter(char::is_ascii_digit).collect();
            if phone.len() < 7 || phone.len() > 15 {
                return Err(Failure::invalid(
                    "phone_number: give the account's number with country code, e.g. 6281234567890",
                ));
            }
            current(admin, tenant, device).await?;
            if admin.gateway.devices().linking_now(tenant, device).is_some() {
                return Err(Failure::conflict("this device is being linked already; cancel with DELETE …/link first"));
            }
            let (code, _view) = admin
                .gateway
                .devices()
                .link_pair_code(tenant, device, &phone)
                .await
                .map_err(|e| Failure::conflict(format!("{e:#}")))?;
            json(StatusCode::OK, &json!({ "pair_code": code }))
        }
        _ => Err(no_endpoint(call)),
    }
}

/// The device's record with its live state; 404 if the tenant or device does not exist.
async fn current(admin: &Admin, tenant: &str, device: &str) -> Result<DeviceView, Failure> {
    let (t, d) = (tenant.to_string(), device.to_string());
    let record = admin.run(move |store| store.device(&t, &d)).await?;
    Ok(view(admin, record))
}

/// `record` with the live state of its session, if it has one, and whether it is being linked.
fn view(admin: &Admin, record: DeviceRecord) -> DeviceView {
    let tenants = admin.gateway.tenants();
    let session = tenants.get(&record.tenant).and_then(|tenant| tenant.scope().device(&record.id));
    let linking = admin.gateway.devices().linking_now(&record.tenant, &record.id).is_some();
    let record = match session {
        Some(session) => record.live(&session.status()),
        None => record,
    };
    DeviceView { record, linking }
}

/// The answer to `GET …/devices`: `{"devices": [...]}`, each device of `tenant` as [`view`]
/// shows it, its sessions among `tenants` and `linking` the devices being linked. Written as
/// the store's answer is read, with nothing copied out of it or out of the sessions' statuses,
/// where a list of a thousand devices made a thousand records and cloned a thousand statuses
/// first: 13 % less CPU (BENCHMARKS.md, issue #14). The list holds one of the store's
/// reading connections while it is written (about 3.5 ms for a thousand devices); the reads
/// beside it take others.
fn device_list(
    store: &Store,
    tenant: &str,
    tenants: &Tenants,
    linking: &HashSet<String>,
) -> Result<Vec<u8>, StoreError> {
    let scope = tenants.get(tenant).map(|tenant| tenant.scope());
    let mut body = br#"{"devices":["#.to_vec();
    let mut first = true;
    store.each_device(tenant, |record| {
        if !std::mem::take(&mut first) {
            body.push(b',');
        }
        let linking = linking.contains(record.id);
        let mut write = |record: DeviceRecord<&str>| {
            serde_json::to_writer(&mut body, &DeviceView { record, linking }).expect("device views serialise")
        };
        match scope.and_then(|scope| scope.device(record.id)) {
            Some(session) => session.with_status(&mut |status| write(record.clone().live(status))),
            None => write(record),
        }
    })?;
    body.extend_from_slice(b"]}");
    Ok(body)
}

/// The linking by QR code of the device in progress, or a new one.
async fn start_qr(admin: &Admin, tenant: &str, device: &str) -> Result<watch::Receiver<LinkState>, Failure> {
    let current = current(admin, tenant, device).await?;
    if let Some(watch) = admin.gateway.devices().linking_now(tenant, device) {
        return Ok(watch);
    }
    let state = recorded_state(&current.record);
    if !(state == DeviceState::Unlinked || is_terminal(state)) {
        return Err(Failure::conflict(format!(
            "device `{device}` is {}: only an unlinked, logged-out, replaced or banned device can be linked; log it out first",
            current.record.state
        )));
    }
    admin.gateway.devices().link_qr(tenant, device).await.map_err(|e| Failure::conflict(format!("{e:#}")))
}

/// Logs out and closes the session of a device about to be deleted.
pub async fn remove_session(admin: &Admin, tenant: &str, device: &str) -> Result<(), Failure> {
    admin.gateway.devices().remove(tenant, device).await.map_err(|e| {
        tracing::error!(tenant, device, "removing the device session failed: {e:#}");
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "DEVICE_REMOVAL_FAILED", format!("{e:#}"))
    })
}

fn not_linking(tenant: &str, device: &str) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "NOT_LINKING",
        format!("device `{tenant}/{device}` is not being linked; start with POST …/link or …/pair-code"),
    )
}

/// A `text/event-stream` of the linking's states: `event: qr|linked|failed` with the state as
/// JSON, until the linking ends.
fn event_stream(mut watch: watch::Receiver<LinkState>) -> http::Response<crate::body::ResponseBody> {
    let (mut sender, body) = Channel::<Bytes, std::convert::Infallible>::new(4);
    tokio::spawn(async move {
        loop {
            let state = watch.borrow_and_update().clone();
            if state != LinkState::Starting {
                let data = serde_json::to_string(&state).expect("link states serialise");
                let event = format!("event: {}\ndata: {data}\n\n", state.event_name());
                if sender.send_data(Bytes::from(event)).await.is_err() || state.is_final() {
                    return;
                }
            }
            loop {
                match tokio::time::timeout(KEEP_ALIVE, watch.changed()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_closed)) => return,
                    Err(_idle) => {
                        if sender.send_data(Bytes::from_static(b": waiting\n\n")).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let mut response = http::Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

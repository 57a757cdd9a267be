//! The owner's side of the channel: the node's cluster listener, which answers the device
//! calls other nodes forward to it on the sessions it runs.
//!
//! Only nodes of the cluster may call: a request without the cluster's secret (compared in
//! constant time) is refused before its body is read. A call is made on the session this
//! node runs — or, for a call on the device itself ([`Manage`]), on this node's own device
//! manager — never forwarded again, so a call cannot go round between nodes that disagree on
//! an owner for a moment, and within the deadline the caller sent; a call that changes the
//! device runs to its end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use waedge_contract::types::Error;
use waedge_device::{DeviceManager, DeviceSession};
use waedge_store::token::TokenHash;

use super::wire::{self, Call, DEADLINE_HEADER, Manage, NOT_HERE, PATH_PREFIX};
use crate::Gateway;
use crate::bearer::bearer;
use crate::body::{ReadError, ResponseBody, read_body};
use crate::capability::whatsapp::{connected, rate_limited};
use crate::gateway::{error, json_body};
use crate::server::{Handler, RequestBody};

/// The longest a forwarded call may run, whatever deadline it says.
const MAX_CALL: Duration = Duration::from_secs(60);

/// The largest call: a text to send is the largest part, up to six times its bytes once
/// escaped in JSON.
const MAX_CALL_BYTES: usize = 1 << 20;

/// The sessions this node opened, by tenant and device.
pub type Locals = Mutex<HashMap<(String, String), Weak<dyn DeviceSession>>>;

/// Answers the calls of the other nodes.
pub struct Listener {
    secret: TokenHash,
    locals: Arc<Locals>,
    /// The tenants' send rates, counted here for the devices this node runs.
    gateway: Option<Arc<Gateway>>,
    /// This node's own devices (not forwarding), for the calls on a device itself.
    devices: Option<Arc<dyn DeviceManager>>,
}

impl Listener {
    /// Answers the calls of nodes that know `secret` on the sessions of `locals`.
    pub fn new(secret: &str, locals: Arc<Locals>) -> Listener {
        Listener { secret: TokenHash::of(secret), locals, gateway: None, devices: None }
    }

    /// Answers the calls on the devices themselves (linking, log-out, removal …) that this
    /// node runs, on `devices`: this node's own, which never forward.
    pub fn managing(mut self, devices: Arc<dyn DeviceManager>) -> Listener {
        self.devices = Some(devices);
        self
    }

    /// Counts the sends forwarded to this node against the send rates of `gateway`'s tenants,
    /// as the sends of the requests it takes itself are.
    pub fn rating_sends_of(mut self, gateway: Arc<Gateway>) -> Listener {
        self.gateway = Some(gateway);
        self
    }

    /// Whether the send rate of `device` of `tenant` allows one more send; `Err` is the answer.
    fn take_send(&self, tenant: &str, device: &str) -> Result<(), Error> {
        let Some(gateway) = &self.gateway else { return Ok(()) };
        let tenants = gateway.tenants();
        let Some(tenant) = tenants.get(tenant) else { return Ok(()) };
        tenant.scope().take_send(device).map_err(rate_limited)
    }

    async fn answer(&self, request: Request<RequestBody>) -> Response<ResponseBody> {
        let allowed = bearer(request.headers()).is_some_and(|token| TokenHash::of(token).ct_eq(&self.secret));
        if !allowed {
            let message = "this is the cluster listener: only the nodes of the cluster, with its secret, may call it";
            return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
        }
        let Some((tenant, device)) = device_of(request.uri().path()) else {
            let message = format!("POST {PATH_PREFIX}TENANT/DEVICE is the only call");
            return error(StatusCode::NOT_FOUND, "NOT_FOUND", &message);
        };
        if request.method() != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "a call is a POST");
        }
        let left = request.headers().get(DEADLINE_HEADER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let Some(left) = left else {
            let message = format!("{DEADLINE_HEADER}: the milliseconds the call has left");
            return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message);
        };
        let body = match read_body(request.into_body(), MAX_CALL_BYTES).await {
            Ok(body) => body,
            Err(ReadError::TooLarge(limit)) => {
                let message = format!("a call has at most {limit} bytes");
                return error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &message);
            }
            Err(ReadError::Failed(e)) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &e.to_string()),
        };
        let call: Call = match serde_json::from_slice(&body) {
            Ok(call) => call,
            Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("not a call: {e}")),
        };
        let left = Duration::from_millis(left).min(MAX_CALL);
        let answer = match call {
            Call::Manage(manage) => match self.devices.clone().filter(|devices| devices.runs_here(&tenant, &device)) {
                Some(devices) => Some(manage_until(manage, devices, (tenant.clone(), device.clone()), left).await),
                None => None,
            },
            call => self.on_session(call, (&tenant, &device), left).await,
        };
        match answer {
            Some(answer) => json_body(StatusCode::OK, Bytes::from(answer)),
            None => {
                let message = format!("this node does not run device {device} of tenant {tenant}");
                error(StatusCode::MISDIRECTED_REQUEST, NOT_HERE, &message)
            }
        }
    }

    /// Makes `call` on this node's session of `device` of `tenant` within `left` (a send runs
    /// to its end); `None` if this node does not run the device.
    async fn on_session(&self, call: Call, (tenant, device): (&str, &str), left: Duration) -> Option<Vec<u8>> {
        let session = self.locals.lock().expect("locals lock").get(&(tenant.to_owned(), device.to_owned())).cloned();
        let session = session.and_then(|session| session.upgrade()).filter(|session| session.runs_here())?;
        let answer = if !call.sends() {
            let answered = tokio::time::timeout(left, call.answer(&*session)).await;
            answered.unwrap_or_else(|_| wire::encode::<()>(Err(Error::Timeout)))
        } else if let Err(refused) = connected(&*session).and_then(|()| self.take_send(tenant, device)) {
            // A send the device cannot make now does not count against its rate: the state is
            // checked first, as for the sends of the requests this node takes itself.
            wire::encode::<()>(Err(refused))
        } else {
            // A send runs to its end, as it does on the node it was asked on: neither the
            // deadline nor the caller going away leaves what it recorded half-done.
            let sent = tokio::spawn(async move { call.answer(&*session).await });
            sent.await.unwrap_or_else(|e| wire::encode::<()>(Err(Error::Upstream(format!("the send failed: {e}")))))
        };
        Some(answer)
    }
}

/// Makes `manage` on `devices`: a change runs to its end, as on the node it was asked on; a
/// look at the linking ends at the deadline.
async fn manage_until(
    manage: Manage,
    devices: Arc<dyn DeviceManager>,
    (tenant, device): (String, String),
    left: Duration,
) -> Vec<u8> {
    let changes = manage.changes();
    let made = tokio::spawn(async move { manage.answer(&*devices, (&tenant, &device)).await });
    let failed = |why: &dyn std::fmt::Display| wire::refused(&format!("the call failed: {why}"));
    if changes {
        return made.await.unwrap_or_else(|e| failed(&e));
    }
    match tokio::time::timeout(left, made).await {
        Ok(made) => made.unwrap_or_else(|e| failed(&e)),
        Err(_) => failed(&"the deadline passed"),
    }
}

impl Handler for Listener {
    fn handle(&self, request: Request<RequestBody>) -> impl Future<Output = Response<ResponseBody>> + Send {
        self.answer(request)
    }
}

/// The tenant and device of a call's path.
fn device_of(path: &str) -> Option<(String, String)> {
    let (tenant, device) = path.strip_prefix(PATH_PREFIX)?.split_once('/')?;
    let valid = |id: &str| waedge_store::is_identifier(id);
    (valid(tenant) && valid(device)).then(|| (tenant.to_owned(), device.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_names_one_device_of_one_tenant() {
        assert_eq!(device_of("/v1/devices/acme/main"), Some(("acme".into(), "main".into())));
        for path in ["/v1/devices/acme", "/v1/devices/acme/main/x", "/v1/devices/../main", "/v2/devices/acme/main"] {
            assert_eq!(device_of(path), None, "{path}");
        }
    }
}

//! The admin API: JSON over HTTP on its own listener (default `127.0.0.1:8081`), for operators
//! and the `waedge` CLI.
//!
//! Every `/v1/…` endpoint needs `Authorization: Bearer ADMIN_TOKEN` (`waedge admin-token
//! create` makes one). Health (`/healthz`, `/readyz`), metrics (`/metrics`), the OpenAPI
//! document (`/openapi.json`) and the pairing page (`/pair`) are open: keep the listener on
//! loopback or a private network. Every change goes to the [store](waedge_store) first and
//! is then applied to the running gateway before the response is sent.
//!
//! One module per resource: [`tenants`], [`users`] (and tokens), [`devices`] (and linking,
//! which the device layer owns: the admin API shows it), [`routes`], [`components`] (deploys and
//! versions), [`events`] (what happened on the devices, paged or streamed), [`webhooks`] (where
//! events go), and [`ops`] (health, metrics, OpenAPI, pairing page).

mod cluster;
pub mod components;
pub mod devices;
pub mod events;
pub mod ops;
pub mod routes;
pub mod tenants;
pub mod users;
pub mod watch;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde::de::DeserializeOwned;
use waedge_store::admin::{AdminScope, AdminTokenCheck};
use waedge_store::token::TokenHash;
use waedge_store::{Store, StoreError};

use crate::Gateway;
use crate::bearer::bearer;
use crate::body::ResponseBody;
use crate::body::{BodyError, ReadError, read_body};
use crate::gateway::{Export, error};
use crate::server::{Handler, RequestBody};
use crate::tenancy::admission::ClientAddr;
use crate::webhooks::Webhooks;

/// Largest JSON body the admin API reads.
const MAX_BODY: usize = 1 << 20;

/// How long a change's call waits for the gateway to apply it before answering 503 (the
/// gateway keeps retrying).
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// The admin API's state: the store and the gateway it changes. Cheap to clone: every call
/// runs on a clone of its own.
#[derive(Clone)]
pub struct Admin {
    store: Store,
    gateway: Arc<Gateway>,
    webhooks: Arc<Webhooks>,
    /// Whether a committed change has not reached the gateway yet (a reload failed and is
    /// being retried).
    stale: Arc<AtomicBool>,
    /// Whether the admin listener may be reached from other machines (`admin_allow_remote`).
    remote: bool,
    /// Successful reloads so far; its lock is the reloads' turn.
    reloads: Arc<tokio::sync::Mutex<u64>>,
    /// The event streams open.
    streams: Arc<events::Streams>,
    /// This node among those sharing the store, if it shares it.
    cluster: Option<Arc<cluster::Node>>,
}

/// A request's method, path segments, query and body, read whole.
pub struct Call {
    method: Method,
    path: String,
    query: Option<String>,
    body: Bytes,
    /// The `Last-Event-ID` header, with which an event stream resumes.
    last_event_id: Option<String>,
    /// The id of the admin token that authenticated the call (empty for the open endpoints).
    author: String,
    /// What that token may do (everything for the open endpoints, which change nothing).
    scope: AdminScope,
}

/// An admin API answer before it becomes a response: a value to send as JSON, or an error.
pub type Answer = Result<Response<ResponseBody>, Failure>;

/// An admin API error: status, code and a message that says what to do.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The methods the path takes, for the `Allow` header of a 405.
    allow: Option<&'static [&'static str]>,
}

impl Failure {
    /// A failure with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Failure { status, code, message: message.into(), allow: None }
    }

    /// The failure as a response: the JSON error envelope, with `Allow` for a 405.
    fn into_response(self) -> Response<ResponseBody> {
        let mut response = error(self.status, self.code, &self.message);
        if let Some(methods) = self.allow {
            let allow = HeaderValue::from_str(&methods.join(", ")).expect("method names are header values");
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }

    /// 400 with code `INVALID`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, "INVALID", message)
    }

    /// 409 with code `CONFLICT`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::CONFLICT, "CONFLICT", message)
    }
}

/// Checks, off the async workers, that `tenant`'s deployed component `name` has an active
/// version exporting `export`: 404 for an unknown tenant, else 409 with what to do, the
/// message starting with `what` (the field that named the component).
async fn check_deployed(admin: &Admin, tenant: &str, name: String, export: Export, what: &str) -> Result<(), Failure> {
    let (gateway, t) = (admin.gateway.clone(), tenant.to_string());
    let checked = admin.run(move |store| Ok(gateway.check_deployed(store, &t, &name, export))).await?;
    checked.map_err(|e| refusal(e, &format!("{what}: ")))
}

/// A check's refusal: the store's own error as it maps, anything else 409 with the reason
/// after `prefix`.
fn refusal(error: anyhow::Error, prefix: &str) -> Failure {
    match error.downcast::<StoreError>() {
        Ok(stored) => Failure::from(stored),
        Err(e) => Failure::conflict(format!("{prefix}{e:#}")),
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(m) => Failure::new(StatusCode::NOT_FOUND, "NOT_FOUND", m),
            StoreError::Conflict(m) => Failure::conflict(m),
            StoreError::Invalid(m) => Failure::invalid(m),
            StoreError::Database(e) => {
                tracing::error!("admin store operation failed: {e}");
                Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "STORE_FAILED", "the store failed; see the server log")
            }
        }
    }
}

impl Admin {
    /// The admin API over `store`, applying changes to `gateway`, and webhook changes to
    /// `webhooks`.
    pub fn new(store: Store, gateway: Arc<Gateway>, webhooks: Arc<Webhooks>) -> Self {
        Admin {
            store,
            gateway,
            webhooks,
            stale: Arc::default(),
            remote: false,
            reloads: Arc::default(),
            streams: Arc::default(),
            cluster: None,
        }
    }

    /// The admin API as reachable from other machines (`admin_allow_remote`): `/metrics`
    /// then needs an admin token from every client.
    pub fn reachable_remotely(mut self, remote: bool) -> Self {
        self.remote = remote;
        self
    }

    /// Checks who may make the call, reads it and answers it.
    async fn call(&self, request: Request<RequestBody>) -> Answer {
        let (parts, body) = request.into_parts();
        let client = parts.extensions.get::<ClientAddr>().map(|client| client.0);
        let local = client.is_none_or(|ip| ip.to_canonical().is_loopback());
        if local && !names_this_machine(&parts) {
            // A web page the operator visits may point its own host name at 127.0.0.1 (DNS
            // rebinding): its requests name that host, not this machine.
            return Err(Failure::new(
                StatusCode::MISDIRECTED_REQUEST,
                "MISDIRECTED_REQUEST",
                "the admin API answers only requests for localhost or a loopback address",
            ));
        }
        // The token is checked before the body is read: no one without a token makes the
        // server buffer an upload.
        let (author, scope) = match needs_token(parts.uri.path(), local && !self.remote) {
            true => {
                let (id, scope) = self.authenticate(&parts.headers).await?;
                authorize(&scope, &parts.method, parts.uri.path())?;
                (id, scope)
            }
            false => (String::new(), AdminScope::default()),
        };
        self.answer(read_call(parts, body, author, scope).await?).await
    }

    async fn answer(&self, call: Call) -> Answer {
        let segments = segments(&call.path);
        match resource(&segments) {
            Some(Resource::Open(name)) => ops::answer(self, &call, name).await,
            Some(Resource::Tenants(tenant)) => tenants::answer(self, &call, tenant).await,
            Some(Resource::Users(tenant, rest)) => users::answer(self, &call, tenant, rest).await,
            Some(Resource::Devices(tenant, rest)) => devices::answer(self, &call, tenant, rest).await,
            Some(Resource::Routes(tenant)) => routes::answer(self, &call, tenant).await,
            Some(Resource::Events(tenant, rest)) => events::answer(self, &call, tenant, rest).await,
            Some(Resource::Webhooks(tenant, rest)) => webhooks::answer(self, &call, tenant, rest).await,
            Some(Resource::Components(tenant, rest)) => components::answer(self, &call, tenant, rest).await,
            None => Err(no_endpoint(&call)),
        }
    }

    /// Checks the request's admin token; returns the token's id and scope.
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<(String, AdminScope), Failure> {
        let Some(bearer) = bearer(headers) else {
            return Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "send `Authorization: Bearer ADMIN_TOKEN`; `waedge admin-token create` makes a token",
            ));
        };
        let hash = TokenHash::of(bearer);
        let unauthorized = |message: String| Failure::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
        match self.run(move |store| store.check_admin_token(&hash)).await? {
            AdminTokenCheck::Live(id, scope) => Ok((id, scope)),
            AdminTokenCheck::Expired(at) => Err(unauthorized(format!(
                "this admin token expired at {at}; `waedge admin-token create` makes a new one"
            ))),
            AdminTokenCheck::Unknown => Err(unauthorized("this admin token is unknown or revoked".into())),
        }
    }

    /// Runs `change` on the store, then applies it to the gateway; answers what `change`
    /// returned once the gateway serves it.
    async fn change<T, F>(&self, change: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let value = self.run(change).await?;
        self.apply().await?;
        Ok(value)
    }

    /// Applies a change stored a moment ago: rebuilds the gateway from the store ([`reload`])
    /// and, on a node sharing the store, waits until the other nodes serve it too.
    ///
    /// [`reload`]: Self::reload
    async fn apply(&self) -> Result<(), Failure> {
        match &self.cluster {
            None => self.reload().await,
            Some(cluster) => cluster.apply(self).await,
        }
    }

    /// Rebuilds the gateway from the store. A failed rebuild is retried until one succeeds;
    /// meanwhile the gateway is stale (`/readyz` says so). Answers once the gateway serves
    /// what the store holds, or with 503 after [`APPLY_WAIT`] while the retries go on.
    async fn reload(&self) -> Result<(), Failure> {
        let admin = self.clone();
        let applied = tokio::spawn(async move {
            // Reloads take turns; one that starts after this change was stored applies it,
            // whoever asked for it, so concurrent changes share their reloads.
            let seen = *admin.reloads.lock().await;
            let mut backoff = Duration::from_millis(100);
            loop {
                let mut reloads = admin.reloads.lock().await;
                if *reloads > seen {
                    return;
                }
                let gateway = admin.gateway.clone();
                let store = admin.store.clone();
                match tokio::task::spawn_blocking(move || gateway.reload(&store)).await.expect("reload task panicked") {
                    Ok(problems) => {
                        *reloads += 1;
                        admin.stale.store(false, Ordering::SeqCst);
                        problems.iter().for_each(|problem| tracing::warn!("{problem}"));
                        drop(reloads);
                        // A deleted device or tenant took its webhooks with it: their workers
                        // stop; a new event handler's starts. Here, so that a reload that
                        // outlasts the caller's wait still brings the workers along.
                        if let Err(e) = admin.webhooks.reload().await {
                            tracing::error!("the webhooks are not reloaded: {e}");
                        }
                        return;
                    }
                    Err(e) => {
                        drop(reloads);
                        admin.stale.store(true, Ordering::SeqCst);
                        tracing::error!("a stored change is not applied yet (retrying in {backoff:?}): {e}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        match tokio::time::timeout(APPLY_WAIT, applied).await {
            Ok(Ok(())) => Ok(()),
            // The reload panicked: nothing was applied (the next change's reload tries again).
            Ok(Err(panicked)) => Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "NOT_APPLIED",
                format!("the change is stored, but applying it failed ({panicked}); see the server log"),
            )),
            Err(_) => Err(Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_APPLIED",
                "the change is stored, but the gateway has not applied it yet; it keeps retrying (see /readyz and \
                 the server log)",
            )),
        }
    }

    /// Whether a stored change has not reached the gateway yet.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::SeqCst)
    }

    /// Runs `work` on the store, off the async workers: a read, or a change the gateway does
    /// not see before [`Admin::apply`] (see [`Admin::change`]).
    async fn run<T, F>(&self, work: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || work(&store)).await.expect("store task panicked")?)
    }
}

impl Handler for Admin {
    async fn handle(&self, request: Request<RequestBody>) -> Response<ResponseBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        // On a task of its own: a client that goes away cannot stop a call half-way (a change
        // stored but not applied, a device deleted while its session runs on).
        let admin = self.clone();
        let answer = tokio::spawn(async move { admin.call(request).await }).await.unwrap_or_else(|e| {
            tracing::error!("an admin call failed: {e}");
            Err(Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "the call failed; see the server log"))
        });
        let response = answer.unwrap_or_else(Failure::into_response);
        let (status, micros) = (response.status().as_u16(), started.elapsed().as_micros() as u64);
        tracing::info!(target: "waedge::admin", %method, path, status, micros);
        response
    }
}

/// Whether a call to `path` needs an admin token: every `/v1/` call, and `/metrics` (which
/// names every tenant and device) unless it comes from this machine with the admin listener
/// kept to it (`only_this_machine`) — a proxy on this machine makes every client look local.
fn needs_token(path: &str, only_this_machine: bool) -> bool {
    path.starts_with("/v1/") || (path.trim_end_matches('/') == "/metrics" && !only_this_machine)
}

/// Whether the request's `Host` names this machine: `localhost` or a loopback address, any
/// port (a request without one is HTTP/1.0 from a local tool).
fn names_this_machine(parts: &http::request::Parts) -> bool {
    let authority = match parts.headers.get(header::HOST) {
        Some(host) => host.to_str().ok().and_then(|h| h.parse::<http::uri::Authority>().ok()),
        // HTTP/2 names the host in the URI; HTTP/1.0 from a local tool may name none.
        None => match parts.uri.authority() {
            Some(authority) => Some(authority.clone()),
            None => return true,
        },
    };
    let Some(authority) = authority else { return false };
    let name = authority.host().trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a token of `scope` may make this call (403 when not). A token of one tenant may
/// use what is under `/v1/tenants/{tenant}/` and read the tenant itself; changing the tenant
/// (its limits, hosts, outbound allow-list) or deleting it stays with the operator's tokens,
/// and so does everything about the whole gateway (the tenant list, metrics). Anything about
/// linking is a change, `GET` included: following a linking starts one, and whoever sees its
/// QR code can link the device to their own phone.
fn authorize(scope: &AdminScope, method: &Method, path: &str) -> Result<(), Failure> {
    let forbidden = |message: String| Failure::new(StatusCode::FORBIDDEN, "FORBIDDEN", message);
    let segments = segments(path);
    let linking = segments.contains(&"link");
    let reads = matches!(*method, Method::GET | Method::HEAD) && !linking;
    if scope.read_only && !reads {
        return Err(forbidden(
            "this admin token may only read (GET, and not the linking of a device); a change needs another token"
                .into(),
        ));
    }
    let Some(tenant) = &scope.tenant else { return Ok(()) };
    match segments.as_slice() {
        ["v1", "tenants", own, rest @ ..] if own == tenant && (!rest.is_empty() || reads) => Ok(()),
        _ => Err(forbidden(format!(
            "this admin token is limited to tenant `{tenant}`: its users, devices, routes and components \
             (/v1/tenants/{tenant}/…), and reading the tenant"
        ))),
    }
}

async fn read_call(
    parts: http::request::Parts,
    body: RequestBody,
    author: String,
    scope: AdminScope,
) -> Result<Call, Failure> {
    // Component uploads (authenticated by then) are the only large bodies.
    let upload = !author.is_empty() && parts.uri.path().contains("/components/");
    let limit = if upload { crate::runtime::MAX_COMPONENT_BYTES } else { MAX_BODY };
    let body = read_body(body, limit).await.map_err(|e| match e {
        ReadError::TooLarge(limit) => Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("this request's body may be at most {limit} bytes"),
        ),
        ReadError::Failed(e) => match e.downcast_ref::<BodyError>() {
            Some(timeout @ BodyError::TimedOut(_)) => {
                Failure::new(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", format!("{timeout}; send it at once"))
            }
            _ => Failure::invalid("the request body could not be read"),
        },
    })?;
    Ok(Call {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        last_event_id: parts.headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string),
        body,
        author,
        scope,
    })
}

impl Call {
    /// The body parsed as JSON into `T`: an empty body, which the document lets a client leave
    /// out, reads as `{}`; one of only white space is not JSON and is refused.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        let body: &[u8] = if self.body.is_empty() { b"{}" } else { &self.body };
        serde_json::from_slice(body)
            .map_err(|e| Failure::invalid(format!("the request body is not valid JSON for this endpoint: {e}")))
    }

    /// The first value of query parameter `name`, decoded as `application/x-www-form-urlencoded`
    /// (`+` is a space, `%2B` a plus, a `%` without two hex digits stays as it is).
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
    }

    /// The page size the `limit` query parameter asks for: `default` without one, else a whole
    /// number from 1 to `max` (400 otherwise).
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, Failure> {
        let Some(limit) = self.query("limit") else { return Ok(default) };
        limit
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| Failure::invalid(format!("limit `{limit}`: give a whole number from 1 to {max}")))
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_vec(value).expect("admin answers serialise");
    Ok(respond(status, "application/json", body))
}

/// 204 No Content.
pub fn no_content() -> Answer {
    let mut response = respond(StatusCode::NO_CONTENT, "application/json", Vec::new());
    response.headers_mut().remove(header::CONTENT_TYPE);
    Ok(response)
}

/// A response with a body of `content_type`.
pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Every path of the admin API as `/openapi.json` writes it (a `{…}` is one non-empty
/// segment), with the methods it takes: what tells a method the path does not take (405) from
/// a path the API does not have (404).
const ENDPOINTS: [(&str, &[&str]); 31] = [
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/openapi.json", &["GET"]),
    ("/pair", &["GET"]),
    ("/v1/tenants", &["GET", "POST"]),
    ("/v1/tenants/{tenant}", &["GET", "PATCH", "DELETE"]),
    ("/v1/tenants/{tenant}/users", &["GET", "POST"]),
    ("/v1/tenants/{tenant}/users/{user}", &["GET", "PUT", "DELETE"]),
    ("/v1/tenants/{tenant}/users/{user}/tokens", &["GET", "POST"]),
    ("/v1/tenants/{tenant}/users/{user}/tokens/{token_id}", &["DELETE"]),
    ("/v1/tenants/{tenant}/devices", &["GET", "POST"]),
    ("/v1/tenants/{tenant}/devices/{device}", &["GET", "DELETE"]),
    ("/v1/tenants/{tenant}/devices/{device}/logout", &["POST"]),
    ("/v1/tenants/{tenant}/devices/{device}/reconnect", &["POST"]),
    ("/v1/tenants/{tenant}/devices/{device}/link", &["GET", "POST", "DELETE"]),
    ("/v1/tenants/{tenant}/devices/{device}/link/qr.png", &["GET"]),
    ("/v1/tenants/{tenant}/devices/{device}/link/events", &["GET"]),
    ("/v1/tenants/{tenant}/devices/{device}/pair-code", &["POST"]),
    ("/v1/tenants/{tenant}/routes", &["GET", "PUT", "DELETE"]),
    ("/v1/tenants/{tenant}/events", &["GET"]),
    ("/v1/tenants/{tenant}/events/stream", &["GET"]),
    ("/v1/tenants/{tenant}/webhooks", &["GET", "POST"]),
    ("/v1/tenants/{tenant}/webhooks/{webhook}", &["GET", "DELETE"]),
    ("/v1/tenants/{tenant}/webhooks/{webhook}/deliveries", &["GET"]),
    ("/v1/tenants/{tenant}/webhooks/{webhook}/dead-letters", &["GET"]),
    ("/v1/tenants/{tenant}/webhooks/{webhook}/dead-letters/{event}/replay", &["POST"]),
    ("/v1/tenants/{tenant}/components", &["GET"]),
    ("/v1/tenants/{tenant}/components/{name}", &["POST"]),
    ("/v1/tenants/{tenant}/components/{name}/versions/{sha256}", &["DELETE"]),
    ("/v1/tenants/{tenant}/components/{name}/versions/{sha256}/activate", &["POST"]),
];

/// A request path's segments: the path without its leading `/` and trailing `/`s, split at
/// each `/`. Segments are compared as they are written: ids are letters, digits, `-` and `_`,
/// so a percent-encoded segment names nothing, and the token's scope check
/// ([`authorize`]) sees exactly the segments the routing does.
fn segments(path: &str) -> Vec<&str> {
    path.trim_end_matches('/').split('/').skip(1).collect()
}

/// Which module answers a path, and what of the path it is given.
#[derive(Debug, PartialEq)]
enum Resource<'a> {
    /// `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/pair` ([`ops`]).
    Open(&'a str),
    /// `/v1/tenants` and `/v1/tenants/{tenant}` ([`tenants`]).
    Tenants(Option<&'a str>),
    /// `/v1/tenants/{tenant}/users…` ([`users`]).
    Users(&'a str, &'a [&'a str]),
    /// `/v1/tenants/{tenant}/devices…` ([`devices`]).
    Devices(&'a str, &'a [&'a str]),
    /// `/v1/tenants/{tenant}/routes` ([`routes`]).
    Routes(&'a str),
    /// `/v1/tenants/{tenant}/events…` ([`events`]).
    Events(&'a str, &'a [&'a str]),
    /// `/v1/tenants/{tenant}/webhooks…` ([`webhooks`]).
    Webhooks(&'a str, &'a [&'a str]),
    /// `/v1/tenants/{tenant}/components…` ([`components`]).
    Components(&'a str, &'a [&'a str]),
}

/// The module answering the path of `segments`, if any does.
fn resource<'a>(segments: &'a [&'a str]) -> Option<Resource<'a>> {
    match segments {
        [name @ ("healthz" | "readyz" | "metrics" | "openapi.json" | "pair")] => Some(Resource::Open(name)),
        ["v1", "tenants"] => Some(Resource::Tenants(None)),
        ["v1", "tenants", tenant] => Some(Resource::Tenants(Some(tenant))),
        ["v1", "tenants", tenant, "users", rest @ ..] => Some(Resource::Users(tenant, rest)),
        ["v1", "tenants", tenant, "devices", rest @ ..] => Some(Resource::Devices(tenant, rest)),
        ["v1", "tenants", tenant, "routes"] => Some(Resource::Routes(tenant)),
        ["v1", "tenants", tenant, "events", rest @ ..] => Some(Resource::Events(tenant, rest)),
        ["v1", "tenants", tenant, "webhooks", rest @ ..] => Some(Resource::Webhooks(tenant, rest)),
        ["v1", "tenants", tenant, "components", rest @ ..] => Some(Resource::Components(tenant, rest)),
        _ => None,
    }
}

/// The methods the path of `segments` takes, if the admin API has it.
fn methods(segments: &[&str]) -> Option<&'static [&'static str]> {
    ENDPOINTS.iter().find_map(|(template, methods)| {
        let template = self::segments(template);
        let fits = template.len() == segments.len()
            && template
                .iter()
                .zip(segments)
                .all(|(expected, segment)| expected == segment || (expected.starts_with('{') && !segment.is_empty()));
        fits.then_some(*methods)
    })
}

/// The answer to a method or path the admin API does not have: 405 with `Allow` for a path
/// it has with other methods, 404 otherwise.
pub fn no_endpoint(call: &Call) -> Failure {
    let (method, path) = (&call.method, &call.path);
    match methods(&segments(path)) {
        Some(allowed) => Failure {
            allow: Some(allowed),
            ..Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                format!("`{path}` takes {}, not {method}; /openapi.json lists every endpoint", allowed.join(", ")),
            )
        },
        None => Failure::new(
            StatusCode::NOT_FOUND,
            "NO_ENDPOINT",
            format!("the admin API has no `{method} {path}`; /openapi.json lists every endpoint"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call of `method` on `path`, with no query and no body.
    fn call(method: &str, path: &str) -> Call {
        Call {
            method: method.parse().expect("a method"),
            path: path.to_string(),
            query: None,
            last_event_id: None,
            body: Bytes::new(),
            author: "test".to_string(),
            scope: AdminScope::default(),
        }
    }

    #[test]
    fn an_empty_body_reads_as_an_empty_object_and_white_space_is_no_json() {
        let with_body = |body: &'static [u8]| Call { body: Bytes::from_static(body), ..call("POST", "/v1/tenants") };
        let read = |body| with_body(body).json::<serde_json::Map<String, serde_json::Value>>().map_err(|f| f.code);
        assert_eq!(read(b""), Ok(serde_json::Map::new()));
        assert_eq!(read(b" {} "), Ok(serde_json::Map::new()));
        assert_eq!(read(b"\n"), Err("INVALID"));
        assert_eq!(read(b"  "), Err("INVALID"));
    }

    /// What [`no_endpoint`] answers a call: status, code and `Allow`.
    fn refusal(method: &str, path: &str) -> (u16, &'static str, Option<String>) {
        let failure = no_endpoint(&call(method, path));
        let code = failure.code;
        let response = failure.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json", "the JSON error envelope");
        let allow = response.headers().get(header::ALLOW).map(|value| value.to_str().unwrap().to_string());
        (response.status().as_u16(), code, allow)
    }

    /// Asserts which module the routing gives `path` to.
    fn reaches(path: &str, expected: Option<Resource<'_>>) {
        let segments = segments(path);
        assert_eq!(resource(&segments), expected, "{path:?}");
    }

    #[test]
    fn the_endpoints_are_the_documented_admin_operations() {
        let document: serde_json::Value = serde_json::from_str(ops::OPENAPI).expect("the document is JSON");
        let mut documented = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                if operation["tags"][0] == "admin" {
                    documented.push((path.clone(), method.to_uppercase()));
                }
            }
        }
        let mut routed: Vec<(String, String)> = ENDPOINTS
            .iter()
            .flat_map(|(path, methods)| methods.iter().map(move |method| (path.to_string(), method.to_string())))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(routed, documented);
    }

    #[test]
    fn each_path_reaches_its_module() {
        reaches("/v1/tenants/acme/users/e7e0/tokens", Some(Resource::Users("acme", &["e7e0", "tokens"])));
        reaches("/v1/tenants", Some(Resource::Tenants(None)));
        reaches("/v1/tenants/acme", Some(Resource::Tenants(Some("acme"))));
        reaches("/v1/tenants/acme/routes", Some(Resource::Routes("acme")));
        reaches(
            "/v1/tenants/acme/devices/main/link/qr.png",
            Some(Resource::Devices("acme", &["main", "link", "qr.png"])),
        );
        reaches("/v1/tenants/acme/components/api", Some(Resource::Components("acme", &["api"])));
        reaches("/openapi.json", Some(Resource::Open("openapi.json")));
        // Trailing slashes name the same resource.
        reaches("/v1/tenants/", Some(Resource::Tenants(None)));
        reaches("/healthz//", Some(Resource::Open("healthz")));
        reaches("/v1/tenants/acme/users/", Some(Resource::Users("acme", &[])));
        // Percent-encoded segments are taken as written: `%61cme` is no tenant's id (the store
        // answers 404), and `%761` is not `v1`.
        reaches("/v1/tenants/%61cme", Some(Resource::Tenants(Some("%61cme"))));
        for nothing in ["/", "", "/v1", "/%761/tenants", "/v1/tenants/acme/routes/x", "/V1/tenants", "//v1/tenants"] {
            reaches(nothing, None);
        }
    }

    #[test]
    fn a_known_path_answers_another_method_with_405_and_allow_anything_else_404() {
        let allowed = |methods: &str| (405, "METHOD_NOT_ALLOWED", Some(methods.to_string()));
        assert_eq!(refusal("TRACE", "/v1/tenants"), allowed("GET, POST"));
        assert_eq!(refusal("PUT", "/v1/tenants/acme/"), allowed("GET, PATCH, DELETE"));
        assert_eq!(refusal("POST", "/healthz"), allowed("GET"));
        assert_eq!(refusal("HEAD", "/metrics/"), allowed("GET"));
        assert_eq!(refusal("GET", "/v1/tenants/acme/users/e7e0/tokens/t1"), allowed("DELETE"));
        assert_eq!(refusal("PUT", "/v1/tenants/acme/devices/main/link"), allowed("GET, POST, DELETE"));
        assert_eq!(refusal("GET", "/v1/tenants/acme/components/api/versions/abc/activate"), allowed("POST"));
        // Paths the API does not have, whatever the method.
        let none = (404, "NO_ENDPOINT", None);
        assert_eq!(refusal("GET", "/v1/nothing"), none);
        assert_eq!(refusal("GET", "/v1/tenants/acme/devices/main/%6Cink"), none, "percent-encoded: not `link`");
        assert_eq!(refusal("TRACE", "/v1/tenants//users"), none, "an empty segment is no id");
        assert_eq!(refusal("GET", "/v1/tenants/acme/devices/main/link/qr.png/x"), none);
        assert_eq!(refusal("GET", "/pair.html"), none);
    }

    #[test]
    fn scope_checks_see_the_segments_the_routing_sees() {
        let read_only = AdminScope { tenant: None, read_only: true };
        let code =
            |scope: &AdminScope, method: Method, path: &str| authorize(scope, &method, path).err().map(|f| f.code);
        assert_eq!(code(&read_only, Method::GET, "/v1/tenants/acme/devices/main"), None);
        assert_eq!(code(&read_only, Method::GET, "/v1/tenants/acme/devices/main/link/"), Some("FORBIDDEN"));
        assert_eq!(code(&read_only, Method::GET, "/v1/tenants/acme/devices/main/link/events"), Some("FORBIDDEN"));
        let acme = AdminScope { tenant: Some("acme".into()), read_only: false };
        assert_eq!(code(&acme, Method::GET, "/v1/tenants/acme/"), None);
        assert_eq!(code(&acme, Method::DELETE, "/v1/tenants/acme/"), Some("FORBIDDEN"));
        assert_eq!(code(&acme, Method::GET, "/v1/tenants/%61cme/users"), Some("FORBIDDEN"));
        assert_eq!(code(&acme, Method::GET, "/v1/tenants/globex/users"), Some("FORBIDDEN"));
        assert_eq!(code(&acme, Method::POST, "/v1/tenants/acme/users"), None);
    }

    #[test]
    fn metrics_need_a_token_unless_only_this_machine_can_ask() {
        assert!(!needs_token("/metrics", true));
        assert!(needs_token("/metrics", false));
        assert!(needs_token("/metrics/", false), "a trailing slash is the same endpoint");
        assert!(needs_token("/v1/tenants", true));
        assert!(!needs_token("/healthz", false));
    }

    #[test]
    fn decodes_query_values() {
        let call = |query: &str| Call { query: Some(query.to_string()), ..call("GET", "/v1/tenants/acme/routes") };
        let value = |query: &str, name: &str| call(query).query(name);
        assert_eq!(value("prefix=%2Fdevices%2fx", "prefix").as_deref(), Some("/devices/x"));
        assert_eq!(value("a=1&prefix=%2Fa+b%2Bc", "prefix").as_deref(), Some("/a b+c"));
        assert_eq!(value("prefix=100%&smoke=%zz", "smoke").as_deref(), Some("%zz"));
        // `u8::from_str_radix("+A", 16)` is `Ok(10)`: `%+A` must not decode to a newline.
        assert_eq!(value("prefix=%+A%-a", "prefix").as_deref(), Some("% A%-a"));
        assert_eq!(value("activate", "activate").as_deref(), Some(""));
        assert_eq!(value("prefix=x", "smoke"), None);
        assert_eq!(call("").query("prefix"), None);
    }
}

//! The gateway: tenants, their components and device sessions, and the handling of one
//! HTTP request from tenant selection to the component's response.
//!
//! The gateway serves from an immutable [`Tenants`] value behind an [`ArcSwap`]; after every
//! change to the [store](crate::store), [`Gateway::reload`] builds a new one and swaps it in.
//! Requests in flight keep the value they started with; finding the tenant and component
//! takes no lock.
//! What must outlive a rebuild — compiled components, each tenant's warm instances of them,
//! device sessions and their caches, each tenant's admission state — is kept in [`Parts`] and
//! reused.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::capability::Capabilities;
use crate::capability::logging::{ComponentLog, tenant_log_rate};
use crate::capability::outbound::{Outbound, OutboundPolicy};
use crate::config::Limits;
use crate::device::cache::Cached;
use crate::device::{DeviceManager, DeviceSession};
use crate::metrics::{Metrics, Served};
use crate::runtime::capacity::Share;
use crate::runtime::cpu::CpuUse;
use crate::runtime::dispatch::{DispatchError, dispatch};
use crate::runtime::pool::InstancePool;
use crate::runtime::violation::Reporter;
use crate::runtime::{ComponentError, HandlerComponent, Runtime, builtin};
use crate::server::connections::BodyError;
use crate::store::devices::recorded_state;
use crate::store::{Snapshot, Store, StoreError};
use crate::tenancy::admission::{Admission, Caller, ClientAddr, Refusal};
use crate::tenancy::{Route, Tenant, Tenants};
use crate::token::{self, TokenHash};

/// The response header naming the component (and, for a tenant's own component, the
/// version) that served the request: `builtin:devices-api`, `acme/hmac-auth@1a2b3c4d5e6f`.
pub const COMPONENT_HEADER: &str = "x-waedge-component";

/// The response body type of every gateway response.
pub type ResponseBody = HyperOutgoingBody;

/// Everything needed to serve requests.
pub struct Gateway {
    runtime: Runtime,
    devices: Arc<dyn DeviceManager>,
    defaults: Limits,
    default_tenant: Option<String>,
    metrics: Arc<Metrics>,
    outbound: Arc<Outbound>,
    tenants: ArcSwap<Tenants>,
    parts: Mutex<Parts>,
}

/// What a rebuild of the tenants reuses.
#[derive(Default)]
struct Parts {
    /// Compiled components: built-ins by name, files by path and stamp, deployed versions by
    /// [`deployed_key`].
    components: HashMap<String, Arc<HandlerComponent>>,
    /// Device sessions by (tenant, device): the session and the cached view requests use.
    sessions: HashMap<(String, String), Session>,
    /// Admission state by tenant.
    admissions: HashMap<String, Arc<Admission>>,
    /// Instance pools by tenant.
    pools: HashMap<String, Vec<Arc<InstancePool>>>,
    /// Each tenant's share of the pooling allocator.
    shares: HashMap<String, Arc<Share>>,
    /// Deployed versions compiled by [`Gateway::prepare_component`] and when: kept through
    /// reloads for [`PREPARED_FOR`], the time a deploy takes to store them.
    prepared: HashMap<String, Instant>,
}

/// How long a version compiled for a deploy stays compiled before the store holds it.
const PREPARED_FOR: Duration = Duration::from_secs(600);

impl Parts {
    /// The component compiled under `key`; compiled now by `compile` (named `name`, from what
    /// `bytes` reads) if it is not yet.
    fn compiled(
        &mut self,
        compile: impl FnOnce(&str, &[u8]) -> Result<HandlerComponent, ComponentError>,
        key: String,
        name: &str,
        bytes: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Arc<HandlerComponent>> {
        if let Some(component) = self.components.get(&key) {
            return Ok(component.clone());
        }
        let component = Arc::new(compile(name, &bytes()?)?);
        self.components.insert(key, component.clone());
        Ok(component)
    }
}

/// A device's session and the (cached) view of it requests use.
struct Session {
    raw: Arc<dyn DeviceSession>,
    ttl: Duration,
    served: Arc<dyn DeviceSession>,
}

impl Gateway {
    /// A gateway with no tenant yet: [`reload`](Gateway::reload) gives it the store's.
    /// `defaults` are the limits of tenants that set none; `default_tenant` serves requests
    /// matching no host name and no token.
    pub fn new(
        runtime: Runtime,
        devices: Arc<dyn DeviceManager>,
        defaults: Limits,
        default_tenant: Option<String>,
    ) -> Gateway {
        Gateway {
            runtime,
            devices,
            defaults,
            default_tenant,
            metrics: Arc::new(Metrics::default()),
            outbound: Arc::new(Outbound::system()),
            tenants: ArcSwap::from_pointee(Tenants::default()),
            parts: Mutex::new(Parts::default()),
        }
    }

    /// The gateway with components' outbound HTTP sent through `outbound` (else the system's
    /// resolver is used).
    pub fn with_outbound(mut self, outbound: Outbound) -> Gateway {
        self.outbound = Arc::new(outbound);
        self
    }

    /// Rebuilds the tenants from the store and swaps them in. Opens the sessions of new
    /// devices and compiles new components (CPU-heavy: call it off the async workers, e.g.
    /// in [`Store::run`]). A route whose component cannot be loaded is left out; the
    /// returned list says which and why.
    pub fn reload(&self, store: &Store) -> Result<Vec<String>, StoreError> {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = store.snapshot()?;
        Ok(self.load(&mut parts, &snapshot, store))
    }

    fn load(&self, parts: &mut Parts, snapshot: &Snapshot, store: &Store) -> Vec<String> {
        let mut problems = Vec::new();
        let mut tenants = Vec::new();
        let mut live_sessions = HashMap::new();
        let mut live_admissions = HashMap::new();
        let mut live_pools = HashMap::new();
        let mut live_shares = HashMap::new();
        let mut live_components: Vec<Arc<HandlerComponent>> = Vec::new();
        for state in &snapshot.tenants {
            let tenant_id = &state.tenant.id;
            let limits = state.tenant.limits.apply(self.defaults);
            let mut old_pools = parts.pools.remove(tenant_id).unwrap_or_default();
            let share = parts
                .shares
                .remove(tenant_id)
                .unwrap_or_else(|| Share::new(0, limits.cpu_millicores, tenant_log_rate()));
            share.cpu().set_millicores(limits.cpu_millicores);
            let mut pools: Vec<Arc<InstancePool>> = Vec::new();
            let mut routes = Vec::new();
            for route in &state.routes {
                let component = match route.component.strip_prefix("component:") {
                    Some(name) => match state.components.iter().find(|c| c.name == name && c.active) {
                        Some(active) => self.deployed_in(parts, store, tenant_id, name, &active.sha256),
                        None => Err(anyhow::anyhow!("component `{name}` has no active version: deploy it")),
                    },
                    None => self.component_in(parts, &route.component),
                };
                match component {
                    Ok(component) => {
                        live_components.push(component.clone());
                        let pool = self.pool_for(&mut pools, &mut old_pools, component, limits, &share);
                        routes.push(Route::new(&route.prefix, pool));
                    }
                    Err(e) => {
                        problems.push(format!("tenant `{tenant_id}`, route `{}`: {e:#}", route.prefix));
                        routes.push(Route::unavailable(&route.prefix, &route.component));
                    }
                }
            }
            let ttl = Duration::from_secs(limits.cache_ttl_seconds);
            let mut devices = BTreeMap::new();
            for device in &state.devices {
                let key = (tenant_id.clone(), device.id.clone());
                let session = match parts.sessions.remove(&key) {
                    Some(session) if session.ttl == ttl => session,
                    Some(session) => self.serve_session(session.raw, ttl),
                    None => self.serve_session(self.devices.open(tenant_id, &device.id, recorded_state(device)), ttl),
                };
                devices.insert(device.id.clone(), session.served.clone());
                live_sessions.insert(key, session);
            }
            let admission = match parts.admissions.remove(tenant_id) {
                Some(admission) if admission.enforces(&limits) => admission,
                _ => Arc::new(Admission::new(limits)),
            };
            live_admissions.insert(tenant_id.clone(), admission.clone());
            live_pools.insert(tenant_id.clone(), pools);
            live_shares.insert(tenant_id.clone(), share);
            let tenant = Tenant::new(state, limits, devices, routes, admission);
            tenants.push((tenant, state.tenant.hosts.clone()));
        }
        parts.sessions = live_sessions;
        parts.admissions = live_admissions;
        parts.pools = live_pools;
        let share_size = self.runtime.share_size(live_shares.len());
        live_shares.values().for_each(|share| share.resize(share_size));
        parts.shares = live_shares;
        // Compiled versions still in the store stay compiled, so a rollback is only a swap;
        // anything else no route serves is dropped.
        let stored: std::collections::HashSet<String> = snapshot
            .tenants
            .iter()
            .flat_map(|t| t.components.iter().map(|v| deployed_key(&t.tenant.id, &v.name, &v.sha256)))
            .collect();
        parts.prepared.retain(|key, at| !stored.contains(key) && at.elapsed() < PREPARED_FOR);
        let prepared = &parts.prepared;
        parts.components.retain(|key, component| {
            stored.contains(key)
                || prepared.contains_key(key)
                || live_components.iter().any(|live| Arc::ptr_eq(live, component))
        });
        // So are their artefacts on disk, and those of every other stored version.
        let mut used: std::collections::HashSet<&str> =
            snapshot.tenants.iter().flat_map(|t| t.components.iter().map(|v| v.sha256.as_str())).collect();
        used.extend(parts.components.values().map(|component| component.sha256()));
        self.runtime.retain_cached(&used);
        // Metrics keep the series of what is served or stored, nothing of what is gone.
        let mut kept: HashMap<&str, std::collections::HashSet<String>> = HashMap::new();
        for state in &snapshot.tenants {
            let id = state.tenant.id.as_str();
            let names = state.components.iter().map(|v| deployed_name(id, &v.name, &v.sha256));
            kept.entry(id).or_default().extend(names);
        }
        for (tenant, _) in &tenants {
            let served = tenant.routes().iter().map(|route| match route.instances() {
                Ok(instances) => instances.component().name().to_string(),
                Err(component) => component.to_string(),
            });
            kept.entry(tenant.id()).or_default().extend(served);
        }
        let anywhere: std::collections::HashSet<&String> = kept.values().flatten().collect();
        self.metrics.retire(|tenant, component| match tenant {
            "" => anywhere.contains(&component.to_string()),
            tenant => kept.get(tenant).is_some_and(|names| names.contains(component)),
        });
        self.tenants.store(Arc::new(Tenants::new(tenants, self.default_tenant.as_deref())));
        problems
    }

    /// The tenant's instances of `component` under `limits`: the pool another of its routes
    /// already uses, else the one it had before the reload (warm instances survive a reload
    /// unless the component or the limits they were made under changed), else a new one.
    fn pool_for(
        &self,
        pools: &mut Vec<Arc<InstancePool>>,
        old_pools: &mut Vec<Arc<InstancePool>>,
        component: Arc<HandlerComponent>,
        limits: Limits,
        share: &Arc<Share>,
    ) -> Arc<InstancePool> {
        let reusable = |pool: &Arc<InstancePool>| Arc::ptr_eq(pool.component(), &component) && *pool.limits() == limits;
        if let Some(pool) = pools.iter().find(|pool| reusable(pool)) {
            return pool.clone();
        }
        let pool = match old_pools.iter().position(reusable) {
            Some(at) => old_pools.swap_remove(at),
            None => Arc::new(self.runtime.pool(component, limits, share.clone())),
        };
        pools.push(pool.clone());
        pool
    }

    fn serve_session(&self, raw: Arc<dyn DeviceSession>, ttl: Duration) -> Session {
        let served: Arc<dyn DeviceSession> =
            if ttl.is_zero() { raw.clone() } else { Arc::new(Cached::new(raw.clone(), ttl, self.metrics.clone())) };
        Session { raw, ttl, served }
    }

    /// Checks that `name` names a component that loads: `builtin:NAME` or a readable file
    /// holding a component for the `handler` world. Compiles it if it is new.
    pub fn check_component(&self, name: &str) -> anyhow::Result<()> {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        self.component_in(&mut parts, name).map(drop)
    }

    /// Validates and compiles version `sha256` of `tenant`'s component `name`, ready for the
    /// reload that activates it. CPU-heavy: call it off the async workers.
    pub fn prepare_component(&self, tenant: &str, name: &str, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let key = deployed_key(tenant, name, sha256);
        if self.parts.lock().unwrap_or_else(|p| p.into_inner()).components.contains_key(&key) {
            return Ok(());
        }
        // Compiled without the lock: a reload (a token revocation, say) does not wait for it.
        let component = Arc::new(self.runtime.compile_deployed(&deployed_name(tenant, name, sha256), bytes)?);
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        // Kept through the reloads that may run before the deploy has stored the version.
        parts.prepared.insert(key.clone(), Instant::now());
        parts.components.entry(key).or_insert(component);
        Ok(())
    }

    /// Sends `GET path` through version `sha256` of `tenant`'s component `name` (prepared,
    /// not necessarily active) as a smoke test; returns the status and the start of the body.
    pub async fn smoke(&self, tenant: &str, name: &str, sha256: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let tenants = self.tenants();
        let tenant = tenants.get(tenant).ok_or_else(|| anyhow::anyhow!("tenant `{tenant}` does not exist"))?.clone();
        let key = deployed_key(tenant.id(), name, sha256);
        let (component, share) = {
            let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            (parts.components.get(&key).cloned(), parts.shares.get(tenant.id()).cloned())
        };
        let component = component.ok_or_else(|| anyhow::anyhow!("version {sha256} of `{name}` is not prepared"))?;
        let share = share.ok_or_else(|| anyhow::anyhow!("tenant `{}` is not loaded yet", tenant.id()))?;
        let instances = Arc::new(self.runtime.pool(component, *tenant.limits(), share));
        let request = Request::get(path).header(header::HOST, "localhost").body(Full::new(Bytes::new()))?;
        let response =
            serve(&tenant, &instances, &self.metrics, &self.outbound, Caller::User, Instant::now(), request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let start = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        Ok((status, start))
    }

    fn deployed_in(
        &self,
        parts: &mut Parts,
        store: &Store,
        tenant: &str,
        name: &str,
        sha256: &str,
    ) -> anyhow::Result<Arc<HandlerComponent>> {
        let key = deployed_key(tenant, name, sha256);
        let display = deployed_name(tenant, name, sha256);
        let compile = |name: &str, bytes: &[u8]| self.runtime.compile_deployed(name, bytes);
        parts.compiled(compile, key, &display, || Ok(store.component_bytes(tenant, name, sha256)?))
    }

    fn component_in(&self, parts: &mut Parts, name: &str) -> anyhow::Result<Arc<HandlerComponent>> {
        match name.strip_prefix("builtin:") {
            Some(builtin) => parts.compiled(
                |name, bytes| self.runtime.compile(name, bytes),
                name.to_string(),
                name,
                || {
                    builtin::get(builtin).map(<[u8]>::to_vec).ok_or_else(|| {
                        let known: Vec<_> = builtin::names().map(|n| format!("builtin:{n}")).collect();
                        anyhow::anyhow!("unknown component `{name}`; built-ins are {}", known.join(", "))
                    })
                },
            ),
            None => {
                // A file is known by its path, modification time and size, so an edited file
                // is compiled again at the next reload.
                let meta = std::fs::metadata(name).map_err(|e| anyhow::anyhow!("cannot read component {name}: {e}"))?;
                let modified = meta.modified().map_err(|e| anyhow::anyhow!("cannot read component {name}: {e}"))?;
                let key = format!("file:{name}@{modified:?}+{}", meta.len());
                // Named by its file name only: the name is in a response header, and a server
                // path is nobody's business outside.
                let file_name = std::path::Path::new(name).file_name().unwrap_or_default().to_string_lossy();
                let display = format!("file:{file_name}");
                parts.compiled(
                    |name, bytes| self.runtime.compile(name, bytes),
                    key,
                    &display,
                    || read_component_file(name, &meta),
                )
            }
        }
    }

    /// Retires the warm instances that have been idle for longer than
    /// [`IDLE_TIMEOUT`](crate::runtime::pool::IDLE_TIMEOUT), returning their memory. Call it
    /// periodically.
    pub fn retire_idle_instances(&self) {
        for tenant in self.tenants().iter() {
            tenant.routes().iter().filter_map(|route| route.instances().ok()).for_each(|pool| pool.retire_idle());
        }
    }

    /// The tenants being served now.
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.load_full()
    }

    /// The device sessions' manager.
    pub fn devices(&self) -> &Arc<dyn DeviceManager> {
        &self.devices
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What each loaded tenant's guests have used of its CPU budget.
    pub fn cpu_use(&self) -> Vec<(String, CpuUse)> {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.shares.iter().map(|(tenant, share)| (tenant.clone(), share.cpu().used())).collect()
    }

    /// Serves one request. Never fails: every problem becomes a JSON error response.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let tenants = self.tenants();
        let (response, served) = route(&tenants, &self.metrics, &self.outbound, request).await;
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        tracing::info!(
            target: "waedge::access",
            %method, path, tenant = served.tenant, component = served.component, status,
            micros = elapsed.as_micros() as u64,
        );
        self.metrics.request(&served, status, elapsed);
        response
    }
}

async fn route<B>(
    tenants: &Tenants,
    metrics: &Arc<Metrics>,
    outbound: &Arc<Outbound>,
    request: Request<B>,
) -> (Response<ResponseBody>, Served)
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let arrived = Instant::now();
    let mut served = Served { tenant: "-".into(), route: "-".into(), component: "-".into() };
    let path = request.uri().path();
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the URI's authority.
    let Some(authority) = authority(&request) else {
        let message = "the request has no valid Host header: send the host name the gateway is reached by";
        return (Envelope::of_path(path).error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message), served);
    };
    let headers = request.headers();
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(token::bearer);
    let token = bearer.map(TokenHash::of);
    let Some(tenant) = tenants.select(Some(authority.host()), token.as_ref()) else {
        return (unauthorized(Envelope::of_path(path), token.is_some()), served);
    };
    served.tenant = tenant.id().to_string();
    let Some(route) = tenant.route(path) else {
        let message = format!("no route for `{path}` on this tenant");
        return (Envelope::of_path(path).error(StatusCode::NOT_FOUND, "NO_ROUTE", &message), served);
    };
    served.route = route.prefix().to_string();
    let instances = match route.instances() {
        Ok(instances) => instances,
        Err(component) => {
            served.component = component.to_string();
            let message =
                "the component serving this path cannot be loaded; the operator can see why in the gateway's log";
            let envelope = Envelope::of_component(component);
            return (envelope.error(StatusCode::SERVICE_UNAVAILABLE, "COMPONENT_UNAVAILABLE", message), served);
        }
    };
    served.component = instances.component().name().to_string();
    let caller = match token.as_ref().and_then(|token| tenant.user_by_token(token)) {
        Some(_) => Caller::User,
        None => {
            let client = request.extensions().get::<ClientAddr>().copied();
            Caller::Anonymous(client.unwrap_or(ClientAddr(std::net::Ipv6Addr::UNSPECIFIED.into())))
        }
    };
    (serve(tenant, instances, metrics, outbound, caller, arrived, request).await, served)
}

/// The request's authority: its `Host` header, or the authority of its URI (HTTP/2), if it
/// is a valid one.
fn authority<B>(request: &Request<B>) -> Option<http::uri::Authority> {
    match request.headers().get(header::HOST) {
        Some(host) => host.to_str().ok()?.parse().ok(),
        None => request.uri().authority().cloned(),
    }
}

/// 401 for a request no tenant serves: its token is missing (`known_token` false) or unknown.
fn unauthorized(envelope: Envelope, sent_token: bool) -> Response<ResponseBody> {
    let (message, challenge) = if sent_token {
        (
            "the API token is not valid (revoked, or never issued): ask the operator for a new one",
            "Bearer error=\"invalid_token\"",
        )
    } else {
        ("this API needs an API token: send `Authorization: Bearer <token>`", "Bearer")
    };
    let mut response = envelope.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

async fn serve<B>(
    tenant: &Arc<Tenant>,
    instances: &Arc<InstancePool>,
    metrics: &Arc<Metrics>,
    outbound: &Arc<Outbound>,
    caller: Caller,
    arrived: Instant,
    request: Request<B>,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limits = *instances.limits();
    let component = instances.component();
    let envelope = Envelope::of_component(component.name());
    let too_many = |refusal: Refusal| {
        let mut response = envelope.error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", &refusal.to_string());
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refusal.retry_after_seconds()));
        response
    };
    // The rate and a place among the bodies being read are taken first (cheap); the body is
    // read under the request's deadline; only then is a place among the requests being served
    // held, so a slow upload never holds one.
    let ticket = match tenant.admission().admit(&caller) {
        Ok(ticket) => ticket,
        Err(refusal) => return too_many(refusal),
    };
    let deadline = arrived + Duration::from_millis(limits.request_timeout_ms);
    let (parts, body) = request.into_parts();
    let body =
        match tokio::time::timeout_at(deadline.into(), Limited::new(body, limits.max_request_body_bytes).collect())
            .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                let message = format!("request body is larger than {} bytes", limits.max_request_body_bytes);
                return envelope.error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &message);
            }
            Ok(Err(e)) if !matches!(e.downcast_ref::<BodyError>(), Some(BodyError::TimedOut(_))) => {
                return envelope.error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the request body could not be read");
            }
            Ok(Err(_)) | Err(_) => {
                let message = "the request body did not arrive in time; send it at once";
                return envelope.error(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", message);
            }
        };
    let permit = match ticket.hold() {
        Ok(permit) => permit,
        Err(refusal) => return too_many(refusal),
    };
    let reporter = Reporter::new(tenant.id(), component.name().clone(), metrics.clone());
    let log_rate = instances.share().log_rate().clone();
    let log = ComponentLog::new(tenant.id(), component.name().clone(), log_rate, reporter.clone());
    let capabilities = Capabilities { tenant: tenant.clone(), deadline, log };
    let outbound = OutboundPolicy::new(
        outbound.clone(),
        tenant.outbound_hosts().clone(),
        tenant.outbound_private_hosts().clone(),
        limits.max_outbound_requests,
        reporter.clone(),
        deadline,
    );
    #[cfg(feature = "bench")]
    if parts.uri.path().starts_with(crate::bench::PREFIX) {
        let mut capabilities = capabilities;
        let mut response = crate::bench::serve(&mut capabilities, &parts).await;
        response.headers_mut().insert(COMPONENT_HEADER, HeaderValue::from_static("native"));
        drop(permit);
        return response;
    }
    let request = Request::from_parts(parts, Full::new(body));
    let anonymous = matches!(caller, Caller::Anonymous(_));
    let dispatched = match instances.share().take(anonymous) {
        Ok(slot) => {
            dispatch(instances, slot, capabilities, outbound, metrics, request, limits.max_response_body_bytes).await
        }
        Err(in_use) => Err(DispatchError::Capacity(in_use.to_string())),
    };
    let failure = match dispatched {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            if let Ok(name) = HeaderValue::from_str(component.name()) {
                parts.headers.insert(COMPONENT_HEADER, name);
            }
            drop(permit);
            return Response::from_parts(parts, Full::new(body).map_err(|never| match never {}).boxed_unsync());
        }
        Err(failure) => failure,
    };
    let (status, code, limit) = match failure {
        DispatchError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "COMPONENT_TIMEOUT", "request_timeout_ms"),
        DispatchError::MemoryLimit => (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_MEMORY_LIMIT", "memory_mib"),
        DispatchError::ResourceLimit | DispatchError::FieldsTooLarge => {
            (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_RESOURCE_LIMIT", "host_resources")
        }
        DispatchError::InstanceLimit => {
            (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_INSTANCE_LIMIT", "max_instances")
        }
        DispatchError::TableLimit => (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_TABLE_LIMIT", "max_tables"),
        DispatchError::ResponseTooLarge(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_RESPONSE_TOO_LARGE", "max_response_body_bytes")
        }
        DispatchError::Trap(_) | DispatchError::NoResponse | DispatchError::Refused(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_FAILED", "trap")
        }
        // The host's limit, not the component's: no violation.
        DispatchError::Capacity(_) => {
            let mut response = envelope.error(StatusCode::SERVICE_UNAVAILABLE, "CAPACITY", &failure.to_string());
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            return response;
        }
    };
    reporter.violation(limit, &failure.to_string());
    envelope.error(status, code, &failure.to_string())
}

/// Reads a component file named by a route (`meta` is its metadata): a regular file of at
/// most the deploy size limit.
fn read_component_file(path: &str, meta: &std::fs::Metadata) -> anyhow::Result<Vec<u8>> {
    let limit = crate::admin::components::MAX_COMPONENT as u64;
    anyhow::ensure!(meta.is_file(), "component {path} is not a regular file");
    anyhow::ensure!(meta.len() <= limit, "component {path} is larger than {limit} bytes");
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read component {path}: {e}"))
}

/// The key a deployed version is compiled under: `TENANT/NAME@` and its whole hash, so two
/// versions are never taken for one another.
fn deployed_key(tenant: &str, name: &str, sha256: &str) -> String {
    format!("{tenant}/{name}@{sha256}")
}

/// The name a deployed version is logged and measured under: `TENANT/NAME@` and the first 12
/// hex digits of its hash (a display name only: [`deployed_key`] tells versions apart).
fn deployed_name(tenant: &str, name: &str, sha256: &str) -> String {
    format!("{tenant}/{name}@{}", &sha256[..sha256.len().min(12)])
}

/// The shape of a host-generated error: that of the API the request is for, so a client
/// reads the host's errors the way it reads the API's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envelope {
    /// `{"error": {"code": …, "message": …}}`: the devices API's and the host's own.
    Standard,
    /// `{"success": false, "error": …, "error_code": …, "timestamp": …}`: the contacts API's
    /// (`seeds/contacts-api.md`).
    Contacts,
}

impl Envelope {
    /// The envelope of the API served by `component`.
    fn of_component(component: &str) -> Self {
        if component == "builtin:contacts-api" { Envelope::Contacts } else { Envelope::Standard }
    }

    /// The envelope of the API at `path` when no route is known yet: the contacts API's under
    /// `/contacts`, where the configurations this host ships serve it.
    fn of_path(path: &str) -> Self {
        if crate::tenancy::prefix_matches("/contacts", path) { Envelope::Contacts } else { Envelope::Standard }
    }

    fn error(self, status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
        match self {
            Envelope::Standard => error(status, code, message),
            Envelope::Contacts => {
                /// The contacts API's error, its fields in the seed's order.
                #[derive(serde::Serialize)]
                struct ContactsError<'a> {
                    success: bool,
                    error: &'a str,
                    error_code: &'a str,
                    timestamp: String,
                }
                let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                json_response(status, &ContactsError { success: false, error: message, error_code: code, timestamp })
            }
        }
    }
}

/// A host-generated JSON error: `{"error": {"code": …, "message": …}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(status, &serde_json::json!({ "error": { "code": code, "message": message } }))
}

/// A host-generated JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<ResponseBody> {
    let body = serde_json::to_string(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

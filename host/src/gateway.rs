//! The gateway: tenants, their components and device sessions, and the handling of one
//! HTTP request from tenant selection to the component's response.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::capability::Capabilities;
use crate::capability::outbound::OutboundPolicy;
use crate::config::{Config, RouteConfig};
use crate::device::DeviceSession;
use crate::device::cache::Cached;
use crate::runtime::dispatch::{DispatchError, dispatch};
use crate::runtime::state::RequestState;
use crate::runtime::{HandlerComponent, Runtime, builtin};
use crate::tenancy::{Route, Tenant, Tenants};
use crate::token;

/// The response body type of every gateway response.
pub type ResponseBody = HyperOutgoingBody;

/// Opens the device session for `(tenant id, device id)`.
pub type DeviceOpener<'a> = dyn Fn(&str, &str) -> Arc<dyn DeviceSession> + 'a;

/// Everything needed to serve requests.
pub struct Gateway {
    tenants: Tenants,
}

impl Gateway {
    /// Builds the gateway from a validated configuration: compiles every component the routes
    /// name (each once), and opens each device session through `open_device`.
    pub fn new(config: &Config, runtime: &Runtime, open_device: &DeviceOpener<'_>) -> anyhow::Result<Gateway> {
        let mut compiled: HashMap<String, Arc<HandlerComponent>> = HashMap::new();
        let mut tenants = Vec::new();
        for tenant in &config.tenants {
            let limits = tenant.limits.apply(config.limits);
            let mut routes = Vec::new();
            for route in &tenant.routes {
                let component = match compiled.get(&route.component) {
                    Some(component) => component.clone(),
                    None => {
                        let component = Arc::new(load_component(runtime, route)?);
                        compiled.insert(route.component.clone(), component.clone());
                        component
                    }
                };
                routes.push(Route::new(&route.prefix, component));
            }
            let ttl = Duration::from_secs(limits.cache_ttl_seconds);
            let devices: BTreeMap<String, Arc<dyn DeviceSession>> = tenant
                .devices
                .iter()
                .map(|device| {
                    let session = open_device(&tenant.id, &device.id);
                    let session: Arc<dyn DeviceSession> =
                        if ttl.is_zero() { session } else { Arc::new(Cached::new(session, ttl)) };
                    (device.id.clone(), session)
                })
                .collect();
            tenants.push((Tenant::new(tenant, limits, devices, routes), tenant.hosts.clone()));
        }
        Ok(Gateway { tenants: Tenants::new(tenants, config.default_tenant.as_deref()) })
    }

    /// The tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
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
        let (response, tenant, component) = self.route(request).await;
        tracing::info!(
            target: "waedge::access",
            %method, path, tenant, component, status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
        );
        response
    }

    async fn route<B>(&self, request: Request<B>) -> (Response<ResponseBody>, &str, &str)
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let headers = request.headers();
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(token::bearer);
        let Some(tenant) = self.tenants.select(host, bearer) else {
            let message = "no tenant serves this request: use a tenant's host name or API token";
            return (error(StatusCode::NOT_FOUND, "NO_TENANT", message), "-", "-");
        };
        let Some(component) = tenant.route(request.uri().path()) else {
            let message = format!("no route for `{}` on this tenant", request.uri().path());
            return (error(StatusCode::NOT_FOUND, "NO_ROUTE", &message), tenant.id(), "-");
        };
        let response = serve(tenant, component, request).await;
        (response, tenant.id(), component.name())
    }
}

async fn serve<B>(tenant: &Arc<Tenant>, component: &Arc<HandlerComponent>, request: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limits = *tenant.limits();
    let Ok(_permit) = tenant.admit() else {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", "too many concurrent requests for this tenant; retry shortly");
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, limits.max_request_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            let message = format!("request body is larger than {} bytes", limits.max_request_body_bytes);
            return error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &message);
        }
        Err(_) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the request body could not be read"),
    };
    let capabilities = Capabilities {
        tenant: tenant.clone(),
        component: component.name().clone(),
        deadline: Instant::now() + Duration::from_millis(limits.request_timeout_ms),
    };
    let outbound = OutboundPolicy::new(tenant.outbound_hosts().clone());
    let memory = usize::try_from(limits.memory_mib << 20).unwrap_or(usize::MAX);
    let state = RequestState::new(capabilities, outbound, memory);
    match dispatch(component, state, Request::from_parts(parts, Full::new(body))).await {
        Ok(response) => response,
        Err(failure) => {
            tracing::warn!(tenant = tenant.id(), component = &**component.name(), "{failure}");
            let (status, code) = match failure {
                DispatchError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "COMPONENT_TIMEOUT"),
                DispatchError::MemoryLimit => (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_MEMORY_LIMIT"),
                DispatchError::Trap(_) | DispatchError::NoResponse | DispatchError::Refused(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_FAILED")
                }
            };
            error(status, code, &failure.to_string())
        }
    }
}

fn load_component(runtime: &Runtime, route: &RouteConfig) -> anyhow::Result<HandlerComponent> {
    let name = &route.component;
    let bytes = match name.strip_prefix("builtin:") {
        Some(builtin) => builtin::get(builtin)
            .ok_or_else(|| {
                let known: Vec<_> = builtin::names().map(|n| format!("builtin:{n}")).collect();
                anyhow::anyhow!("route {}: unknown component `{name}`; built-ins are {}", route.prefix, known.join(", "))
            })?
            .to_vec(),
        None => std::fs::read(name).map_err(|e| anyhow::anyhow!("route {}: cannot read component {name}: {e}", route.prefix))?,
    };
    Ok(runtime.compile(name, &bytes)?)
}

/// A host-generated JSON error: `{"error": {"code": …, "message": …}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

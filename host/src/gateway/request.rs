//! One request: the tenant (host name, token, default), the route, admission, the body read
//! under the deadline, and the component's answer or the host's error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;

use tracing::Instrument;
use waedge_store::token::TokenHash;

use crate::bearer::bearer;
use crate::body::{BodyError, ReadError, read_body};
use crate::capability::Capabilities;
use crate::capability::logging::ComponentLog;
use crate::capability::outbound::{Outbound, OutboundPolicy};
use crate::capability::request::RequestContext;
use crate::limits::Limits;
use crate::runtime::capacity::Share;
use crate::runtime::dispatch::{DispatchError, dispatch};
use crate::runtime::pool::InstancePool;
use crate::telemetry::metrics::{Metrics, Served};
use crate::telemetry::violation::Reporter;
use crate::tenancy::admission::{Caller, ClientAddr, Refusal};
use crate::tenancy::native::NativeRoute;
use crate::tenancy::{Target, Tenant, Tenants};

use super::envelope::Envelope;
use super::{COMPONENT_HEADER, Gateway, REQUEST_ID_HEADER};
use crate::body::ResponseBody;

impl Gateway {
    /// Serves one request. Never fails: every problem becomes a JSON error response.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let id = RequestContext::new_id();
        let span = request_span(&id);
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        async {
            let (mut response, served) = match &self.watermark {
                // Refused before anything is looked up: this node may serve a revoked token.
                _ if self.is_behind() => (Envelope::of_path(&path).behind(), Served::nobody()),
                // Shed before anything is read or looked up: it is the cheapest answer there is.
                Some(watermark) if watermark.exceeded() => {
                    let message =
                        format!("the gateway is above its memory watermark ({} MiB); retry shortly", watermark.mib());
                    (Envelope::of_path(&path).capacity(&message), Served::nobody())
                }
                _ => route(&self.tenants(), &self.metrics, &self.outbound, id.clone(), request).await,
            };
            // A component may answer with an id of its own (one it passed on, say): it stands.
            if !response.headers().contains_key(REQUEST_ID_HEADER)
                && let Ok(value) = HeaderValue::from_str(&id)
            {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
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
        .instrument(span)
        .await
    }
}

/// The span every log line about request `id` is written in. At the error level, so that it
/// is there whatever the log filter lets through.
pub(super) fn request_span(id: &str) -> tracing::Span {
    tracing::error_span!("request", request_id = id)
}

async fn route<B>(
    tenants: &Tenants,
    metrics: &Arc<Metrics>,
    outbound: &Arc<Outbound>,
    id: Arc<str>,
    request: Request<B>,
) -> (Response<ResponseBody>, Served)
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let arrived = Instant::now();
    let mut served = Served::nobody();
    let path = request.uri().path();
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the URI's authority.
    let Some(authority) = authority(&request) else {
        let message = "the request has no valid Host header: send the host name the gateway is reached by";
        return (Envelope::of_path(path).error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message), served);
    };
    let headers = request.headers();
    let token = bearer(headers).map(TokenHash::of);
    let Some(tenant) = tenants.select(Some(authority.host()), token.as_ref()) else {
        return (unauthorized(Envelope::of_path(path), token.is_some()), served);
    };
    served.tenant = tenant.id().to_string();
    let Some(route) = tenant.route(path) else {
        let message = format!("no route for `{path}` on this tenant");
        return (Envelope::of_path(path).error(StatusCode::NOT_FOUND, "NO_ROUTE", &message), served);
    };
    served.route = route.prefix().to_string();
    served.component = route.served_by().to_string();
    let answerer = match route.target() {
        Target::Component(instances) => Answerer::Component(instances),
        Target::Native(native) => Answerer::Native(native),
        Target::Unavailable(component) => {
            let message =
                "the component serving this path cannot be loaded; the operator can see why in the gateway's log";
            let envelope = Envelope::of_component(component);
            return (envelope.error(StatusCode::SERVICE_UNAVAILABLE, "COMPONENT_UNAVAILABLE", message), served);
        }
    };
    let caller = match token.as_ref().and_then(|token| tenant.scope().user_by_token(token)) {
        Some(_) => Caller::User,
        None => {
            let client = request.extensions().get::<ClientAddr>().copied();
            Caller::Anonymous(client.unwrap_or(ClientAddr(std::net::Ipv6Addr::UNSPECIFIED.into())))
        }
    };
    let arrival = Arrival { caller, at: arrived, context: RequestContext { id, route_prefix: route.prefix().into() } };
    (serve(tenant, answerer, metrics, outbound, arrival, request).await, served)
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

/// Who sent a request, when it arrived, and what its component may know of it.
pub(super) struct Arrival {
    pub(super) caller: Caller,
    pub(super) at: Instant,
    pub(super) context: RequestContext,
}

/// What answers a request: a component, through the tenant's instances of it, or host code.
#[derive(Clone, Copy)]
pub(super) enum Answerer<'a> {
    Component(&'a Arc<InstancePool>),
    Native(&'a NativeRoute),
}

impl Answerer<'_> {
    /// Its name, as responses, logs and metrics show it.
    fn name(&self) -> &Arc<str> {
        match self {
            Answerer::Component(instances) => instances.component().name(),
            Answerer::Native(native) => &native.name,
        }
    }

    /// The limits it answers under.
    fn limits(&self) -> Limits {
        match self {
            Answerer::Component(instances) => *instances.limits(),
            Answerer::Native(native) => native.limits,
        }
    }

    /// The tenant's share of the host it answers from.
    fn share(&self) -> &Arc<Share> {
        match self {
            Answerer::Component(instances) => instances.share(),
            Answerer::Native(native) => &native.share,
        }
    }
}

/// Serves `request`, which `arrival` says about, with `answerer` of `tenant`.
pub(super) async fn serve<B>(
    tenant: &Arc<Tenant>,
    answerer: Answerer<'_>,
    metrics: &Arc<Metrics>,
    outbound: &Arc<Outbound>,
    arrival: Arrival,
    request: Request<B>,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Arrival { caller, at: arrived, context } = arrival;
    let (limits, name) = (answerer.limits(), answerer.name());
    let envelope = Envelope::of_component(name);
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
    let body = match tokio::time::timeout_at(deadline.into(), read_body(body, limits.max_request_body_bytes)).await {
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::TooLarge(limit))) => {
            let message = format!("request body is larger than {limit} bytes");
            return envelope.error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &message);
        }
        Ok(Err(ReadError::Failed(e))) if !matches!(e.downcast_ref::<BodyError>(), Some(BodyError::TimedOut(_))) => {
            return envelope.error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the request body could not be read");
        }
        Ok(Err(ReadError::Failed(_))) | Err(_) => {
            let message = "the request body did not arrive in time; send it at once";
            return envelope.error(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", message);
        }
    };
    let permit = match ticket.hold() {
        Ok(permit) => permit,
        Err(refusal) => return too_many(refusal),
    };
    let call = Call { tenant, name, share: answerer.share(), limits: &limits, deadline };
    let (capabilities, outbound, reporter) = call.scoped(metrics, outbound, context);
    let instances = match answerer {
        Answerer::Component(instances) => instances,
        Answerer::Native(native) => {
            let mut response = native.handler.serve(capabilities, &parts).await;
            if let Ok(name) = HeaderValue::from_str(name) {
                response.headers_mut().insert(COMPONENT_HEADER, name);
            }
            drop(permit);
            return response;
        }
    };
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
            if let Ok(name) = HeaderValue::from_str(name) {
                parts.headers.insert(COMPONENT_HEADER, name);
            }
            drop(permit);
            return Response::from_parts(parts, Full::new(body).map_err(|never| match never {}).boxed_unsync());
        }
        Err(failure) => failure,
    };
    let (status, code) = match failure {
        DispatchError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "COMPONENT_TIMEOUT"),
        DispatchError::MemoryLimit => (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_MEMORY_LIMIT"),
        DispatchError::ResourceLimit | DispatchError::FieldsTooLarge => {
            (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_RESOURCE_LIMIT")
        }
        DispatchError::InstanceLimit => (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_INSTANCE_LIMIT"),
        DispatchError::TableLimit => (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_TABLE_LIMIT"),
        DispatchError::ResponseTooLarge(_) => (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_RESPONSE_TOO_LARGE"),
        DispatchError::Trap(_) | DispatchError::NoResponse | DispatchError::Refused(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "COMPONENT_FAILED")
        }
        // The host's limit, not the component's: no violation.
        DispatchError::Capacity(_) => return envelope.capacity(&failure.to_string()),
    };
    if let Some(limit) = failure.limit() {
        reporter.violation(limit, &failure.to_string());
    }
    envelope.error(status, code, &failure.to_string())
}

/// One call into a component of a tenant (a request, an event): what bounds it.
pub(super) struct Call<'a> {
    pub(super) tenant: &'a Tenant,
    /// The component's name, as logs and metrics show it.
    pub(super) name: &'a Arc<str>,
    pub(super) share: &'a Arc<Share>,
    pub(super) limits: &'a Limits,
    pub(super) deadline: Instant,
}

impl Call<'_> {
    /// The call's capabilities (scoped to the tenant, with `context`), its outbound policy
    /// (the tenant's hosts, through `outbound`), and the reporter of its violations.
    pub(super) fn scoped(
        &self,
        metrics: &Arc<Metrics>,
        outbound: &Arc<Outbound>,
        context: RequestContext,
    ) -> (Capabilities, OutboundPolicy, Reporter) {
        let Call { tenant, name, share, limits, deadline } = self;
        let reporter = Reporter::new(tenant.id(), (*name).clone(), metrics.clone());
        let log = ComponentLog::new(tenant.id(), (*name).clone(), share.log_rate().clone(), reporter.clone());
        let capabilities = Capabilities { scope: tenant.scope().clone(), deadline: *deadline, log, request: context };
        let outbound = OutboundPolicy::new(
            outbound.clone(),
            tenant.outbound_hosts().clone(),
            tenant.outbound_private_hosts().clone(),
            limits.max_outbound_requests,
            reporter.clone(),
            *deadline,
        );
        (capabilities, outbound, reporter)
    }
}

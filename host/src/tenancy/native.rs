//! Routes served by host code instead of a component.
//!
//! The benchmarks measure the Wasm edge against the same endpoint written natively; that
//! native endpoint is a route target of its own (`native:NAME`), registered with the gateway
//! by the composition root of a build that has one (`app::gateway`). Everything around
//! it — tenant selection, admission, the body limit, the deadline, the access log, the
//! metrics — is what a component's request gets.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use http::request::Parts;

use crate::body::ResponseBody;
use crate::capability::Capabilities;
use crate::limits::Limits;
use crate::runtime::capacity::Share;

/// Host code that answers a route's requests in place of a component.
#[async_trait]
pub trait NativeHandler: Send + Sync + 'static {
    /// Answers the request whose head is `request` (its body was read and is not needed),
    /// with the same capabilities a component would have.
    async fn serve(&self, capabilities: Capabilities, request: &Parts) -> Response<ResponseBody>;
}

/// A route target served by a [`NativeHandler`], under its tenant's limits and share.
pub struct NativeRoute {
    /// What the route names, e.g. `native:devices-profile`.
    pub name: Arc<str>,
    /// The handler.
    pub handler: Arc<dyn NativeHandler>,
    /// The tenant's limits.
    pub limits: Limits,
    /// The tenant's share of the host (its log rate).
    pub share: Arc<Share>,
}

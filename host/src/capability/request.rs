//! `waedge:gateway/request-context`: what a component may know of the request it serves.

use std::sync::Arc;
use waedge_contract::request_context::Host;

use super::CapabilitiesView;

/// The request's id and the prefix of the route it took.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The host's id for the request (in `x-request-id` and the request's log lines).
    pub id: Arc<str>,
    /// The prefix of the route the request matched.
    pub route_prefix: Arc<str>,
}

impl RequestContext {
    /// A new request id: 128 random bits in hex, so ids never repeat in practice and say
    /// nothing about the gateway (no counter, no clock).
    pub fn new_id() -> Arc<str> {
        format!("{:032x}", fastrand::u128(..)).into()
    }
}

impl Host for CapabilitiesView<'_> {
    async fn route_prefix(&mut self) -> String {
        self.capabilities.request.route_prefix.to_string()
    }

    async fn request_id(&mut self) -> String {
        self.capabilities.request.id.to_string()
    }
}

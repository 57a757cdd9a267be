//! The tenants' event handlers: deployed components a webhook names instead of a URL, handed
//! each event the webhook takes.
//!
//! An event handler is loaded with the tenant, like a route's component ([`Gateway::reload`]
//! compiles it and keeps the tenant's instances of it), so a new deployed version takes over
//! at the next event exactly as it takes over a route. Each event is one call under the
//! tenant's limits: the request deadline, memory, its CPU share and a slot of its share of the
//! instance pool; a violation is reported as a request's is.

use std::time::{Duration, Instant};

use waedge_contract::events::Event;
use waedge_store::events::EventRecord;

use super::Gateway;
use super::request::{Call, request_span};
use crate::capability::request::RequestContext;
use crate::runtime::dispatch::DispatchError;
use crate::runtime::event;
use tracing::Instrument;

/// Why an event was not handled.
#[derive(Debug, Clone, PartialEq)]
pub enum Unhandled {
    /// The host could not try now — the handler is not loaded yet (a reload is under way), or
    /// the tenant's instance slots are all in use: try again shortly; this was no attempt.
    NotNow(String),
    /// The attempt failed: the handler asked for the event again, failed or hit a limit, or
    /// its component cannot be loaded (not deployed, or not an event handler).
    Failed(String),
}

impl Gateway {
    /// Hands `event` to the event handler of webhook `webhook` of `tenant`.
    pub async fn handle_event(&self, tenant: &str, webhook: &str, event: &EventRecord) -> Result<(), Unhandled> {
        let tenants = self.tenants();
        let not_loaded = || Unhandled::NotNow("the event handler is not loaded yet".into());
        let tenant = tenants.get(tenant).ok_or_else(not_loaded)?;
        let instances = match tenant.event_handler(webhook) {
            Some(Ok(instances)) => instances,
            Some(Err(unavailable)) => {
                return Err(Unhandled::Failed(format!("the handler's component cannot be loaded: {unavailable}")));
            }
            None => return Err(not_loaded()),
        };
        let limits = instances.limits();
        let name = instances.component().name();
        let deadline = Instant::now() + Duration::from_millis(limits.request_timeout_ms);
        let call = Call { tenant, name, share: instances.share(), limits, deadline };
        let context = RequestContext { id: RequestContext::new_id(), route_prefix: "".into() };
        let span = request_span(&context.id);
        let (capabilities, outbound, reporter) = call.scoped(&self.metrics, &self.outbound, context);
        let event = Event {
            id: event.id.clone(),
            type_: event.kind.clone(),
            device: event.device.clone(),
            chat: event.chat.clone(),
            seq: event.seq,
            at: event.at.clone(),
            data: event.data.to_string(),
        };
        let handled = async {
            let slot = instances.share().take(false).map_err(|in_use| DispatchError::Capacity(in_use.to_string()))?;
            event::handle(instances, slot, capabilities, outbound, &self.metrics, &event).await
        }
        .instrument(span)
        .await;
        match handled {
            Ok(answer) => answer.map_err(|reason| {
                Unhandled::Failed(format!("the handler asked to be handed the event again: {reason}"))
            }),
            Err(DispatchError::Capacity(in_use)) => Err(Unhandled::NotNow(in_use)),
            Err(failure) => {
                if let Some(limit) = failure.limit() {
                    reporter.violation(limit, &failure.to_string());
                }
                Err(Unhandled::Failed(failure.to_string()))
            }
        }
    }
}

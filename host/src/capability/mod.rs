//! The host side of the interfaces a component imports, each scoped to the calling tenant.
//!
//! A component never names its tenant: the [`scope::Scope`] of [`Capabilities`] is the tenant
//! the request was routed to, and all a host interface can reach of it. Like
//! `wasmtime-wasi-http`, the interfaces are linked into any store data `T` by [`add_to_linker`]
//! with a getter that returns a [`CapabilitiesView`]: the request's capabilities and the
//! store's resource table. Every interface lives in its own module:
//!
//! - [`whatsapp`]: WhatsApp queries on the tenant's devices, opened as `device` resources;
//! - [`auth`]: verifying the tenant's API tokens;
//! - [`config`]: the tenant's key/value settings (`wasi:config/store`);
//! - [`logging`]: log lines tagged with tenant, component and request (`wasi:logging`);
//! - [`request`]: the request's context (route prefix, request id);
//! - [`outbound`]: the `wasi:http` outbound policy (the tenant's host allow-list);
//! - `v0_1`: contract 0.1.0, for the components built against it, on top of the above.

pub mod auth;
pub mod config;
pub mod logging;
pub mod outbound;
pub mod request;
pub mod scope;
mod v0_1;
pub mod whatsapp;

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Linker, ResourceTable};

use scope::Scope;

/// What one request's component may reach: its tenant, its deadline, its share of the log
/// and what it may know of the request.
pub struct Capabilities {
    /// What the tenant the request was routed to lets its components reach.
    pub scope: Arc<Scope>,
    /// When the request's budget runs out; host calls give up then.
    pub deadline: Instant,
    /// Where the component's log lines go, within the request's log budget.
    pub log: logging::ComponentLog,
    /// The request's id and the route it took.
    pub request: request::RequestContext,
}

impl Capabilities {
    /// Runs `call` unless the deadline passes first, in which case it is `timed_out`. A
    /// session call that travels to another node takes the deadline with it.
    async fn within_deadline<T>(&self, call: impl Future<Output = T>, timed_out: T) -> T {
        let call = waedge_device::deadline::within(self.deadline, call);
        tokio::time::timeout_at(self.deadline.into(), call).await.unwrap_or(timed_out)
    }
}

/// What the host interfaces see of a store: the request's capabilities, and the resource
/// table that holds the devices a component opened.
pub struct CapabilitiesView<'a> {
    /// The capabilities of the request being served.
    pub capabilities: &'a mut Capabilities,
    /// The store's resource table (shared with the WASI interfaces).
    pub table: &'a mut ResourceTable,
}

/// [`HasData`] for the host interfaces: their data is a [`CapabilitiesView`].
struct HasCapabilities;

impl HasData for HasCapabilities {
    type Data<'a> = CapabilitiesView<'a>;
}

/// Links every contract interface the host serves, of every contract version, into `linker`,
/// with `view` giving each call its [`CapabilitiesView`]. Together with `wasi:cli/imports`
/// and `wasi:http/outgoing-handler` (linked by the runtime) this is the `platform` world of
/// `wit/gateway.wit`, interface by interface, and what contract 0.1.0's world imports.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> CapabilitiesView<'_>,
) -> wasmtime::Result<()> {
    waedge_contract::types::add_to_linker::<_, HasCapabilities>(linker, view)?;
    waedge_contract::whatsapp::add_to_linker::<_, HasCapabilities>(linker, view)?;
    waedge_contract::auth::add_to_linker::<_, HasCapabilities>(linker, view)?;
    waedge_contract::request_context::add_to_linker::<_, HasCapabilities>(linker, view)?;
    waedge_contract::config::add_to_linker::<_, HasCapabilities>(linker, view)?;
    waedge_contract::logging::add_to_linker::<_, HasCapabilities>(linker, view)?;
    v0_1::add_to_linker(linker, view)
}

/// `waedge:gateway/types` declares only types; linking it gives components the instance.
impl waedge_contract::types::Host for CapabilitiesView<'_> {}

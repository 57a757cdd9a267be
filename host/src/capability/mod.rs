//! The host side of the interfaces a component imports, each scoped to the calling tenant.
//!
//! A component never names its tenant: the scope comes from [`Capabilities`], which the host
//! builds from the route the request took. Every interface lives in its own module:
//!
//! - [`whatsapp`]: WhatsApp queries on the tenant's devices;
//! - [`auth`]: verifying the tenant's API tokens;
//! - [`config`]: the tenant's key/value settings;
//! - [`logging`]: log lines tagged with tenant and component;
//! - [`outbound`]: the `wasi:http` outbound policy (the tenant's host allow-list).

pub mod auth;
pub mod config;
pub mod logging;
pub mod outbound;
pub mod whatsapp;

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings;
use crate::runtime::state::RequestState;
use crate::tenancy::Tenant;

/// What one request's component may reach: its tenant, its deadline and its share of the log.
pub struct Capabilities {
    /// The tenant the request was routed to.
    pub tenant: Arc<Tenant>,
    /// When the request's budget runs out; host calls give up then.
    pub deadline: Instant,
    /// Where the component's log lines go, within the request's log budget.
    pub log: logging::ComponentLog,
}

impl Capabilities {
    /// Runs `call` unless the deadline passes first, in which case it is `timed_out`.
    async fn within_deadline<T>(&self, call: impl Future<Output = T>, timed_out: T) -> T {
        tokio::time::timeout_at(self.deadline.into(), call).await.unwrap_or(timed_out)
    }
}

/// Links every `waedge:gateway` interface into `linker`.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    fn project(state: &mut RequestState) -> &mut Capabilities {
        &mut state.capabilities
    }
    bindings::whatsapp::add_to_linker::<_, HasSelf<Capabilities>>(linker, project)?;
    bindings::auth::add_to_linker::<_, HasSelf<Capabilities>>(linker, project)?;
    bindings::config::add_to_linker::<_, HasSelf<Capabilities>>(linker, project)?;
    bindings::logging::add_to_linker::<_, HasSelf<Capabilities>>(linker, project)?;
    bindings::types::add_to_linker::<_, HasSelf<Capabilities>>(linker, project)?;
    Ok(())
}

/// `waedge:gateway/types` declares only types; linking it gives components the instance.
impl bindings::types::Host for Capabilities {}

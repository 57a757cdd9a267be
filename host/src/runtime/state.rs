//! The store data of a component instance: what the request it is serving may reach.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capability::{Capabilities, outbound::OutboundPolicy};
use crate::config::Limits;

/// Resource handles (streams, fields, requests) one request may hold at once.
const MAX_RESOURCES: usize = 10_000;

/// Everything a component instance can reach while serving one request.
///
/// The WASI context grants nothing ambient: no files, no environment, no sockets, no
/// inherited stdio. What a component may do beyond computing is exactly the
/// [`Capabilities`] of its tenant and the tenant's [`OutboundPolicy`].
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    outbound: OutboundPolicy,
    /// The tenant-scoped host capabilities.
    pub capabilities: Capabilities,
}

impl RequestState {
    /// State for one request under `limits`: memory per linear memory, instances and tables.
    pub fn new(capabilities: Capabilities, outbound: OutboundPolicy, limits: &Limits) -> Self {
        let memory_bytes = usize::try_from(limits.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        RequestState {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table,
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .instances(limits.max_instances)
                .tables(limits.max_tables)
                .memories(limits.max_instances)
                .trap_on_grow_failure(true)
                .build(),
            outbound,
            capabilities,
        }
    }

    /// Hands the state to the next request an instance serves: its capabilities and outbound
    /// policy (with fresh counters) replace the last request's.
    pub fn renew(&mut self, capabilities: Capabilities, outbound: OutboundPolicy) {
        self.capabilities = capabilities;
        self.outbound = outbound;
        self.http = WasiHttpCtx::new();
    }

    /// Whether the component holds no resource (stream, request, response, …) any more, so
    /// the next request starts from an empty resource table.
    pub fn is_quiescent(&self) -> bool {
        self.table.is_empty()
    }

    /// The store's resource limiter.
    pub fn limits(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    /// When this request's budget runs out.
    pub fn deadline(&self) -> Instant {
        self.capabilities.deadline
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

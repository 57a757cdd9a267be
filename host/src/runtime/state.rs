//! The store data of a component instance: what the request it is serving may reach.

use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limiter::Limiter;
use crate::capability::{Capabilities, CapabilitiesView, outbound::OutboundPolicy};
use crate::limits::Limits;

/// Resource handles (streams, fields, requests) one request may hold at once.
///
/// With [`MAX_FIELDS_BYTES`], this bounds the host memory a request's `wasi:http` fields can
/// hold, which its linear memory does not count: 1,000 × 8 KiB = 8 MiB, an eighth of the
/// default `memory_mib`. (A guest keeps one copy of a header in its memory and may hand it to
/// the host once per handle.)
pub const MAX_RESOURCES: usize = 1_000;

/// The size of one `wasi:http` fields value (headers or trailers) a component builds, in
/// wasmtime's accounting: names and values plus a few dozen bytes per entry. Room for about a
/// hundred ordinary headers.
pub const MAX_FIELDS_BYTES: usize = 8 << 10;

/// Everything a component instance can reach while serving one request.
///
/// The WASI context grants nothing ambient: no files, no environment, no sockets, no
/// inherited stdio. What a component may do beyond computing is exactly the
/// [`Capabilities`] of its tenant and the tenant's [`OutboundPolicy`].
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limiter: Limiter,
    outbound: OutboundPolicy,
    /// The tenant-scoped host capabilities.
    pub capabilities: Capabilities,
}

impl RequestState {
    /// State for one request under `limits`: memory of the whole instance, instances and
    /// tables (see [`Limiter`]).
    pub fn new(capabilities: Capabilities, outbound: OutboundPolicy, limits: &Limits) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        RequestState {
            wasi: WasiCtx::builder().build(),
            http: http_ctx(),
            table,
            limiter: Limiter::new(limits),
            outbound,
            capabilities,
        }
    }

    /// Hands the state to the next request an instance serves: its capabilities and outbound
    /// policy (with fresh counters) replace the last request's.
    pub fn renew(&mut self, capabilities: Capabilities, outbound: OutboundPolicy) {
        self.capabilities = capabilities;
        self.outbound = outbound;
        self.http = http_ctx();
    }

    /// Whether the component holds no resource (stream, request, response, …) any more, so
    /// the next request starts from an empty resource table.
    pub fn is_quiescent(&self) -> bool {
        self.table.is_empty()
    }

    /// The store's resource limiter.
    pub fn limits(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    /// When this request's budget runs out.
    pub fn deadline(&self) -> Instant {
        self.capabilities.deadline
    }

    /// What the host interfaces see of this state: the capabilities and the resource table.
    pub fn capabilities_view(&mut self) -> CapabilitiesView<'_> {
        CapabilitiesView { capabilities: &mut self.capabilities, table: &mut self.table }
    }
}

/// A `wasi:http` context whose fields are capped at [`MAX_FIELDS_BYTES`].
fn http_ctx() -> WasiHttpCtx {
    let mut http = WasiHttpCtx::new();
    http.set_field_size_limit(MAX_FIELDS_BYTES);
    http
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

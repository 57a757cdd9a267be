//! The store's resource limiter: the tenant's caps on what one component instance may
//! allocate.
//!
//! `memory_mib` caps the linear memory of the whole instance: the sum over every memory of
//! every core instance in the store (a component may define several), not each memory alone.
//! A refused growth traps the guest (`memory.grow` returning -1 would only make a guest's
//! allocator abort) with a [`MemoryLimitExceeded`], so the host names the limit from the
//! error's type, not from its wording. `max_instances` and `max_tables` are enforced here
//! too, but a request never gets that far past them: the component's
//! [footprint](super::footprint) is checked against them before it is instantiated.

use wasmtime::ResourceLimiter;

use crate::limits::Limits;

/// Enforces one tenant's [`Limits`] on one store.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    memory_used: usize,
    instances: usize,
    tables: usize,
}

/// The error a growth past `memory_mib` traps with.
#[derive(Debug, thiserror::Error)]
#[error("the component's memories would grow to {wanted} bytes together, over memory_mib ({cap} bytes)")]
pub struct MemoryLimitExceeded {
    wanted: usize,
    cap: usize,
}

impl Limiter {
    /// A limiter for a store running under `limits`.
    pub fn new(limits: &Limits) -> Self {
        Limiter {
            memory_bytes: usize::try_from(limits.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            memory_used: 0,
            instances: limits.max_instances,
            tables: limits.max_tables,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            // Past the memory's own declared maximum: wasmtime refuses it, nothing is used.
            return Ok(false);
        }
        let used = self.memory_used.saturating_add(desired.saturating_sub(current));
        if used > self.memory_bytes {
            return Err(MemoryLimitExceeded { wanted: used, cap: self.memory_bytes }.into());
        }
        self.memory_used = used;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Table elements live in the pool's table slots, which bound them.
        Ok(maximum.is_none_or(|maximum| desired <= maximum))
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        // Every memory counts against `memory_mib`; the pool caps how many one component has.
        usize::MAX
    }
}

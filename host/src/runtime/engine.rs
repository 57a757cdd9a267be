//! The process-wide wasmtime engine.
//!
//! Instances come from the pooling allocator, so instantiation is a few microseconds of
//! copy-on-write mapping instead of fresh `mmap`s. Deadlines use epoch interruption: one
//! thread bumps the engine's epoch every [`EPOCH_TICK`], and each store decides on every tick
//! whether to yield to tokio (at once, or after a wait when its tenant is over its CPU
//! budget) or to stop the guest.
//!
//! With `WAEDGE_PERFMAP=1` in the environment, compiled guest functions are written to
//! `/tmp/perf-PID.map`, so `perf record` / `perf report` name them.

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy};

use waedge_store::limits::MAX_MEMORY_MIB;

/// How often the epoch advances: the granularity of deadlines, of cooperative yielding and of
/// CPU accounting.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// [`MAX_MEMORY_MIB`] in bytes; per-tenant caps are enforced below it.
pub const MAX_MEMORY_BYTES: usize = (MAX_MEMORY_MIB as usize) << 20;

/// Core instances one component may create (the pool refuses a component needing more).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Bytes of each linear memory and table a freed slot may keep resident (see [`new`]): a Rust
/// guest's stack, the first MiB of its memory. Keeping its statics and heap too (2 MiB)
/// measured no faster.
const KEEP_RESIDENT: usize = 1 << 20;

/// Linear memories one component may define.
const MAX_MEMORIES_PER_COMPONENT: u32 = 4;

/// Tables one component may define.
const MAX_TABLES_PER_COMPONENT: u32 = 8;

/// Whether freed slots are reset by scanning for the pages written (see [`new`]): where the
/// kernel has PAGEMAP_SCAN (Linux 6.7) and the machine has no swap. The scan sees only pages
/// present in memory, so a written page swapped out would keep its content for the slot's next
/// instance, another tenant's perhaps (bytecodealliance/wasmtime#14357); with swap, every
/// freed slot is released with `madvise` instead, as wasmtime does by default.
fn resets_by_scan() -> bool {
    let swap_total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|meminfo| {
        let line = meminfo.lines().find(|line| line.starts_with("SwapTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    swap_total == Some(0) && PoolingAllocationConfig::is_pagemap_scan_available()
}

/// Creates the engine, with a pool of `slots` instances (see [`capacity`](super::capacity)),
/// and starts its epoch ticker (which stops when the engine is dropped).
pub fn new(slots: u32) -> wasmtime::Result<Engine> {
    // Every total is `slots` times the most one instance may hold, so only the number of
    // stores can exhaust the pool. Instance counts cost nothing up front; memories, tables and
    // stacks are reserved address space, not memory.
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MAX_MEMORIES_PER_COMPONENT)
        .total_tables(slots * MAX_TABLES_PER_COMPONENT)
        .total_stacks(slots)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(MAX_MEMORY_BYTES)
        .max_unused_warm_slots(100)
        .decommit_batch_size(32);
    if resets_by_scan() {
        // A freed slot is reset to the component's initial image before its next use: the
        // pages the last instance wrote (found with the PAGEMAP_SCAN ioctl) within the first
        // KEEP_RESIDENT bytes of each memory and table are copied back or zeroed in place,
        // the rest released with `madvise`. Those pages stay mapped, so the next instance in
        // the slot takes no page faults on them. Every freed slot keeps them (up to
        // KEEP_RESIDENT per memory) until it is used again.
        pool.linear_memory_keep_resident(KEEP_RESIDENT).table_keep_resident(KEEP_RESIDENT).pagemap_scan(Enabled::Yes);
    }
    let mut config = code_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if std::env::var_os("WAEDGE_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new().name("waedge-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    })?;
    Ok(engine)
}

/// An engine that only compiles, into code the engine of [`new`] loads: the same settings,
/// without the instance pool (whose address space a compiler process does not need) and
/// without an epoch ticker.
pub fn compiler() -> wasmtime::Result<Engine> {
    let mut config = code_config();
    // One core per compile: a tenant's deploy does not take the machine's.
    config.parallel_compilation(false);
    Engine::new(&config)
}

/// The settings compiled code depends on, shared by [`new`] and [`compiler`].
fn code_config() -> Config {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        // Reserve exactly the cap per memory (no 4 GiB slots): 4,000 memories of 256 MiB are
        // 1 TiB of the 128 TiB of address space.
        .memory_reservation(MAX_MEMORY_BYTES as u64)
        .memory_guard_size(64 << 10);
    config
}

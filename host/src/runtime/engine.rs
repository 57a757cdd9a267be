//! The process-wide wasmtime engine.
//!
//! Instances come from the pooling allocator, so instantiation is a few microseconds of
//! copy-on-write mapping instead of fresh `mmap`s. Deadlines use epoch interruption: one
//! thread bumps the engine's epoch every [`EPOCH_TICK`], and each store decides on every tick
//! whether to yield to tokio or to stop the guest.
//!
//! With `WAEDGE_PERFMAP=1` in the environment, compiled guest functions are written to
//! `/tmp/perf-PID.map`, so `perf record` / `perf report` name them.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy};

/// How often the epoch advances: the granularity of deadlines and of cooperative yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The largest linear memory any tenant may configure; per-tenant caps are enforced below it.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// Instances that may exist at once across all tenants.
const POOL_INSTANCES: u32 = 1_000;

/// Creates the engine and starts its epoch ticker (which stops when the engine is dropped).
pub fn new() -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_memory_size(MAX_MEMORY_BYTES)
        .max_unused_warm_slots(100)
        .decommit_batch_size(32);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Reserve exactly the cap per memory (no 4 GiB slots): 1,000 slots stay well inside
        // the address space of a small VM.
        .memory_reservation(MAX_MEMORY_BYTES as u64)
        .memory_guard_size(64 << 10);
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

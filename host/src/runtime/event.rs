//! Handing one event to a component's `waedge:gateway/events` export.
//!
//! An event takes the path an HTTP request takes through [`dispatch`](super::dispatch): an
//! instance from the tenant's pool (of this export), the tenant's memory cap and CPU share, an
//! instance slot of its share, and a deadline that interrupts the guest. Only an instance whose
//! call returned cleanly goes back to the pool.

use std::time::Instant;

use waedge_contract::EventHandler;
use waedge_contract::events::Event;

use super::capacity::Slot;
use super::cpu::metered;
use super::dispatch::{DispatchError, classify, start};
use super::pool::InstancePool;
use crate::capability::Capabilities;
use crate::capability::outbound::OutboundPolicy;
use crate::telemetry::metrics::Metrics;

/// Hands `event` to an instance from `pool`, in the instance slot `slot` of the tenant's
/// share, scoped to `capabilities` and `outbound`. `Ok` holds the handler's own answer: done,
/// or the reason it wants the event again later.
pub async fn handle(
    pool: &InstancePool<EventHandler>,
    slot: Slot,
    capabilities: Capabilities,
    outbound: OutboundPolicy,
    metrics: &Metrics,
    event: &Event,
) -> Result<Result<(), String>, DispatchError> {
    let deadline = capabilities.deadline;
    // Bound before the instance, so it is returned after the instance is dropped or kept.
    let _slot = slot;
    let Some(pre) = &pool.component().events else {
        return Err(DispatchError::Trap("the component exports no `waedge:gateway/events`".into()));
    };
    let mut instance = start(pool, capabilities, outbound).await?;
    let meter = instance.meter.clone();
    let call = metered(&meter, pool.share().cpu(), async {
        let handler = match instance.export.take() {
            Some(handler) => handler,
            None => {
                let started = Instant::now();
                let handler = pre.instantiate_async(&mut instance.store).await?;
                metrics.instantiated(pool.component().name(), started.elapsed());
                handler
            }
        };
        let answer = handler.waedge_gateway_events().call_handle(&mut instance.store, event).await?;
        wasmtime::Result::Ok((handler, answer))
    });
    let called = tokio::time::timeout_at(deadline.into(), call).await.map_err(|_elapsed| DispatchError::Timeout)?;
    let (handler, answer) = called.map_err(classify)?;
    instance.export = Some(handler);
    pool.put(instance);
    Ok(answer)
}

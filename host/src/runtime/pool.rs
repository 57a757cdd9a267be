//! Warm instances: a component instance that answered a request cleanly may answer the next
//! requests of the same tenant, one at a time, instead of a new instance being made for each.
//!
//! Making an instance is the largest part of what a small component costs per request
//! (a store, the instantiation, the first touches of its memory, and returning the memory to
//! the pooling allocator afterwards). An [`InstancePool`] keeps instances of one component for
//! one tenant, so nothing crosses tenants; within the tenant an instance serves at most
//! [`Limits::requests_per_instance`] requests, and whatever the component keeps in its
//! memory between them is its own. An instance is retired instead of kept when its request
//! trapped, timed out or was abandoned, when it still holds a resource (a stream, a request)
//! after answering, when it has served its share, or when it has been idle for
//! [`IDLE_TIMEOUT`]. `requests_per_instance = 1` gives every request a fresh instance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{CallHook, Store};
use wasmtime_wasi_http::p2::bindings::Proxy;

use super::HandlerComponent;
use super::capacity::Share;
use super::state::RequestState;
use crate::capability::Capabilities;
use crate::capability::outbound::OutboundPolicy;
use crate::limits::Limits;

/// How long an instance may wait for its next request before it is retired.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The idle instances of all pools, counted against the slots the pooling allocator keeps for
/// them (see [`capacity`](super::capacity)), so warm instances never take the slots of
/// requests; and how many one pool keeps: one per core (more only holds memory, as a pool
/// serves one request per instance).
pub struct IdleBudget {
    idle: AtomicUsize,
    max_idle: usize,
    per_pool: usize,
}

impl IdleBudget {
    /// A budget of `max_idle` instances in all pools together.
    pub fn new(max_idle: usize) -> Self {
        let per_pool = std::thread::available_parallelism().map_or(1, |n| n.get());
        IdleBudget { idle: AtomicUsize::new(0), max_idle, per_pool }
    }

    fn reserve(&self) -> bool {
        self.idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_idle).then_some(n + 1)).is_ok()
    }

    fn release(&self, count: usize) {
        self.idle.fetch_sub(count, Ordering::AcqRel);
    }
}

/// One tenant's instances of one component.
pub struct InstancePool {
    component: Arc<HandlerComponent>,
    limits: Limits,
    share: Arc<Share>,
    idle: Mutex<Vec<Instance>>,
    budget: Arc<IdleBudget>,
}

/// An instantiated component in its store.
pub struct Instance {
    /// The store, with the state of the request it serves (or served last).
    pub store: Store<RequestState>,
    /// The instance's `wasi:http/incoming-handler` export; `None` until instantiated.
    pub proxy: Option<Proxy>,
    served: u32,
    idle_since: Instant,
}

impl InstancePool {
    /// An empty pool for `component` under the tenant's `limits`, whose requests take slots
    /// of the tenant's `share` of the pooling allocator.
    pub fn new(component: Arc<HandlerComponent>, limits: Limits, share: Arc<Share>, budget: Arc<IdleBudget>) -> Self {
        InstancePool { component, limits, share, idle: Mutex::new(Vec::new()), budget }
    }

    /// The component this pool instantiates.
    pub fn component(&self) -> &Arc<HandlerComponent> {
        &self.component
    }

    /// The limits every instance of this pool runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The tenant's share of the pooling allocator.
    pub fn share(&self) -> &Arc<Share> {
        &self.share
    }

    /// An idle instance, handed the next request's `capabilities` and `outbound` policy, or a
    /// new store holding them (not yet instantiated: [`Instance::proxy`] is `None`).
    pub fn take(&self, capabilities: Capabilities, outbound: OutboundPolicy) -> Instance {
        let warm = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match warm {
            Some(mut instance) => {
                self.budget.release(1);
                instance.store.data_mut().renew(capabilities, outbound);
                instance
            }
            None => {
                let state = RequestState::new(capabilities, outbound, &self.limits);
                Instance {
                    store: new_store(&self.component, &self.share, state),
                    proxy: None,
                    served: 0,
                    idle_since: Instant::now(),
                }
            }
        }
    }

    /// Keeps `instance`, which has just answered a request cleanly, for a later request if
    /// it may serve more; retires it otherwise.
    pub fn put(&self, mut instance: Instance) {
        instance.served += 1;
        if instance.served >= self.limits.requests_per_instance || !instance.store.data().is_quiescent() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut idle);
        if idle.len() < self.budget.per_pool && self.budget.reserve() {
            instance.idle_since = Instant::now();
            idle.push(instance);
        }
    }

    /// Retires the instances idle for longer than [`IDLE_TIMEOUT`].
    pub fn retire_idle(&self) {
        self.expire(&mut self.idle.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn expire(&self, idle: &mut Vec<Instance>) {
        // Instances are pushed in the order they went idle: the stale ones are at the front.
        let stale = idle.iter().take_while(|i| i.idle_since.elapsed() >= IDLE_TIMEOUT).count();
        idle.drain(..stale);
        self.budget.release(stale);
    }
}

impl Drop for InstancePool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
        self.budget.release(idle.len());
    }
}

/// A store for `state` with the tenant's limits and, on every epoch tick, the request
/// deadline and the tenant's CPU budget (`share`).
fn new_store(component: &HandlerComponent, share: &Arc<Share>, state: RequestState) -> Store<RequestState> {
    let mut store = Store::new(component.pre.engine(), state);
    store.limiter(RequestState::limits);
    // The guest runs between entering (or a host call returning) and calling the host (or
    // returning); what it ran is charged when the outermost call returns and at every tick
    // (see `cpu`).
    let hook_share = share.clone();
    store.call_hook(move |mut store, hook| {
        let now = Instant::now();
        let state = store.data_mut();
        match hook {
            CallHook::CallingWasm => state.entered(now),
            CallHook::ReturningFromHost => state.resume(now),
            CallHook::CallingHost => state.pause(now),
            CallHook::ReturningFromWasm => {
                if let Some(ran) = state.left(now) {
                    hook_share.cpu().charge(now, ran);
                }
            }
        }
        Ok(())
    });
    let share = share.clone();
    // On every tick (a host call: the guest's clock is stopped): stop at the request's
    // deadline; else charge what the guest ran and yield to tokio, for as long as the tenant
    // is over its CPU budget. A wait that ends at the deadline ends the request there.
    store.epoch_deadline_callback(move |mut store| {
        let state = store.data_mut();
        let (deadline, now) = (state.deadline(), Instant::now());
        if now >= deadline {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        let cpu = share.cpu();
        cpu.charge(now, state.take_ran());
        let wait = cpu.wait(now, deadline);
        Ok(if wait.is_zero() {
            wasmtime::UpdateDeadline::Yield(1)
        } else {
            // Past the wait, the next check calls back at once if the deadline has come.
            let ticks = if now + wait >= deadline { 0 } else { 1 };
            wasmtime::UpdateDeadline::YieldCustom(ticks, Box::pin(tokio::time::sleep(wait)))
        })
    });
    store
}

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

use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;

use super::HandlerComponent;
use super::capacity::Share;
use super::cpu::Meter;
use super::state::RequestState;
use crate::capability::Capabilities;
use crate::capability::outbound::OutboundPolicy;
use crate::limits::Limits;

/// How long an instance may wait for its next request before it is retired.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The idle instances of all pools, counted against the slots the pooling allocator keeps for
/// them (see [`capacity`](super::capacity)), so warm instances never take the slots of
/// requests.
///
/// One pool keeps as many as its tenant's requests had instances at once, up to the tenant's
/// share: a pool only makes an instance when none is idle, so what it keeps is what its load
/// needed, and idle ones are retired after [`IDLE_TIMEOUT`]. (It once kept one per core, on
/// the thought that a worker runs one instance at a time; but a call waiting on the host — a
/// WhatsApp lookup, its response body — lets the worker start the next request, and under 32
/// connections a fifth of the requests made an instance: BENCHMARKS.md, issue #14.)
pub struct IdleBudget {
    idle: AtomicUsize,
    max_idle: usize,
}

impl IdleBudget {
    /// A budget of `max_idle` instances in all pools together.
    pub fn new(max_idle: usize) -> Self {
        IdleBudget { idle: AtomicUsize::new(0), max_idle }
    }

    fn reserve(&self) -> bool {
        self.idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_idle).then_some(n + 1)).is_ok()
    }

    fn release(&self, count: usize) {
        self.idle.fetch_sub(count, Ordering::AcqRel);
    }
}

/// One tenant's instances of one component, for one of its exports `E`: its
/// `wasi:http/incoming-handler` ([`Proxy`], for routes) or its `events` ([`EventHandler`](waedge_contract::EventHandler), for
/// event subscriptions).
pub struct InstancePool<E = Proxy> {
    component: Arc<HandlerComponent>,
    limits: Limits,
    share: Arc<Share>,
    idle: Mutex<Vec<Instance<E>>>,
    budget: Arc<IdleBudget>,
}

/// An instantiated component in its store.
pub struct Instance<E = Proxy> {
    /// The store, with the state of the request it serves (or served last).
    pub store: Store<RequestState>,
    /// The instance's export its pool calls; `None` until instantiated.
    pub export: Option<E>,
    /// The clock of the store's guest calls, which the store's epoch ticks read too.
    pub meter: Arc<Meter>,
    served: u32,
    idle_since: Instant,
}

impl<E> InstancePool<E> {
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
    /// new store holding them (not yet instantiated: [`Instance::export`] is `None`).
    pub fn take(&self, capabilities: Capabilities, outbound: OutboundPolicy) -> Instance<E> {
        let warm = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match warm {
            Some(mut instance) => {
                self.budget.release(1);
                instance.store.data_mut().renew(capabilities, outbound);
                instance
            }
            None => {
                let state = RequestState::new(capabilities, outbound, &self.limits);
                let meter = Arc::new(Meter::default());
                Instance {
                    store: new_store(&self.component, &self.share, &meter, state),
                    export: None,
                    meter,
                    served: 0,
                    idle_since: Instant::now(),
                }
            }
        }
    }

    /// Keeps `instance`, which has just answered a request cleanly, for a later request if
    /// it may serve more; retires it otherwise.
    pub fn put(&self, mut instance: Instance<E>) {
        instance.served += 1;
        if instance.served >= self.limits.requests_per_instance || !instance.store.data().is_quiescent() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut idle);
        if idle.len() < self.share.size() && self.budget.reserve() {
            instance.idle_since = Instant::now();
            idle.push(instance);
        }
    }

    /// Retires the instances idle for longer than [`IDLE_TIMEOUT`].
    pub fn retire_idle(&self) {
        self.expire(&mut self.idle.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn expire(&self, idle: &mut Vec<Instance<E>>) {
        // Instances are pushed in the order they went idle: the stale ones are at the front.
        let stale = idle.iter().take_while(|i| i.idle_since.elapsed() >= IDLE_TIMEOUT).count();
        idle.drain(..stale);
        self.budget.release(stale);
    }
}

impl<E> Drop for InstancePool<E> {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
        self.budget.release(idle.len());
    }
}

/// A store for `state` with the tenant's limits and, on every epoch tick, the request
/// deadline and the tenant's CPU budget (`share`), charged what `meter` timed.
fn new_store(
    component: &HandlerComponent,
    share: &Arc<Share>,
    meter: &Arc<Meter>,
    state: RequestState,
) -> Store<RequestState> {
    let mut store = Store::new(&component.engine, state);
    store.limiter(RequestState::limits);
    let (share, meter) = (share.clone(), meter.clone());
    // On every tick (inside a poll of the guest's call): stop at the request's deadline; else
    // charge what the poll ran so far and yield to tokio, for as long as the tenant is over
    // its CPU budget. A wait that ends at the deadline ends the request there.
    store.epoch_deadline_callback(move |store| {
        let (deadline, now) = (store.data().deadline(), Instant::now());
        if now >= deadline {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        let cpu = share.cpu();
        cpu.charge(now, meter.tick(now));
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::OnceLock;

    use wasmtime_wasi_http::WasiHttpView;

    use super::*;
    use crate::capability::logging::{ComponentLog, tenant_log_rate};
    use crate::capability::outbound::Outbound;
    use crate::capability::request::RequestContext;
    use crate::capability::scope::Scope;
    use crate::runtime::{Runtime, builtin};
    use crate::telemetry::violation::Reporter;

    /// A built-in component, compiled once for every test here (none instantiates it: the
    /// pool's accounting is about stores, which it makes itself).
    fn component() -> Arc<HandlerComponent> {
        static COMPONENT: OnceLock<Arc<HandlerComponent>> = OnceLock::new();
        let compile = || {
            let runtime = Runtime::with_slots(2).expect("a runtime");
            let bytes = builtin::get("devices-api").expect("the built-in");
            Arc::new(runtime.compile("builtin:devices-api", bytes).expect("the built-in compiles"))
        };
        COMPONENT.get_or_init(compile).clone()
    }

    /// A budget of `max_idle` idle instances in all pools.
    fn budget(max_idle: usize) -> Arc<IdleBudget> {
        Arc::new(IdleBudget::new(max_idle))
    }

    /// A pool of one tenant whose instances serve `requests_per_instance` requests each.
    fn pool(requests_per_instance: u32, budget: &Arc<IdleBudget>) -> InstancePool {
        pool_of_share(4, requests_per_instance, budget)
    }

    /// [`pool`] of a tenant with a share of `size` slots.
    fn pool_of_share(size: usize, requests_per_instance: u32, budget: &Arc<IdleBudget>) -> InstancePool {
        let limits = Limits { requests_per_instance, ..Limits::default() };
        InstancePool::new(component(), limits, Share::new(size, 1000, tenant_log_rate()), budget.clone())
    }

    /// What one request hands the instance serving it, told apart by its `deadline`.
    fn request(deadline: Instant) -> (Capabilities, OutboundPolicy) {
        let sends = Arc::new(crate::rate::BucketPerKey::new(0.0, 1.0));
        let scope = Arc::new(Scope::new("acme", HashMap::new(), BTreeMap::new(), BTreeMap::new(), sends));
        let log =
            ComponentLog::new("acme", "builtin:devices-api".into(), Arc::new(tenant_log_rate()), Reporter::detached());
        let context = RequestContext { id: RequestContext::new_id(), route_prefix: "/".into() };
        let capabilities = Capabilities { scope, deadline, log, request: context };
        let (outbound, hosts) = (Arc::new(Outbound::system()), Arc::<[String]>::from([]));
        (capabilities, OutboundPolicy::new(outbound, hosts.clone(), hosts, 0, Reporter::detached(), deadline))
    }

    /// An instance of `pool` for a new request.
    fn take(pool: &InstancePool) -> Instance {
        let (capabilities, outbound) = request(Instant::now() + Duration::from_secs(10));
        pool.take(capabilities, outbound)
    }

    /// Which store an instance is: its data stays where it is while the instance moves.
    fn identity(instance: &Instance) -> *const RequestState {
        instance.store.data()
    }

    /// Idle instances of `pool`, and idle instances counted in `budget`.
    fn idle(pool: &InstancePool, budget: &IdleBudget) -> (usize, usize) {
        (pool.idle.lock().unwrap().len(), budget.idle.load(Ordering::Acquire))
    }

    #[test]
    fn an_empty_pool_makes_a_new_store_not_yet_instantiated() {
        let budget = budget(8);
        let pool = pool(10, &budget);
        let instance = take(&pool);
        assert!(instance.export.is_none(), "instantiated on its first request, by dispatch");
        assert_eq!(instance.served, 0);
        assert_eq!(idle(&pool, &budget), (0, 0));
    }

    #[test]
    fn an_instance_put_back_serves_the_next_request_with_that_requests_capabilities() {
        let budget = budget(8);
        let pool = pool(10, &budget);
        let first = take(&pool);
        let store = identity(&first);
        pool.put(first);
        assert_eq!(idle(&pool, &budget), (1, 1), "kept warm, and counted against the budget");

        let deadline = Instant::now() + Duration::from_secs(20);
        let (capabilities, outbound) = request(deadline);
        let id = capabilities.request.id.clone();
        let warm = pool.take(capabilities, outbound);
        assert_eq!(identity(&warm), store, "the warm instance, not a new one");
        assert_eq!(warm.served, 1);
        assert_eq!(idle(&pool, &budget), (0, 0), "taken: no longer idle, its budget returned");
        let state = warm.store.data();
        assert_eq!((state.deadline(), &state.capabilities.request.id), (deadline, &id), "the new request's own");
    }

    #[test]
    fn an_instance_serves_requests_per_instance_requests_then_a_new_one_takes_over() {
        let budget = budget(8);
        let pool = pool(3, &budget);
        let first = take(&pool);
        let store = identity(&first);
        pool.put(first);
        for served in [1, 2] {
            let instance = take(&pool);
            assert_eq!((identity(&instance), instance.served), (store, served));
            pool.put(instance);
        }
        assert_eq!(idle(&pool, &budget), (0, 0), "retired after its third request");
        assert_eq!(take(&pool).served, 0, "a new instance");
    }

    #[test]
    fn one_request_per_instance_gives_every_request_a_new_instance() {
        let budget = budget(8);
        let pool = pool(1, &budget);
        pool.put(take(&pool));
        assert_eq!(idle(&pool, &budget), (0, 0));
        assert_eq!(take(&pool).served, 0, "a new instance");
    }

    #[test]
    fn an_instance_that_is_not_put_back_is_gone_and_frees_its_idle_slot() {
        let budget = budget(8);
        let pool = pool(10, &budget);
        pool.put(take(&pool));
        // The request trapped, timed out or was abandoned: dispatch drops the instance.
        let failed = take(&pool);
        assert_eq!(failed.served, 1, "the warm instance");
        drop(failed);
        assert_eq!(idle(&pool, &budget), (0, 0));
        assert_eq!(take(&pool).served, 0, "a new instance, not the failed one");
    }

    #[test]
    fn an_instance_still_holding_a_resource_is_retired() {
        let budget = budget(8);
        let pool = pool(10, &budget);
        let mut instance = take(&pool);
        instance.store.data_mut().http().table.push(()).expect("room in the table");
        pool.put(instance);
        assert_eq!(idle(&pool, &budget), (0, 0), "the next request starts from an empty table");
    }

    #[test]
    fn a_pool_keeps_what_its_requests_needed_at_once_up_to_its_tenants_share() {
        let budget = budget(8);
        let pool = pool_of_share(3, 10, &budget);
        let instances = [take(&pool), take(&pool)];
        instances.into_iter().for_each(|instance| pool.put(instance));
        assert_eq!(idle(&pool, &budget), (2, 2), "two requests at once: two kept for the next two");
        let instances = [take(&pool), take(&pool), take(&pool), take(&pool)];
        instances.into_iter().for_each(|instance| pool.put(instance));
        assert_eq!(idle(&pool, &budget), (3, 3), "no more than its share of 3 may be in flight again");
    }

    #[test]
    fn the_pools_of_all_tenants_keep_no_more_idle_instances_than_the_budget() {
        let budget = budget(1);
        let (acme, globex) = (pool(10, &budget), pool(10, &budget));
        let acmes = take(&acme);
        let globexs = take(&globex);
        acme.put(acmes);
        globex.put(globexs);
        assert_eq!((idle(&acme, &budget), idle(&globex, &budget).0), ((1, 1), 0), "the budget was used up");
        // acme's next request takes its idle instance: globex may keep one now.
        let acmes = take(&acme);
        let globexs = take(&globex);
        globex.put(globexs);
        assert_eq!((idle(&acme, &budget).0, idle(&globex, &budget)), (0, (1, 1)));
        drop(acmes);
    }

    #[test]
    fn a_pool_never_hands_out_another_pools_instance_and_each_counts_its_own_requests() {
        let budget = budget(8);
        let (acme, globex) = (pool(2, &budget), pool(10, &budget));
        let acmes = take(&acme);
        let store = identity(&acmes);
        acme.put(acmes);
        let globexs = take(&globex);
        assert_ne!(identity(&globexs), store, "instances never cross tenants");
        assert_eq!(globexs.served, 0);
        globex.put(globexs);
        // acme's instance reaches acme's requests_per_instance; globex's goes on.
        acme.put(take(&acme));
        globex.put(take(&globex));
        assert_eq!((idle(&acme, &budget).0, idle(&globex, &budget).0), (0, 1));
    }

    #[test]
    fn a_dropped_pool_returns_its_idle_instances_to_the_budget() {
        let budget = budget(8);
        let (acme, globex) = (pool(10, &budget), pool(10, &budget));
        let instances = [take(&acme), take(&acme)];
        instances.into_iter().for_each(|instance| acme.put(instance));
        globex.put(take(&globex));
        assert_eq!(budget.idle.load(Ordering::Acquire), 3);
        drop(acme);
        assert_eq!(idle(&globex, &budget), (1, 1), "only the dropped pool's instances are returned");
    }

    #[test]
    fn instances_idle_for_the_idle_timeout_are_retired_and_free_their_budget() {
        let budget = budget(8);
        let pool = pool(10, &budget);
        let instances = [take(&pool), take(&pool), take(&pool)];
        let fresh = identity(&instances[2]);
        instances.into_iter().for_each(|instance| pool.put(instance));
        // The two that went idle first have waited for the whole timeout.
        let long_ago = Instant::now().checked_sub(IDLE_TIMEOUT).expect("a monotonic clock older than the timeout");
        pool.idle.lock().unwrap()[..2].iter_mut().for_each(|instance| instance.idle_since = long_ago);
        pool.retire_idle();
        assert_eq!(idle(&pool, &budget), (1, 1));
        assert_eq!(identity(&take(&pool)), fresh, "the instance idle for less than the timeout is kept");
    }

    #[test]
    fn putting_an_instance_back_retires_the_stale_ones() {
        let budget = budget(8);
        let pool = pool(10, &budget);
        let instances = [take(&pool), take(&pool)];
        instances.into_iter().for_each(|instance| pool.put(instance));
        let long_ago = Instant::now().checked_sub(IDLE_TIMEOUT).expect("a monotonic clock older than the timeout");
        pool.idle.lock().unwrap().iter_mut().for_each(|instance| instance.idle_since = long_ago);
        let instance = take(&pool);
        let store = identity(&instance);
        pool.put(instance);
        assert_eq!(idle(&pool, &budget), (1, 1), "the stale one retired, the returned one kept");
        assert_eq!(identity(&take(&pool)), store);
    }
}

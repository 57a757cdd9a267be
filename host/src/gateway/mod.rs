//! The gateway: tenants, their components and device sessions, and the handling of one
//! HTTP request from tenant selection to the component's response.
//!
//! The gateway serves from an immutable [`Tenants`] value behind an [`ArcSwap`]; after every
//! change to the [store](waedge_store), [`Gateway::reload`] builds a new one and swaps it in.
//! Requests in flight keep the value they started with; finding the tenant and component
//! takes no lock.
//! What must outlive a rebuild — compiled components, each tenant's warm instances of them,
//! device sessions and their caches, each tenant's admission state — is kept in [`Parts`] and
//! reused.
//!
//! - [`request`]: one request, from tenant selection through admission to the component's
//!   answer (or the host's error, in the [`envelope`] of the API the request is for);
//! - [`components`]: the component registry — compiling, preparing and smoke-testing the
//!   built-ins, component files and deployed versions the routes name;
//! - [`events`]: the tenants' event handlers — components the webhooks name, handed events;
//! - this module: the gateway itself and the reconciler that rebuilds the tenants from the
//!   store, carrying over what must outlive a rebuild.

mod components;
mod envelope;
mod events;
pub mod heartbeat;
mod request;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use waedge_contract::EventHandler;
use waedge_device::cache::Cached;
use waedge_device::{DeviceManager, DeviceSession};
use waedge_store::devices::recorded_state;
use waedge_store::{ComponentRef, Snapshot, Store, StoreError};

use crate::capability::logging::tenant_log_rate;
use crate::capability::outbound::Outbound;
use crate::config::Config;
use crate::limits::Limits;
use crate::memory::Watermark;
use crate::runtime::capacity::Share;
use crate::runtime::cpu::CpuUse;
use crate::runtime::pool::InstancePool;
use crate::runtime::{HandlerComponent, Runtime};
use crate::telemetry::metrics::Metrics;
use crate::tenancy::admission::Admission;
use crate::tenancy::native::{NativeHandler, NativeRoute};
use crate::tenancy::{Route, Tenant, Tenants};
use heartbeat::Heartbeat;

pub use components::Export;
pub use envelope::{error, json_body, json_response};
pub use events::Unhandled;

use components::{deployed_key, deployed_name, exports};

/// The response header naming the component (and, for a tenant's own component, the
/// version) that served the request: `builtin:devices-api`, `acme/hmac-auth@1a2b3c4d5e6f`.
pub const COMPONENT_HEADER: &str = "x-waedge-component";

/// The response header carrying the request's id (see the contract's `request-context`),
/// which the gateway's log lines about the request carry as `request_id`.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Everything needed to serve requests.
pub struct Gateway {
    runtime: Runtime,
    devices: Arc<dyn DeviceManager>,
    defaults: Limits,
    default_tenant: Option<String>,
    metrics: Arc<Metrics>,
    outbound: Arc<Outbound>,
    tenants: ArcSwap<Tenants>,
    parts: Mutex<Parts>,
    /// Above it, new requests are shed.
    watermark: Option<Watermark>,
    /// On a node sharing its store with others: past it, requests are refused.
    heartbeat: OnceLock<Arc<Heartbeat>>,
    /// The native handlers `native:NAME` routes may name, by name.
    natives: HashMap<String, Arc<dyn NativeHandler>>,
}

/// What a rebuild of the tenants reuses.
#[derive(Default)]
struct Parts {
    /// Compiled components: built-ins by name, files by path and stamp, deployed versions by
    /// [`deployed_key`](components::deployed_key).
    components: HashMap<String, Arc<HandlerComponent>>,
    /// Device sessions by (tenant, device): the session and the cached view requests use.
    sessions: HashMap<(String, String), Session>,
    /// Admission state by tenant.
    admissions: HashMap<String, Arc<Admission>>,
    /// Instance pools by tenant.
    pools: HashMap<String, Vec<Arc<InstancePool>>>,
    /// Instance pools of event handlers by tenant.
    event_pools: HashMap<String, Vec<Arc<InstancePool<EventHandler>>>>,
    /// Each tenant's share of the pooling allocator.
    shares: HashMap<String, Arc<Share>>,
    /// Deployed versions compiled by [`Gateway::prepare_component`] and when: kept through
    /// reloads for [`PREPARED_FOR`], the time a deploy takes to store them.
    prepared: HashMap<String, Instant>,
}

/// How long a version compiled for a deploy stays compiled before the store holds it.
const PREPARED_FOR: Duration = Duration::from_secs(600);

/// A device's session and the (cached) view of it requests use.
struct Session {
    raw: Arc<dyn DeviceSession>,
    ttl: Duration,
    served: Arc<dyn DeviceSession>,
}

impl Gateway {
    /// A gateway with no tenant yet: [`reload`](Gateway::reload) gives it the store's.
    /// `defaults` are the limits of tenants that set none; `default_tenant` serves requests
    /// matching no host name and no token.
    pub fn new(
        runtime: Runtime,
        devices: Arc<dyn DeviceManager>,
        defaults: Limits,
        default_tenant: Option<String>,
    ) -> Gateway {
        Gateway {
            runtime,
            devices,
            defaults,
            default_tenant,
            metrics: Arc::new(Metrics::default()),
            outbound: Arc::new(Outbound::system()),
            tenants: ArcSwap::from_pointee(Tenants::default()),
            parts: Mutex::new(Parts::default()),
            watermark: None,
            heartbeat: OnceLock::new(),
            natives: HashMap::new(),
        }
    }

    /// The gateway of `config`, on `runtime` and `devices`: its default limits and tenant,
    /// outbound settings and memory watermark. What `waedge serve` runs, and the tests.
    pub fn from_config(runtime: Runtime, devices: Arc<dyn DeviceManager>, config: &Config) -> anyhow::Result<Gateway> {
        let mut gateway = Gateway::new(runtime, devices, config.limits, config.default_tenant.clone())
            .with_outbound(Outbound::from_config(config)?);
        gateway.watermark = config.memory_watermark_mib.map(Watermark::new);
        Ok(gateway)
    }

    /// Refuses requests (`503 NODE_BEHIND`) whenever `heartbeat` no longer lasts: this node
    /// shares its store with others and may be behind their changes. Set once.
    pub fn follow_heartbeat(&self, heartbeat: Arc<Heartbeat>) {
        let _ = self.heartbeat.set(heartbeat);
    }

    /// Whether this node may be behind the changes of the nodes it shares its store with.
    pub fn is_behind(&self) -> bool {
        self.heartbeat.get().is_some_and(|heartbeat| !heartbeat.lasts())
    }

    /// The gateway with components' outbound HTTP sent through `outbound` (else the system's
    /// resolver is used).
    pub fn with_outbound(mut self, outbound: Outbound) -> Gateway {
        self.outbound = Arc::new(outbound);
        self
    }

    /// Where components' outbound HTTP goes (its resolver, its address rules); webhooks share it.
    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// The gateway with `handler` for the routes naming `native:NAME`.
    pub fn with_native(mut self, name: &str, handler: Arc<dyn NativeHandler>) -> Gateway {
        self.natives.insert(name.to_string(), handler);
        self
    }

    /// The native handler `name`.
    fn native(&self, name: &str) -> anyhow::Result<Arc<dyn NativeHandler>> {
        self.natives.get(name).cloned().ok_or_else(|| {
            anyhow::anyhow!("this build has no native handler `{name}` (only the benchmarks' builds have one)")
        })
    }

    /// Rebuilds the tenants from the store and swaps them in. Opens the sessions of new
    /// devices and compiles new components (CPU-heavy: call it off the async workers, e.g.
    /// in [`Store::run`]). A route whose component cannot be loaded is left out; the
    /// returned list says which and why.
    pub fn reload(&self, store: &Store) -> Result<Vec<String>, StoreError> {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = store.snapshot()?;
        Ok(self.load(&mut parts, &snapshot, store))
    }

    fn load(&self, parts: &mut Parts, snapshot: &Snapshot, store: &Store) -> Vec<String> {
        let mut problems = Vec::new();
        let mut tenants = Vec::new();
        let mut live_sessions = HashMap::new();
        let mut live_admissions = HashMap::new();
        let mut live_pools = HashMap::new();
        let mut live_event_pools = HashMap::new();
        let mut live_shares = HashMap::new();
        let mut live_components: Vec<Arc<HandlerComponent>> = Vec::new();
        for state in &snapshot.tenants {
            let tenant_id = &state.tenant.id;
            let limits = self.defaults.overridden(&state.tenant.limits);
            let mut old_pools = parts.pools.remove(tenant_id).unwrap_or_default();
            let share = parts
                .shares
                .remove(tenant_id)
                .unwrap_or_else(|| Share::new(0, limits.cpu_millicores, tenant_log_rate()));
            share.cpu().set_millicores(limits.cpu_millicores);
            let mut pools: Vec<Arc<InstancePool>> = Vec::new();
            let active =
                |name: &str| state.components.iter().find(|c| c.name == name && c.active).map(|c| c.sha256.clone());
            let mut routes = Vec::new();
            for route in &state.routes {
                let component = match &route.component {
                    ComponentRef::Native(name) => match self.native(name) {
                        Ok(handler) => {
                            let name = route.component.to_string().into();
                            let native = NativeRoute { name, handler, limits, share: share.clone() };
                            routes.push(Route::native(&route.prefix, native));
                            continue;
                        }
                        Err(e) => Err(e),
                    },
                    other => self.resolve(parts, store, tenant_id, &active, other),
                };
                let component = component.and_then(|c| exports(&c, &route.component, Export::Http).map(|()| c));
                match component {
                    Ok(component) => {
                        live_components.push(component.clone());
                        let pool = self.pool_for(&mut pools, &mut old_pools, component, limits, &share);
                        routes.push(Route::new(&route.prefix, pool));
                    }
                    Err(e) => {
                        problems.push(format!("tenant `{tenant_id}`, route `{}`: {e:#}", route.prefix));
                        routes.push(Route::unavailable(&route.prefix, &route.component.to_string()));
                    }
                }
            }
            let mut old_event_pools = parts.event_pools.remove(tenant_id).unwrap_or_default();
            let mut event_pools = Vec::new();
            let mut handlers = HashMap::new();
            for (webhook, reference) in &state.event_handlers {
                let handler = self.resolve(parts, store, tenant_id, &active, reference).and_then(|component| {
                    exports(&component, reference, Export::Events)?;
                    live_components.push(component.clone());
                    Ok(self.pool_for(&mut event_pools, &mut old_event_pools, component, limits, &share))
                });
                if let Err(e) = &handler {
                    problems.push(format!("tenant `{tenant_id}`, event handler {webhook}: {e:#}"));
                }
                handlers.insert(webhook.clone(), handler.map_err(|e| format!("{e:#}")));
            }
            let ttl = Duration::from_secs(limits.cache_ttl_seconds);
            let mut devices = BTreeMap::new();
            for device in &state.devices {
                let key = (tenant_id.clone(), device.id.clone());
                let session = match parts.sessions.remove(&key) {
                    Some(session) if session.ttl == ttl => session,
                    Some(session) => self.serve_session(session.raw, ttl),
                    None => self.serve_session(self.devices.open(tenant_id, &device.id, recorded_state(device)), ttl),
                };
                devices.insert(device.id.clone(), session.served.clone());
                live_sessions.insert(key, session);
            }
            let admission = match parts.admissions.remove(tenant_id) {
                Some(admission) if admission.enforces(&limits) => admission,
                _ => Arc::new(Admission::new(limits)),
            };
            live_admissions.insert(tenant_id.clone(), admission.clone());
            live_pools.insert(tenant_id.clone(), pools);
            live_event_pools.insert(tenant_id.clone(), event_pools);
            live_shares.insert(tenant_id.clone(), share);
            let tenant = Tenant::new(state, limits, devices, routes, admission).with_event_handlers(handlers);
            tenants.push((tenant, state.tenant.hosts.clone()));
        }
        parts.sessions = live_sessions;
        parts.admissions = live_admissions;
        parts.pools = live_pools;
        parts.event_pools = live_event_pools;
        let share_size = self.runtime.share_size(live_shares.len());
        live_shares.values().for_each(|share| share.resize(share_size));
        parts.shares = live_shares;
        // What no route serves is dropped from memory, but for versions compiled for a deploy
        // that has not stored them yet: a tenant with many stored versions holds the memory of
        // the ones it serves only. An inactive stored version keeps its compiled artefact on
        // disk, so activating it again (a rollback) loads it instead of compiling it.
        let stored: std::collections::HashSet<String> = snapshot
            .tenants
            .iter()
            .flat_map(|t| t.components.iter().map(|v| deployed_key(&t.tenant.id, &v.name, &v.sha256)))
            .collect();
        parts.prepared.retain(|key, at| !stored.contains(key) && at.elapsed() < PREPARED_FOR);
        let prepared = &parts.prepared;
        parts.components.retain(|key, component| {
            prepared.contains_key(key) || live_components.iter().any(|live| Arc::ptr_eq(live, component))
        });
        // The artefacts on disk of what is compiled, and of every stored version.
        let mut used: std::collections::HashSet<&str> =
            snapshot.tenants.iter().flat_map(|t| t.components.iter().map(|v| v.sha256.as_str())).collect();
        used.extend(parts.components.values().map(|component| component.sha256()));
        self.runtime.retain_cached(&used);
        // Metrics keep the series of what is served or stored, nothing of what is gone.
        let mut kept: HashMap<&str, std::collections::HashSet<String>> = HashMap::new();
        for state in &snapshot.tenants {
            let id = state.tenant.id.as_str();
            let names = state.components.iter().map(|v| deployed_name(id, &v.name, &v.sha256));
            kept.entry(id).or_default().extend(names);
        }
        for (tenant, _) in &tenants {
            let served = tenant.routes().iter().map(|route| route.served_by().to_string());
            let handling = tenant.event_handler_pools().map(|pool| pool.component().name().to_string());
            kept.entry(tenant.id()).or_default().extend(served.chain(handling));
        }
        let anywhere: std::collections::HashSet<&String> = kept.values().flatten().collect();
        self.metrics.retire(|tenant, component| match tenant {
            "" => anywhere.contains(&component.to_string()),
            tenant => kept.get(tenant).is_some_and(|names| names.contains(component)),
        });
        self.tenants.store(Arc::new(Tenants::new(tenants, self.default_tenant.as_deref())));
        problems
    }

    /// The tenant's instances of `component` under `limits`: the pool another of its routes
    /// already uses, else the one it had before the reload (warm instances survive a reload
    /// unless the component or the limits they were made under changed), else a new one.
    fn pool_for<E>(
        &self,
        pools: &mut Vec<Arc<InstancePool<E>>>,
        old_pools: &mut Vec<Arc<InstancePool<E>>>,
        component: Arc<HandlerComponent>,
        limits: Limits,
        share: &Arc<Share>,
    ) -> Arc<InstancePool<E>> {
        let reusable =
            |pool: &Arc<InstancePool<E>>| Arc::ptr_eq(pool.component(), &component) && *pool.limits() == limits;
        if let Some(pool) = pools.iter().find(|pool| reusable(pool)) {
            return pool.clone();
        }
        let pool = match old_pools.iter().position(reusable) {
            Some(at) => old_pools.swap_remove(at),
            None => Arc::new(self.runtime.pool(component, limits, share.clone())),
        };
        pools.push(pool.clone());
        pool
    }

    fn serve_session(&self, raw: Arc<dyn DeviceSession>, ttl: Duration) -> Session {
        let served: Arc<dyn DeviceSession> =
            if ttl.is_zero() { raw.clone() } else { Arc::new(Cached::new(raw.clone(), ttl, self.metrics.clone())) };
        Session { raw, ttl, served }
    }

    /// Retires the warm instances that have been idle for longer than
    /// [`IDLE_TIMEOUT`](crate::runtime::pool::IDLE_TIMEOUT), returning their memory. Call it
    /// periodically.
    pub fn retire_idle_instances(&self) {
        for tenant in self.tenants().iter() {
            tenant.routes().iter().filter_map(Route::instances).for_each(|pool| pool.retire_idle());
            tenant.event_handler_pools().for_each(|pool| pool.retire_idle());
        }
    }

    /// The tenants being served now.
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.load_full()
    }

    /// The device sessions' manager.
    pub fn devices(&self) -> &Arc<dyn DeviceManager> {
        &self.devices
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What each loaded tenant's guests have used of its CPU budget.
    pub fn cpu_use(&self) -> Vec<(String, CpuUse)> {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.shares.iter().map(|(tenant, share)| (tenant.clone(), share.cpu().used())).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use waedge_e2e::fixture::{FixtureDevices, World};
    use waedge_e2e::server::fixtures;

    use super::*;

    /// One runtime for every test here: engines are meant to be shared.
    fn runtime() -> Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| Runtime::with_slots(16).expect("a runtime")).clone()
    }

    /// A gateway with no tenant yet, whose devices are the end-to-end tests' fixture world.
    fn gateway() -> Gateway {
        let world = World::load(&fixtures().join("world.toml")).expect("the fixture world");
        Gateway::new(runtime(), Arc::new(FixtureDevices(world)), Limits::default(), None)
    }

    /// Reloads `gateway` from a store holding `tenants` (`[[tenants]]` tables), as after a
    /// change to the store; every route must load.
    fn reload(gateway: &Gateway, tenants: &[String]) {
        let store = Store::open_in_memory().expect("an in-memory store");
        Config::parse(&tenants.concat()).expect("a valid configuration").seed(&store).expect("the store seeds");
        assert_eq!(gateway.reload(&store).expect("the store reads"), Vec::<String>::new());
    }

    /// Tenant `id` with `limits` (an inline table's contents), its device `main`, and its
    /// routes `/devices` and `/more`, both served by `component`.
    fn tenant(id: &str, limits: &str, component: &str) -> String {
        format!(
            r#"
            [[tenants]]
            id = "{id}"
            limits = {{ {limits} }}
            devices = [{{ id = "main" }}]
            routes = [
              {{ prefix = "/devices", component = "{component}" }},
              {{ prefix = "/more", component = "{component}" }},
            ]
            "#
        )
    }

    /// The instances serving `tenant`'s route `prefix`.
    fn pool(gateway: &Gateway, tenant: &str, prefix: &str) -> Arc<InstancePool> {
        let tenants = gateway.tenants();
        let routes = tenants.get(tenant).expect("the tenant is loaded").routes();
        let route = routes.iter().find(|route| route.prefix() == prefix).expect("the route is loaded");
        route.instances().expect("a component serves the route").clone()
    }

    /// `tenant`'s admission state.
    fn admission(gateway: &Gateway, tenant: &str) -> Arc<Admission> {
        gateway.tenants().get(tenant).expect("the tenant is loaded").admission().clone()
    }

    /// The session of `tenant`'s device `main` (as opened, and as requests are served by it)
    /// and the cache TTL it is served under.
    fn session(gateway: &Gateway, tenant: &str) -> (Arc<dyn DeviceSession>, Arc<dyn DeviceSession>, Duration) {
        let parts = gateway.parts.lock().unwrap();
        let session = &parts.sessions[&(tenant.to_string(), "main".to_string())];
        let tenants = gateway.tenants();
        let scope = tenants.get(tenant).expect("the tenant is loaded").scope();
        let served = scope.device("main").expect("the device is in the tenant's scope");
        assert!(Arc::ptr_eq(served, &session.served), "requests are served by the session kept for the next reload");
        (session.raw.clone(), session.served.clone(), session.ttl)
    }

    const DEVICES_API: &str = "builtin:devices-api";
    const CONTACTS_API: &str = "builtin:contacts-api";

    #[test]
    fn a_reload_that_changes_nothing_of_a_tenant_keeps_its_warm_instances() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        let before = pool(&gateway, "acme", "/devices");
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        assert!(Arc::ptr_eq(&pool(&gateway, "acme", "/devices"), &before));
    }

    #[test]
    fn routes_of_a_tenant_served_by_one_component_share_its_instances() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        assert!(Arc::ptr_eq(&pool(&gateway, "acme", "/devices"), &pool(&gateway, "acme", "/more")));
    }

    #[test]
    fn new_limits_give_the_tenant_new_instances_made_under_them_of_the_same_compiled_component() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        let before = pool(&gateway, "acme", "/devices");
        reload(&gateway, &[tenant("acme", "memory_mib = 32", DEVICES_API)]);
        let after = pool(&gateway, "acme", "/devices");
        assert!(!Arc::ptr_eq(&after, &before), "instances made under the old limits are not reused");
        assert_eq!(after.limits().memory_mib, 32);
        assert!(Arc::ptr_eq(&pool(&gateway, "acme", "/more"), &after), "both routes moved to the new instances");
        assert!(Arc::ptr_eq(after.component(), before.component()), "compiled once, kept across reloads");
        assert!(Arc::ptr_eq(after.share(), before.share()), "the tenant's share of the instance pool is kept");
    }

    #[test]
    fn another_component_gives_the_route_new_instances_and_drops_the_one_no_route_serves() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        let before = pool(&gateway, "acme", "/devices");
        reload(&gateway, &[tenant("acme", "", CONTACTS_API)]);
        let after = pool(&gateway, "acme", "/devices");
        assert!(!Arc::ptr_eq(&after, &before));
        assert_eq!(&**after.component().name(), CONTACTS_API);
        let parts = gateway.parts.lock().unwrap();
        let compiled: Vec<_> = parts.components.keys().collect();
        assert_eq!(compiled, [CONTACTS_API], "no route serves {DEVICES_API} any more");
    }

    #[test]
    fn tenants_never_share_instances_though_they_share_the_compiled_component() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "", DEVICES_API), tenant("globex", "", DEVICES_API)]);
        let (acme, globex) = (pool(&gateway, "acme", "/devices"), pool(&gateway, "globex", "/devices"));
        assert!(!Arc::ptr_eq(&acme, &globex));
        assert!(!Arc::ptr_eq(acme.share(), globex.share()));
        assert!(Arc::ptr_eq(acme.component(), globex.component()));
    }

    #[test]
    fn a_tenant_gone_from_the_store_leaves_nothing_behind() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "", DEVICES_API), tenant("globex", "", DEVICES_API)]);
        reload(&gateway, &[tenant("globex", "", DEVICES_API)]);
        assert!(gateway.tenants().get("acme").is_none());
        let parts = gateway.parts.lock().unwrap();
        let tenants = |ids: Vec<&String>| ids.into_iter().cloned().collect::<Vec<_>>();
        let left = [
            tenants(parts.pools.keys().collect()),
            tenants(parts.admissions.keys().collect()),
            tenants(parts.shares.keys().collect()),
            tenants(parts.sessions.keys().map(|(tenant, _)| tenant).collect()),
        ];
        assert_eq!(left, [["globex"], ["globex"], ["globex"], ["globex"]]);
    }

    #[test]
    fn a_reload_keeps_a_devices_session_and_its_cache_while_the_ttl_is_unchanged() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "cache_ttl_seconds = 30", DEVICES_API)]);
        let (raw, served, _) = session(&gateway, "acme");
        assert!(!Arc::ptr_eq(&served, &raw), "served through a cache");
        reload(&gateway, &[tenant("acme", "cache_ttl_seconds = 30, memory_mib = 32", DEVICES_API)]);
        let (raw_after, served_after, _) = session(&gateway, "acme");
        assert!(Arc::ptr_eq(&raw_after, &raw), "the device was not opened again");
        assert!(Arc::ptr_eq(&served_after, &served), "nor its cache emptied");
    }

    #[test]
    fn a_new_cache_ttl_puts_a_new_cache_in_front_of_the_same_session() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "cache_ttl_seconds = 30", DEVICES_API)]);
        let (raw, served, _) = session(&gateway, "acme");
        reload(&gateway, &[tenant("acme", "cache_ttl_seconds = 60", DEVICES_API)]);
        let (raw_after, served_after, ttl) = session(&gateway, "acme");
        assert!(Arc::ptr_eq(&raw_after, &raw), "the device was not opened again");
        assert!(!Arc::ptr_eq(&served_after, &served) && !Arc::ptr_eq(&served_after, &raw));
        assert_eq!(ttl, Duration::from_secs(60));
    }

    #[test]
    fn a_cache_ttl_of_zero_serves_the_session_itself() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "cache_ttl_seconds = 30", DEVICES_API)]);
        let (raw, _, _) = session(&gateway, "acme");
        reload(&gateway, &[tenant("acme", "cache_ttl_seconds = 0", DEVICES_API)]);
        let (raw_after, served, _) = session(&gateway, "acme");
        assert!(Arc::ptr_eq(&raw_after, &raw) && Arc::ptr_eq(&served, &raw));
    }

    #[test]
    fn a_device_gone_from_the_store_loses_its_session_and_comes_back_with_a_new_one() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        let (raw, _, _) = session(&gateway, "acme");
        let without_devices = tenant("acme", "", DEVICES_API).replace(r#"devices = [{ id = "main" }]"#, "");
        reload(&gateway, &[without_devices]);
        assert!(gateway.parts.lock().unwrap().sessions.is_empty());
        assert!(gateway.tenants().get("acme").unwrap().scope().device("main").is_none());
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        assert!(!Arc::ptr_eq(&session(&gateway, "acme").0, &raw), "opened anew");
    }

    #[test]
    fn a_reload_keeps_the_admission_state_while_no_admission_setting_changes() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "requests_per_second = 5", DEVICES_API)]);
        let before = admission(&gateway, "acme");
        reload(&gateway, &[tenant("acme", "requests_per_second = 5, memory_mib = 32", DEVICES_API)]);
        assert!(Arc::ptr_eq(&admission(&gateway, "acme"), &before), "its buckets and requests in flight are kept");
    }

    #[test]
    fn a_new_admission_setting_replaces_the_admission_state() {
        let gateway = gateway();
        reload(&gateway, &[tenant("acme", "requests_per_second = 5", DEVICES_API)]);
        let before = admission(&gateway, "acme");
        reload(&gateway, &[tenant("acme", "requests_per_second = 6", DEVICES_API)]);
        let after = admission(&gateway, "acme");
        assert!(!Arc::ptr_eq(&after, &before));
        assert!(after.enforces(&Limits { requests_per_second: 6, ..Limits::default() }));
        // The devices' send rate is admission's too.
        reload(&gateway, &[tenant("acme", "requests_per_second = 6, sends_per_minute = 5", DEVICES_API)]);
        let sends = admission(&gateway, "acme");
        assert!(!Arc::ptr_eq(&sends, &after));
        assert!(sends.enforces(&Limits { requests_per_second: 6, sends_per_minute: 5, ..Limits::default() }));
    }

    #[test]
    fn a_version_prepared_for_a_deploy_stays_compiled_through_reloads_for_a_while() {
        let gateway = gateway();
        let bytes = crate::runtime::builtin::get("devices-api").expect("the built-in");
        let sha256 = "0".repeat(64);
        gateway.prepare_component("acme", "hello", &sha256, bytes).expect("the version compiles");
        let key = deployed_key("acme", "hello", &sha256);
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        assert!(gateway.parts.lock().unwrap().components.contains_key(&key), "kept for the deploy to store it");
        let long_ago = Instant::now().checked_sub(PREPARED_FOR).expect("a monotonic clock older than that");
        gateway.parts.lock().unwrap().prepared.insert(key.clone(), long_ago);
        reload(&gateway, &[tenant("acme", "", DEVICES_API)]);
        assert!(!gateway.parts.lock().unwrap().components.contains_key(&key), "a deploy never stored it");
    }
}

//! Tenants and the choice of tenant and component for a request.
//!
//! The path of a request through this module (the design's steps 1 and 2):
//!
//! 1. **Tenant**: the `Host` header names a tenant's host → that tenant; else the bearer
//!    token's hash belongs to a tenant's user → that tenant; else the default tenant.
//! 2. **Component**: the tenant's route with the longest path prefix matching the request
//!    path at a `/` boundary.
//! 3. **Admission**: the tenant's [`admission::Admission`] (rate and concurrency limits).
//!
//! A [`Tenants`] value is immutable: the gateway builds a new one from the store after every
//! change and swaps it in, so the request path never takes a lock to find its tenant.

pub mod admission;
pub mod native;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use waedge_contract::EventHandler;
use waedge_device::DeviceSession;
use waedge_store::TenantSnapshot;
use waedge_store::token::TokenHash;

use crate::capability::scope::{Scope, User};
use crate::limits::Limits;
use crate::runtime::pool::InstancePool;
use admission::Admission;
use native::NativeRoute;

/// A path prefix and the component that serves it, with the tenant's instances of it — or,
/// when that component could not be loaded, the prefix alone: its requests are refused, never
/// served by a route with a shorter prefix.
pub struct Route {
    prefix: String,
    target: Target,
}

/// What serves a route.
pub enum Target {
    /// The tenant's instances of the component.
    Component(Arc<InstancePool>),
    /// Host code instead of a component.
    Native(NativeRoute),
    /// The component (as the route names it) that could not be loaded.
    Unavailable(String),
}

impl Route {
    /// A route for `prefix` (trailing slashes ignored).
    pub fn new(prefix: &str, instances: Arc<InstancePool>) -> Self {
        Route { prefix: normalise(prefix), target: Target::Component(instances) }
    }

    /// A route for `prefix` served by host code.
    pub fn native(prefix: &str, native: NativeRoute) -> Self {
        Route { prefix: normalise(prefix), target: Target::Native(native) }
    }

    /// A route for `prefix` whose component, `component`, could not be loaded.
    pub fn unavailable(prefix: &str, component: &str) -> Self {
        Route { prefix: normalise(prefix), target: Target::Unavailable(component.to_string()) }
    }

    fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
    }

    /// The path prefix, e.g. `/devices`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What serves the route.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The tenant's instances of the component serving the route, if a component does.
    pub fn instances(&self) -> Option<&Arc<InstancePool>> {
        match &self.target {
            Target::Component(instances) => Some(instances),
            Target::Native(_) | Target::Unavailable(_) => None,
        }
    }

    /// The name of what serves the route: the component's (`builtin:devices-api`,
    /// `acme/hello@1a2b3c4d5e6f`), the native handler's, or the one that could not be loaded.
    pub fn served_by(&self) -> &str {
        match &self.target {
            Target::Component(instances) => instances.component().name(),
            Target::Native(native) => &native.name,
            Target::Unavailable(component) => component,
        }
    }
}

fn normalise(prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() { "/".into() } else { prefix.into() }
}

/// Whether `prefix` (no trailing slash, or exactly `/`) covers `path` at a `/` boundary:
/// `/devices` covers `/devices` and `/devices/x`, not `/devicesx`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/" || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One tenant: its users, devices, routes, settings and limits.
pub struct Tenant {
    scope: Arc<Scope>,
    limits: Limits,
    routes: Vec<Route>,
    outbound_hosts: Arc<[String]>,
    outbound_private_hosts: Arc<[String]>,
    admission: Arc<Admission>,
    /// Its event handlers by webhook id: the instances of the component, or why it could not
    /// be loaded.
    event_handlers: HashMap<String, Result<Arc<InstancePool<EventHandler>>, String>>,
}

impl Tenant {
    /// Builds a tenant from its stored state, effective limits, device sessions, routes and
    /// admission state (kept across rebuilds, so limits hold while the tenant changes).
    pub fn new(
        snapshot: &TenantSnapshot,
        limits: Limits,
        devices: BTreeMap<String, Arc<dyn DeviceSession>>,
        routes: Vec<Route>,
        admission: Arc<Admission>,
    ) -> Self {
        let users: HashMap<TokenHash, User> = snapshot
            .users
            .iter()
            .flat_map(|(user, hashes)| {
                let user = User { id: user.id.clone(), devices: user.devices.clone(), scopes: user.scopes.clone() };
                hashes.iter().map(move |hash| (*hash, user.clone()))
            })
            .collect();
        let mut routes = routes;
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let tenant = &snapshot.tenant;
        Tenant {
            scope: Arc::new(Scope::new(&tenant.id, users, devices, tenant.settings.clone(), admission.sends().clone())),
            limits,
            routes,
            outbound_hosts: tenant.outbound_hosts.clone().into(),
            outbound_private_hosts: tenant.outbound_private_hosts.clone().into(),
            admission,
            event_handlers: HashMap::new(),
        }
    }

    /// The tenant id.
    pub fn id(&self) -> &str {
        self.scope.tenant()
    }

    /// What the tenant's components may reach.
    pub fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }

    /// The tenant's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The tenant's rate and concurrency limiter.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// The tenant with `handlers`, its event handlers by webhook id: the instances of each
    /// one's component, or why it could not be loaded.
    pub fn with_event_handlers(
        mut self,
        handlers: HashMap<String, Result<Arc<InstancePool<EventHandler>>, String>>,
    ) -> Self {
        self.event_handlers = handlers;
        self
    }

    /// The instances of every event handler whose component is loaded.
    pub fn event_handler_pools(&self) -> impl Iterator<Item = &Arc<InstancePool<EventHandler>>> {
        self.event_handlers.values().filter_map(|handler| handler.as_ref().ok())
    }

    /// The event handler of webhook `id`: `None` when the tenant has none of that id (yet);
    /// else its instances, or why its component could not be loaded.
    pub fn event_handler(&self, id: &str) -> Option<&Result<Arc<InstancePool<EventHandler>>, String>> {
        self.event_handlers.get(id)
    }

    /// Host names the tenant's components may call.
    pub fn outbound_hosts(&self) -> &Arc<[String]> {
        &self.outbound_hosts
    }

    /// Outbound hosts that may resolve to internal addresses.
    pub fn outbound_private_hosts(&self) -> &Arc<[String]> {
        &self.outbound_private_hosts
    }

    /// The route serving `path`, by longest matching prefix.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(path))
    }

    /// Every route, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// Every tenant, indexed for tenant selection.
#[derive(Default)]
pub struct Tenants {
    by_id: HashMap<String, Arc<Tenant>>,
    by_host: HashMap<String, Arc<Tenant>>,
    by_token: HashMap<TokenHash, Arc<Tenant>>,
    default: Option<Arc<Tenant>>,
}

impl Tenants {
    /// Indexes `tenants`; `hosts` gives each tenant's host names; `default` names the
    /// fallback tenant.
    pub fn new(tenants: Vec<(Tenant, Vec<String>)>, default: Option<&str>) -> Self {
        let mut index = Tenants::default();
        for (tenant, hosts) in tenants {
            let tenant = Arc::new(tenant);
            for host in hosts {
                index.by_host.insert(host.to_ascii_lowercase(), tenant.clone());
            }
            for hash in tenant.scope.token_hashes() {
                index.by_token.insert(*hash, tenant.clone());
            }
            index.by_id.insert(tenant.id().to_string(), tenant);
        }
        index.default = default.and_then(|id| index.by_id.get(id).cloned());
        index
    }

    /// The tenant with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    /// Every tenant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_id.values()
    }

    /// Picks the tenant for a request from its `Host` header and its bearer token's hash.
    pub fn select(&self, host: Option<&str>, token: Option<&TokenHash>) -> Option<&Arc<Tenant>> {
        let by_host = host.map(strip_port).and_then(|h| self.by_host.get(&h.to_ascii_lowercase()));
        by_host.or_else(|| token.and_then(|token| self.by_token.get(token))).or(self.default.as_ref())
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal: `[::1]:8080`.
        return host.split_once(']').map_or(host, |(addr, _)| &addr[1..]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(prefix_matches("/devices", "/devices"));
        assert!(prefix_matches("/devices", "/devices/main/groups"));
        assert!(!prefix_matches("/devices", "/devicesX/main"));
        assert!(!prefix_matches("/devices", "/contacts"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("acme.example.com:8080"), "acme.example.com");
        assert_eq!(strip_port("acme.example.com"), "acme.example.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
    }
}

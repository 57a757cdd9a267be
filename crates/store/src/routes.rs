//! Routes of a tenant: a path prefix and the component serving it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, tenants};
use crate::db::{Conn, params};

/// What a route names as its component, spelt the same in the admin API, the configuration
/// file and the store: `builtin:NAME`, `component:NAME`, `native:NAME`, or a file path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ComponentRef {
    /// `builtin:NAME`: a component built into waedge (`builtin:devices-api`).
    Builtin(String),
    /// `component:NAME`: the active version of one of the tenant's deployed components.
    Deployed(String),
    /// `native:NAME`: host code registered with the gateway instead of a component (the
    /// benchmarks' baseline); a build that registers none refuses it.
    Native(String),
    /// A path to a `.wasm` component file on the server: anything without one of the prefixes.
    File(String),
}

impl FromStr for ComponentRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let named = |name: &str, kind: fn(String) -> ComponentRef| match name.trim() {
            "" => Err(format!("`{text}` names no component: say which, e.g. `builtin:devices-api`")),
            _ => Ok(kind(name.to_string())),
        };
        if let Some(name) = text.strip_prefix("builtin:") {
            named(name, ComponentRef::Builtin)
        } else if let Some(name) = text.strip_prefix("component:") {
            named(name, ComponentRef::Deployed)
        } else if let Some(name) = text.strip_prefix("native:") {
            named(name, ComponentRef::Native)
        } else {
            named(text, ComponentRef::File)
        }
    }
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentRef::Builtin(name) => write!(f, "builtin:{name}"),
            ComponentRef::Deployed(name) => write!(f, "component:{name}"),
            ComponentRef::Native(name) => write!(f, "native:{name}"),
            ComponentRef::File(path) => f.write_str(path),
        }
    }
}

impl TryFrom<String> for ComponentRef {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<ComponentRef> for String {
    fn from(component: ComponentRef) -> Self {
        component.to_string()
    }
}

/// A route as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRecord {
    /// Path prefix starting with `/`, without a trailing `/` (except the root), e.g. `/devices`.
    pub prefix: String,
    /// The component serving it.
    pub component: ComponentRef,
}

impl Store {
    /// Every route of `tenant`.
    pub fn routes(&self, tenant: &str) -> Result<Vec<RouteRecord>, StoreError> {
        self.read(|conn| {
            tenants::require(conn, tenant)?;
            list(conn, tenant)
        })
    }

    /// Sets the component serving `route.prefix` for `tenant` (creating or replacing the route).
    pub fn put_route(&self, tenant: &str, route: RouteRecord) -> Result<RouteRecord, StoreError> {
        let route = RouteRecord { prefix: normalize_prefix(&route.prefix)?, component: route.component };
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            tx.execute(
                "INSERT INTO routes (tenant_id, prefix, component) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, prefix) DO UPDATE SET component = excluded.component",
                params![tenant, route.prefix, route.component.to_string()],
            )?;
            Ok(route)
        })
    }

    /// Deletes the route of `tenant` with this prefix.
    pub fn delete_route(&self, tenant: &str, prefix: &str) -> Result<(), StoreError> {
        let prefix = normalize_prefix(prefix)?;
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            match tx.execute("DELETE FROM routes WHERE tenant_id = ?1 AND prefix = ?2", params![tenant, prefix])? {
                0 => Err(StoreError::NotFound(format!("tenant `{tenant}` has no route `{prefix}`"))),
                _ => Ok(()),
            }
        })
    }
}

pub(super) fn list(conn: &Conn<'_>, tenant: &str) -> Result<Vec<RouteRecord>, StoreError> {
    let routes = "SELECT prefix, component FROM routes WHERE tenant_id = ?1 ORDER BY prefix";
    conn.query(routes, params![tenant], |row| {
        let component: String = row.get(1)?;
        // Only an older store can hold a text that names nothing (`builtin:`): it reads as a
        // file that is not there, so that route is unavailable and the others are served.
        let component = component.parse().unwrap_or(ComponentRef::File(component));
        Ok(RouteRecord { prefix: row.get(0)?, component })
    })
}

/// `/devices/` → `/devices`; refuses prefixes not starting with `/`.
fn normalize_prefix(prefix: &str) -> Result<String, StoreError> {
    if !prefix.starts_with('/') || prefix.contains(['?', '#', ' ']) {
        return Err(StoreError::Invalid(format!(
            "route prefix `{prefix}`: must be a path starting with `/`, e.g. `/devices`"
        )));
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};

    #[test]
    fn component_references_read_back_what_they_write() {
        for text in ["builtin:devices-api", "component:hello", "native:devices-profile", "/srv/plugins/hello.wasm"] {
            let component: ComponentRef = text.parse().unwrap();
            assert_eq!(component.to_string(), text);
        }
        assert_eq!("builtin:devices-api".parse(), Ok(ComponentRef::Builtin("devices-api".into())));
        assert_eq!("component:hello".parse(), Ok(ComponentRef::Deployed("hello".into())));
        assert_eq!("native:devices-profile".parse(), Ok(ComponentRef::Native("devices-profile".into())));
        // No prefix, or one in another case, is a file; names are kept as written.
        assert_eq!("Builtin:x".parse(), Ok(ComponentRef::File("Builtin:x".into())));
        assert_eq!("builtin: devices-api".parse(), Ok(ComponentRef::Builtin(" devices-api".into())));
        for nothing in ["", "  ", "builtin:", "component: ", "native:"] {
            assert!(nothing.parse::<ComponentRef>().is_err(), "{nothing:?} names no component");
        }
    }

    fn route(prefix: &str, component: &str) -> RouteRecord {
        RouteRecord { prefix: prefix.into(), component: component.parse().unwrap() }
    }

    on_both! {
    fn a_route_is_put_under_its_normalised_prefix_and_replaced_there(store) {
        let store = acme(store);
        assert_eq!(
            store.put_route("acme", route("/devices/", "builtin:devices-api")).unwrap(),
            route("/devices", "builtin:devices-api")
        );
        store.put_route("acme", route("/", "component:hello")).unwrap();
        store.put_route("acme", route("/devices", "component:devices")).unwrap();
        assert_eq!(
            store.routes("acme").unwrap(),
            [route("/", "component:hello"), route("/devices", "component:devices")]
        );
        store.delete_route("acme", "/devices/").unwrap();
        assert_eq!(store.routes("acme").unwrap(), [route("/", "component:hello")]);
    }

    fn missing_routes_and_tenants_are_not_found_and_bad_prefixes_invalid(store) {
        let store = acme(store);
        assert!(matches!(store.delete_route("acme", "/devices"), Err(StoreError::NotFound(_))));
        assert!(matches!(
            store.put_route("globex", route("/devices", "builtin:devices-api")),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(store.routes("globex"), Err(StoreError::NotFound(_))));
        for bad in ["devices", "/devices?x=1", "/a b", ""] {
            assert!(
                matches!(store.put_route("acme", route(bad, "builtin:devices-api")), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(store.routes("acme").unwrap().is_empty());
    }

    fn a_stored_route_that_names_nothing_does_not_hide_the_others(store) {
        let store = acme(store);
        let route = RouteRecord { prefix: "/devices".into(), component: ComponentRef::Builtin("devices-api".into()) };
        store.put_route("acme", route).unwrap();
        store
            .transaction(|conn| {
                conn.execute("INSERT INTO routes (tenant_id, prefix, component) VALUES ('acme', '/old', 'builtin:')", &[])
            })
            .unwrap();
        let routes = store.routes("acme").unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].component, ComponentRef::File("builtin:".into()));
    }
    }
}

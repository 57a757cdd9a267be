//! Routes of a tenant: a path prefix and the component serving it.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, tenants};

/// A route as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRecord {
    /// Path prefix starting with `/`, without a trailing `/` (except the root), e.g. `/devices`.
    pub prefix: String,
    /// The component: `builtin:NAME`, `component:NAME` (the active version of one of the
    /// tenant's deployed components), or a path to a `.wasm` component file on the server.
    pub component: String,
}

impl Store {
    /// Every route of `tenant`.
    pub fn routes(&self, tenant: &str) -> Result<Vec<RouteRecord>, StoreError> {
        let conn = self.lock();
        tenants::require(&conn, tenant)?;
        list(&conn, tenant)
    }

    /// Sets the component serving `route.prefix` for `tenant` (creating or replacing the route).
    pub fn put_route(&self, tenant: &str, route: RouteRecord) -> Result<RouteRecord, StoreError> {
        let route = RouteRecord { prefix: normalize_prefix(&route.prefix)?, component: route.component };
        if route.component.trim().is_empty() {
            return Err(StoreError::Invalid("route component: name a component, e.g. `builtin:devices-api`".into()));
        }
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            tx.execute(
                "INSERT INTO routes (tenant_id, prefix, component) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, prefix) DO UPDATE SET component = excluded.component",
                params![tenant, route.prefix, route.component],
            )?;
            Ok(route)
        })
    }

    /// Deletes the route of `tenant` with this prefix.
    pub fn delete_route(&self, tenant: &str, prefix: &str) -> Result<(), StoreError> {
        let prefix = normalize_prefix(prefix)?;
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            match tx.execute("DELETE FROM routes WHERE tenant_id = ?1 AND prefix = ?2", [tenant, &prefix])? {
                0 => Err(StoreError::NotFound(format!("tenant `{tenant}` has no route `{prefix}`"))),
                _ => Ok(()),
            }
        })
    }
}

pub(super) fn list(conn: &Connection, tenant: &str) -> Result<Vec<RouteRecord>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT prefix, component FROM routes WHERE tenant_id = ?1 ORDER BY prefix")?;
    let routes =
        statement.query_map([tenant], |row| Ok(RouteRecord { prefix: row.get(0)?, component: row.get(1)? }))?;
    Ok(routes.collect::<Result<_, _>>()?)
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

//! Tenant components: every deployed version of each, by content hash, and which one is
//! active. A route names a tenant component as `component:NAME`; it serves the active version.

use serde::Serialize;

use super::{Store, StoreError, check_identifier, now, tenants};
use crate::db::{Conn, Row, params};

/// One deployed version of a tenant component, as listed (without its bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentVersion {
    /// The component's name, e.g. `hmac-auth`.
    pub name: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// SHA-256 of the component's bytes, in hex: the version's identity.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was deployed (RFC 3339).
    pub created_at: String,
    /// Who deployed it (the id of the admin token, or `watch:PATH`).
    pub created_by: String,
    /// Whether this is the version routes serve.
    pub active: bool,
}

/// A stored version, as the gateway needs to know it: a route to `component:NAME` serves
/// the active version of `NAME`; compiled inactive versions are kept for a quick rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRef {
    /// The component's name.
    pub name: String,
    /// The version's hash.
    pub sha256: String,
    /// Whether it is the active version.
    pub active: bool,
}

impl Store {
    /// Records a version of `tenant`'s component `name` (nothing changes if that version is
    /// already there) and returns it. It is not active until [`Store::activate_component`].
    pub fn add_component_version(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        bytes: &[u8],
        created_by: &str,
    ) -> Result<ComponentVersion, StoreError> {
        check_identifier("component", name)?;
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            tx.execute(
                "INSERT INTO component_versions (tenant_id, name, sha256, size, bytes, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![tenant, name, sha256, bytes.len() as i64, bytes, now(), created_by],
            )?;
            version(tx, tenant, name, sha256)
        })
    }

    /// Makes `sha256` the active version of `tenant`'s component `name` (a deploy, or a
    /// rollback to an earlier version).
    pub fn activate_component(&self, tenant: &str, name: &str, sha256: &str) -> Result<ComponentVersion, StoreError> {
        self.transaction(|tx| {
            version(tx, tenant, name, sha256)?;
            tx.execute(
                "UPDATE component_versions SET active = 0 WHERE tenant_id = ?1 AND name = ?2 AND active = 1",
                params![tenant, name],
            )?;
            tx.execute(
                "UPDATE component_versions SET active = 1 WHERE tenant_id = ?1 AND name = ?2 AND sha256 = ?3",
                params![tenant, name, sha256],
            )?;
            version(tx, tenant, name, sha256)
        })
    }

    /// Every version of every component of `tenant`, newest first within each name.
    pub fn component_versions(&self, tenant: &str) -> Result<Vec<ComponentVersion>, StoreError> {
        self.read(|conn| {
            tenants::require(conn, tenant)?;
            conn.query(
                "SELECT name, tenant_id, sha256, size, created_at, created_by, active FROM component_versions
                 WHERE tenant_id = ?1 ORDER BY name, created_at DESC, sha256",
                params![tenant],
                read,
            )
        })
    }

    /// Deletes an inactive version; the active one cannot be deleted.
    pub fn delete_component_version(&self, tenant: &str, name: &str, sha256: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            if version(tx, tenant, name, sha256)?.active {
                return Err(StoreError::Conflict(format!(
                    "version {sha256} of component `{name}` is active: activate another version first"
                )));
            }
            tx.execute(
                "DELETE FROM component_versions WHERE tenant_id = ?1 AND name = ?2 AND sha256 = ?3",
                params![tenant, name, sha256],
            )?;
            Ok(())
        })
    }

    /// The bytes of a version.
    pub fn component_bytes(&self, tenant: &str, name: &str, sha256: &str) -> Result<Vec<u8>, StoreError> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT bytes FROM component_versions WHERE tenant_id = ?1 AND name = ?2 AND sha256 = ?3",
                params![tenant, name, sha256],
                |row| row.get(0),
            )
        })?
        .ok_or_else(|| not_found(tenant, name, sha256))
    }
}

/// Every version of every component of `tenant`, without the bytes.
pub(super) fn refs(conn: &Conn<'_>, tenant: &str) -> Result<Vec<VersionRef>, StoreError> {
    conn.query(
        "SELECT name, sha256, active FROM component_versions WHERE tenant_id = ?1 ORDER BY name",
        params![tenant],
        |row| Ok(VersionRef { name: row.get(0)?, sha256: row.get(1)?, active: row.get(2)? }),
    )
}

fn version(conn: &Conn<'_>, tenant: &str, name: &str, sha256: &str) -> Result<ComponentVersion, StoreError> {
    tenants::require(conn, tenant)?;
    conn.query_opt(
        "SELECT name, tenant_id, sha256, size, created_at, created_by, active FROM component_versions
         WHERE tenant_id = ?1 AND name = ?2 AND sha256 = ?3",
        params![tenant, name, sha256],
        read,
    )?
    .ok_or_else(|| not_found(tenant, name, sha256))
}

fn read(row: &Row<'_>) -> Result<ComponentVersion, StoreError> {
    Ok(ComponentVersion {
        name: row.get(0)?,
        tenant: row.get(1)?,
        sha256: row.get(2)?,
        size: row.get::<i64>(3)? as u64,
        created_at: row.get(4)?,
        created_by: row.get(5)?,
        active: row.get(6)?,
    })
}

fn not_found(tenant: &str, name: &str, sha256: &str) -> StoreError {
    StoreError::NotFound(format!("tenant `{tenant}` has no version {sha256} of component `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};

    on_both! {
    fn a_version_is_stored_inactive_until_activated_and_one_version_is_active(store) {
        let store = acme(store);
        let first = store.add_component_version("acme", "hello", "aa11", b"first", "token-1").unwrap();
        assert_eq!((first.size, first.active, first.created_by.as_str()), (5, false, "token-1"));
        assert_eq!(
            store.add_component_version("acme", "hello", "aa11", b"first", "token-2").unwrap(),
            first,
            "stored once"
        );
        store.add_component_version("acme", "hello", "bb22", b"second!", "token-1").unwrap();
        assert!(store.activate_component("acme", "hello", "aa11").unwrap().active);
        assert!(store.activate_component("acme", "hello", "bb22").unwrap().active);
        let active: Vec<(String, bool)> =
            store.component_versions("acme").unwrap().into_iter().map(|v| (v.sha256, v.active)).collect();
        assert_eq!(active.iter().filter(|(_, active)| *active).count(), 1);
        assert!(active.contains(&("bb22".to_string(), true)) && active.contains(&("aa11".to_string(), false)));
        assert_eq!(store.component_bytes("acme", "hello", "aa11").unwrap(), b"first");
    }

    fn the_active_version_cannot_be_deleted_and_others_can(store) {
        let store = acme(store);
        store.add_component_version("acme", "hello", "aa11", b"first", "t").unwrap();
        store.add_component_version("acme", "hello", "bb22", b"second", "t").unwrap();
        store.activate_component("acme", "hello", "bb22").unwrap();
        assert!(matches!(store.delete_component_version("acme", "hello", "bb22"), Err(StoreError::Conflict(_))));
        store.delete_component_version("acme", "hello", "aa11").unwrap();
        let left: Vec<String> = store.component_versions("acme").unwrap().into_iter().map(|v| v.sha256).collect();
        assert_eq!(left, ["bb22"]);
        assert!(matches!(store.component_bytes("acme", "hello", "aa11"), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delete_component_version("acme", "hello", "aa11"), Err(StoreError::NotFound(_))));
    }

    fn unknown_versions_tenants_and_bad_names_are_refused(store) {
        let store = acme(store);
        assert!(matches!(store.activate_component("acme", "hello", "aa11"), Err(StoreError::NotFound(_))));
        assert!(matches!(
            store.add_component_version("globex", "hello", "aa11", b"x", "t"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(store.component_versions("globex"), Err(StoreError::NotFound(_))));
        assert!(matches!(
            store.add_component_version("acme", "hel lo", "aa11", b"x", "t"),
            Err(StoreError::Invalid(_))
        ));
        store.add_component_version("acme", "hello", "aa11", b"x", "t").unwrap();
        assert!(
            matches!(store.activate_component("acme", "other", "aa11"), Err(StoreError::NotFound(_))),
            "another name"
        );
    }
    }
}

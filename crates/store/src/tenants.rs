//! Tenants and their host names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, check_identifier, conflict_on_unique, from_json, now, to_json};
use crate::db::{Conn, Param, Row, params};
use crate::devices::{self, DeviceRecord};
use crate::limits::LimitOverrides;

/// A tenant as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantRecord {
    /// Stable identifier, e.g. `acme`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Host names (lower case, no port) whose requests go to this tenant.
    pub hosts: Vec<String>,
    /// The tenant's own limits; unset ones fall back to the server's.
    pub limits: LimitOverrides,
    /// Host names the tenant's components may call with outbound HTTP.
    pub outbound_hosts: Vec<String>,
    /// Of those, the hosts allowed to resolve to loopback, private or link-local addresses.
    pub outbound_private_hosts: Vec<String>,
    /// Key/value settings components read through the `config` interface.
    pub settings: BTreeMap<String, String>,
    /// When the tenant was created (RFC 3339).
    pub created_at: String,
}

/// A tenant to create.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// See [`TenantRecord::id`].
    pub id: String,
    /// See [`TenantRecord::name`]; defaults to the id.
    #[serde(default, deserialize_with = "crate::present")]
    pub name: Option<String>,
    /// See [`TenantRecord::hosts`].
    #[serde(default)]
    pub hosts: Vec<String>,
    /// See [`TenantRecord::limits`].
    #[serde(default)]
    pub limits: LimitOverrides,
    /// See [`TenantRecord::outbound_hosts`].
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    /// See [`TenantRecord::outbound_private_hosts`].
    #[serde(default)]
    pub outbound_private_hosts: Vec<String>,
    /// See [`TenantRecord::settings`].
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// Changes to a tenant: each field given replaces the stored one; one left out is kept, and
/// `null` is refused (it would read as "remove", which no field can be).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name.
    #[serde(default, deserialize_with = "crate::present")]
    pub name: Option<String>,
    /// New host names.
    #[serde(default, deserialize_with = "crate::present")]
    pub hosts: Option<Vec<String>>,
    /// New limits.
    #[serde(default, deserialize_with = "crate::present")]
    pub limits: Option<LimitOverrides>,
    /// New outbound allow-list.
    #[serde(default, deserialize_with = "crate::present")]
    pub outbound_hosts: Option<Vec<String>>,
    /// New list of outbound hosts that may resolve to internal addresses.
    #[serde(default, deserialize_with = "crate::present")]
    pub outbound_private_hosts: Option<Vec<String>>,
    /// New settings.
    #[serde(default, deserialize_with = "crate::present")]
    pub settings: Option<BTreeMap<String, String>>,
}

impl Store {
    /// Creates a tenant.
    pub fn create_tenant(&self, new: NewTenant) -> Result<TenantRecord, StoreError> {
        check_identifier("tenant", &new.id)?;
        check_limits(&new.limits)?;
        let hosts = normalize_hosts(&new.hosts)?;
        let id = new.id.clone();
        self.transaction(|tx| {
            refuse_case_twin(
                tx,
                "SELECT id FROM tenants WHERE lower(id) = lower(?1) AND id <> ?1",
                params![id],
                "tenant",
            )?;
            tx.execute(
                "INSERT INTO tenants (id, name, limits, outbound_hosts, outbound_private_hosts, settings, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    new.id,
                    new.name.unwrap_or_else(|| new.id.clone()),
                    to_json(&new.limits),
                    to_json(&new.outbound_hosts),
                    to_json(&new.outbound_private_hosts),
                    to_json(&new.settings),
                    now()
                ],
            )
            .map_err(|e| conflict_on_unique(e, || format!("tenant `{id}` already exists")))?;
            set_hosts(tx, &id, &hosts)?;
            get(tx, &id)
        })
    }

    /// The tenant `id`.
    pub fn tenant(&self, id: &str) -> Result<TenantRecord, StoreError> {
        self.read(|conn| get(conn, id))
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.read(list)
    }

    /// Applies `patch` to the tenant `id`.
    pub fn update_tenant(&self, id: &str, patch: TenantPatch) -> Result<TenantRecord, StoreError> {
        if let Some(limits) = &patch.limits {
            check_limits(limits)?;
        }
        let hosts = patch.hosts.as_deref().map(normalize_hosts).transpose()?;
        self.transaction(|tx| {
            let mut tenant = get(tx, id)?;
            tenant.name = patch.name.unwrap_or(tenant.name);
            tenant.limits = patch.limits.unwrap_or(tenant.limits);
            tenant.outbound_hosts = patch.outbound_hosts.unwrap_or(tenant.outbound_hosts);
            tenant.outbound_private_hosts = patch.outbound_private_hosts.unwrap_or(tenant.outbound_private_hosts);
            tenant.settings = patch.settings.unwrap_or(tenant.settings);
            tx.execute(
                "UPDATE tenants SET name = ?2, limits = ?3, outbound_hosts = ?4, outbound_private_hosts = ?5, settings = ?6
                 WHERE id = ?1",
                params![
                    id,
                    tenant.name,
                    to_json(&tenant.limits),
                    to_json(&tenant.outbound_hosts),
                    to_json(&tenant.outbound_private_hosts),
                    to_json(&tenant.settings)
                ],
            )?;
            if let Some(hosts) = &hosts {
                tx.execute("DELETE FROM tenant_hosts WHERE tenant_id = ?1", params![id])?;
                set_hosts(tx, id, hosts)?;
            }
            get(tx, id)
        })
    }

    /// Deletes the tenant `id` with its users, tokens, devices, routes and components;
    /// returns the devices it had when it was deleted (their sessions are to go too).
    pub fn delete_tenant(&self, id: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        self.transaction(|tx| {
            require(tx, id)?;
            let devices = devices::list(tx, id)?;
            // Its links go with it (a tenant made again under its id starts without them).
            self.links.forget(id);
            tx.execute("DELETE FROM tenants WHERE id = ?1", params![id])?;
            Ok(devices)
        })
    }
}

pub(super) fn get(conn: &Conn<'_>, id: &str) -> Result<TenantRecord, StoreError> {
    conn.query_opt(
        "SELECT id, name, limits, outbound_hosts, outbound_private_hosts, settings, created_at FROM tenants WHERE id = ?1",
        params![id],
        read,
    )?
    .ok_or_else(|| not_found(id))
    .and_then(|tenant| with_hosts(conn, tenant))
}

pub(super) fn list(conn: &Conn<'_>) -> Result<Vec<TenantRecord>, StoreError> {
    let tenants = conn.query(
        "SELECT id, name, limits, outbound_hosts, outbound_private_hosts, settings, created_at FROM tenants ORDER BY id",
        &[],
        read,
    )?;
    tenants.into_iter().map(|tenant| with_hosts(conn, tenant)).collect()
}

/// [`StoreError::NotFound`] unless the tenant `id` exists.
pub(super) fn require(conn: &Conn<'_>, id: &str) -> Result<(), StoreError> {
    let exists: bool = conn.query_value("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)", params![id])?;
    if exists { Ok(()) } else { Err(not_found(id)) }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("tenant `{id}` does not exist"))
}

fn read(row: &Row<'_>) -> Result<TenantRecord, StoreError> {
    Ok(TenantRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        hosts: Vec::new(),
        limits: from_json(&row.get::<String>(2)?)?,
        outbound_hosts: from_json(&row.get::<String>(3)?)?,
        outbound_private_hosts: from_json(&row.get::<String>(4)?)?,
        settings: from_json(&row.get::<String>(5)?)?,
        created_at: row.get(6)?,
    })
}

fn with_hosts(conn: &Conn<'_>, mut tenant: TenantRecord) -> Result<TenantRecord, StoreError> {
    let hosts = "SELECT host FROM tenant_hosts WHERE tenant_id = ?1 ORDER BY host";
    tenant.hosts = conn.query(hosts, params![tenant.id], |row| row.get(0))?;
    Ok(tenant)
}

fn set_hosts(conn: &Conn<'_>, tenant: &str, hosts: &[String]) -> Result<(), StoreError> {
    for host in hosts {
        conn.execute("INSERT INTO tenant_hosts (host, tenant_id) VALUES (?1, ?2)", params![host, tenant])
            .map_err(|e| conflict_on_unique(e, || format!("host `{host}` already belongs to a tenant")))?;
    }
    Ok(())
}

/// Host names in lower case, checked: letters, digits, `-` and `.`, no port.
fn normalize_hosts(hosts: &[String]) -> Result<Vec<String>, StoreError> {
    let mut normalized: Vec<String> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let host = host.to_ascii_lowercase();
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !valid {
            return Err(StoreError::Invalid(format!(
                "host `{host}`: give a host name without scheme or port, e.g. `acme.example.com`"
            )));
        }
        if !normalized.contains(&host) {
            normalized.push(host);
        }
    }
    Ok(normalized)
}

fn check_limits(limits: &LimitOverrides) -> Result<(), StoreError> {
    limits.check().map_err(|problem| StoreError::Invalid(format!("limits.{problem}")))
}

/// Refuses an id that differs from an existing one (found by `query` with `params`) only in
/// case: ids name directories, and on a case-insensitive file system (macOS, Windows, SMB)
/// `Acme` and `acme` would share one device store — two tenants on one WhatsApp account.
pub(super) fn refuse_case_twin(
    tx: &Conn<'_>,
    query: &str,
    params: &[&dyn Param],
    what: &str,
) -> Result<(), StoreError> {
    let twin: Option<String> = tx.query_opt(query, params, |row| row.get(0))?;
    match twin {
        Some(twin) => Err(StoreError::Conflict(format!(
            "{what} `{twin}` already exists: ids that differ only in case would share files; choose another id"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};

    fn tenant(id: &str, hosts: &[&str]) -> NewTenant {
        NewTenant { id: id.into(), hosts: hosts.iter().map(|h| h.to_string()).collect(), ..Default::default() }
    }

    on_both! {
    fn a_tenant_reads_back_as_created_with_its_hosts_in_lower_case(store) {
        let settings = BTreeMap::from([("greeting".to_string(), "hi".to_string())]);
        let created = store
            .create_tenant(NewTenant {
                limits: LimitOverrides { memory_mib: Some(32), ..Default::default() },
                outbound_hosts: vec!["api.example.com".into()],
                settings: settings.clone(),
                ..tenant("acme", &["Acme.Example.com", "acme.example.com", "api.acme.test"])
            })
            .unwrap();
        assert_eq!(created.name, "acme", "the name defaults to the id");
        assert_eq!(created.hosts, ["acme.example.com", "api.acme.test"]);
        assert_eq!(created.limits.memory_mib, Some(32));
        assert_eq!(created.outbound_hosts, ["api.example.com"]);
        assert_eq!(created.settings, settings);
        assert_eq!(store.tenant("acme").unwrap(), created);
        store.create_tenant(tenant("globex", &[])).unwrap();
        let ids: Vec<String> = store.tenants().unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["acme", "globex"]);
    }

    fn a_patch_changes_only_what_it_gives(store) {
        let created = store.create_tenant(tenant("acme", &["acme.example.com"])).unwrap();
        let renamed = store.update_tenant("acme", TenantPatch { name: Some("Acme".into()), ..Default::default() });
        let renamed = renamed.unwrap();
        assert_eq!(renamed, TenantRecord { name: "Acme".into(), ..created });
        let moved = store
            .update_tenant("acme", TenantPatch { hosts: Some(vec!["NEW.example.com".into()]), ..Default::default() });
        assert_eq!(moved.unwrap().hosts, ["new.example.com"]);
        // The old host is free again.
        store.create_tenant(tenant("globex", &["acme.example.com"])).unwrap();
        assert_eq!(store.tenant("acme").unwrap().name, "Acme");
    }

    fn a_duplicate_id_or_host_is_a_conflict_and_changes_nothing(store) {
        let store = acme(store);
        store
            .update_tenant("acme", TenantPatch { hosts: Some(vec!["acme.example.com".into()]), ..Default::default() })
            .unwrap();
        assert!(matches!(store.create_tenant(tenant("acme", &[])), Err(StoreError::Conflict(_))));
        assert!(matches!(store.create_tenant(tenant("ACME", &[])), Err(StoreError::Conflict(_))), "a case twin");
        let taken = store.create_tenant(tenant("globex", &["Acme.example.com"]));
        assert!(matches!(taken, Err(StoreError::Conflict(ref m)) if m.contains("acme.example.com")), "{taken:?}");
        assert!(matches!(store.tenant("globex"), Err(StoreError::NotFound(_))), "the failed create left nothing");
        store.create_tenant(tenant("globex", &[])).unwrap();
        let taken = store.update_tenant(
            "globex",
            TenantPatch { hosts: Some(vec!["acme.example.com".into()]), ..Default::default() },
        );
        assert!(matches!(taken, Err(StoreError::Conflict(_))));
        assert_eq!(store.tenant("acme").unwrap().hosts, ["acme.example.com"], "the host stays with its tenant");
    }

    fn what_is_not_there_is_not_found(store) {
        let store = acme(store);
        assert!(matches!(store.tenant("globex"), Err(StoreError::NotFound(_))));
        assert!(matches!(store.update_tenant("globex", TenantPatch::default()), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delete_tenant("globex"), Err(StoreError::NotFound(_))));
        store.create_device("acme", "main").unwrap();
        let deleted = store.delete_tenant("acme").unwrap();
        assert_eq!(deleted.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["main"], "its devices, to stop");
        assert!(matches!(store.tenant("acme"), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delete_tenant("acme"), Err(StoreError::NotFound(_))), "deleted once");
    }

    fn invalid_input_is_refused_with_what_to_change(store) {
        assert!(matches!(store.create_tenant(tenant("a b", &[])), Err(StoreError::Invalid(_))));
        assert!(matches!(store.create_tenant(tenant("acme", &["acme.example.com:8080"])), Err(StoreError::Invalid(_))));
        let out_of_range = LimitOverrides { memory_mib: Some(0), ..Default::default() };
        let refused = store.create_tenant(NewTenant { limits: out_of_range.clone(), ..tenant("acme", &[]) });
        assert!(
            matches!(refused, Err(StoreError::Invalid(ref m)) if m.starts_with("limits.memory_mib")),
            "{refused:?}"
        );
        assert!(store.tenants().unwrap().is_empty());
        store.create_tenant(tenant("acme", &[])).unwrap();
        let refused = store.update_tenant("acme", TenantPatch { limits: Some(out_of_range), ..Default::default() });
        assert!(matches!(refused, Err(StoreError::Invalid(_))));
        assert_eq!(store.tenant("acme").unwrap().limits, LimitOverrides::default());
    }

    fn deleting_a_tenant_deletes_what_belongs_to_it(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let user = store.create_user("acme", crate::users::NewUser::default()).unwrap();
        store.delete_tenant("acme").unwrap();
        store.create_tenant(tenant("acme", &[])).unwrap();
        assert!(store.devices("acme").unwrap().is_empty());
        assert!(matches!(store.user("acme", &user.id), Err(StoreError::NotFound(_))));
    }
    }
}

//! Tenants and their host names.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, check_identifier, conflict_on_unique, from_json, now, to_json};
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
    #[serde(default)]
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

/// Changes to a tenant: each field given replaces the stored one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name.
    pub name: Option<String>,
    /// New host names.
    pub hosts: Option<Vec<String>>,
    /// New limits.
    pub limits: Option<LimitOverrides>,
    /// New outbound allow-list.
    pub outbound_hosts: Option<Vec<String>>,
    /// New list of outbound hosts that may resolve to internal addresses.
    pub outbound_private_hosts: Option<Vec<String>>,
    /// New settings.
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
            refuse_case_twin(tx, "SELECT id FROM tenants WHERE id = ?1 COLLATE NOCASE AND id <> ?1", &[&id], "tenant")?;
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
        get(&self.lock(), id)
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        list(&self.lock())
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
                tx.execute("DELETE FROM tenant_hosts WHERE tenant_id = ?1", [id])?;
                set_hosts(tx, id, hosts)?;
            }
            get(tx, id)
        })
    }

    /// Deletes the tenant `id` with its users, tokens, devices, routes and components.
    pub fn delete_tenant(&self, id: &str) -> Result<(), StoreError> {
        match self.lock().execute("DELETE FROM tenants WHERE id = ?1", [id])? {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<TenantRecord, StoreError> {
    conn.query_row(
        "SELECT id, name, limits, outbound_hosts, outbound_private_hosts, settings, created_at FROM tenants WHERE id = ?1",
        [id],
        read,
    )
    .optional()?
    .ok_or_else(|| not_found(id))
    .and_then(|tenant| with_hosts(conn, tenant))
}

pub(super) fn list(conn: &Connection) -> Result<Vec<TenantRecord>, StoreError> {
    let mut statement =
        conn.prepare("SELECT id, name, limits, outbound_hosts, outbound_private_hosts, settings, created_at FROM tenants ORDER BY id")?;
    let tenants = statement.query_map([], read)?.collect::<Result<Vec<_>, _>>()?;
    tenants.into_iter().map(|tenant| with_hosts(conn, tenant)).collect()
}

/// [`StoreError::NotFound`] unless the tenant `id` exists.
pub(super) fn require(conn: &Connection, id: &str) -> Result<(), StoreError> {
    let exists: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)", [id], |row| row.get(0))?;
    if exists { Ok(()) } else { Err(not_found(id)) }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("tenant `{id}` does not exist"))
}

fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRecord> {
    Ok(TenantRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        hosts: Vec::new(),
        limits: from_json(&row.get::<_, String>(2)?)?,
        outbound_hosts: from_json(&row.get::<_, String>(3)?)?,
        outbound_private_hosts: from_json(&row.get::<_, String>(4)?)?,
        settings: from_json(&row.get::<_, String>(5)?)?,
        created_at: row.get(6)?,
    })
}

fn with_hosts(conn: &Connection, mut tenant: TenantRecord) -> Result<TenantRecord, StoreError> {
    let mut statement = conn.prepare_cached("SELECT host FROM tenant_hosts WHERE tenant_id = ?1 ORDER BY host")?;
    tenant.hosts = statement.query_map([&tenant.id], |row| row.get(0))?.collect::<Result<_, _>>()?;
    Ok(tenant)
}

fn set_hosts(conn: &Connection, tenant: &str, hosts: &[String]) -> Result<(), StoreError> {
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
    tx: &rusqlite::Transaction,
    query: &str,
    params: &[&dyn rusqlite::ToSql],
    what: &str,
) -> Result<(), StoreError> {
    let twin: Option<String> = tx.query_row(query, params, |row| row.get(0)).optional()?;
    match twin {
        Some(twin) => Err(StoreError::Conflict(format!(
            "{what} `{twin}` already exists: ids that differ only in case would share files; choose another id"
        ))),
        None => Ok(()),
    }
}

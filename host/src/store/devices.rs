//! Devices of a tenant: the WhatsApp identity once linked and the last known state.
//!
//! The session itself (keys, prekeys, app state) lives in whatsapp-rust's own store per device
//! (the device layer's); this table is the directory of devices and what an operator
//! sees about each. Terminal states (logged out, replaced, banned) are recorded here so a
//! restart does not reconnect a device WhatsApp has dropped; sessions record them
//! (through the device layer's recorder) before anyone can see them, so a crash right after
//! cannot forget them.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use waedge_contract::types::{DeviceState, DeviceStatus};

use super::{Store, StoreError, check_identifier, conflict_on_unique, now, tenants};

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRecord {
    /// The device id used in API paths, e.g. `main`.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The last state recorded, as a WIT device-state name (`unlinked`, `connected`, …).
    pub state: String,
    /// The linked account's phone JID.
    pub jid: Option<String>,
    /// The linked account's LID.
    pub lid: Option<String>,
    /// The linked account's push name.
    pub push_name: Option<String>,
    /// When the device was created (RFC 3339).
    pub created_at: String,
    /// When its state last changed.
    pub updated_at: String,
}

impl Store {
    /// Creates an unlinked device `id` of `tenant`.
    pub fn create_device(&self, tenant: &str, id: &str) -> Result<DeviceRecord, StoreError> {
        check_identifier("device", id)?;
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            let twins = "SELECT id FROM devices WHERE tenant_id = ?1 AND id = ?2 COLLATE NOCASE AND id <> ?2";
            tenants::refuse_case_twin(tx, twins, &[&tenant, &id], "device")?;
            let at = now();
            tx.execute(
                "INSERT INTO devices (tenant_id, id, state, created_at, updated_at) VALUES (?1, ?2, 'unlinked', ?3, ?3)",
                params![tenant, id, at],
            )
            .map_err(|e| conflict_on_unique(e, || format!("tenant `{tenant}` already has a device `{id}`")))?;
            get(tx, tenant, id)
        })
    }

    /// The device `id` of `tenant`.
    pub fn device(&self, tenant: &str, id: &str) -> Result<DeviceRecord, StoreError> {
        get(&self.lock(), tenant, id)
    }

    /// Every device of `tenant`.
    pub fn devices(&self, tenant: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        let conn = self.lock();
        tenants::require(&conn, tenant)?;
        list(&conn, tenant)
    }

    /// Records devices' states and identities as their sessions report them, in one
    /// transaction, in order (a later status of a device wins). A device deleted meanwhile is
    /// left deleted.
    pub fn record_device_statuses(&self, changes: &[(String, DeviceStatus)]) -> Result<(), StoreError> {
        self.transaction(|tx| {
            let mut update = tx.prepare_cached(
                "UPDATE devices SET state = ?3, jid = ?4, lid = ?5, push_name = ?6, updated_at = ?7
                 WHERE tenant_id = ?1 AND id = ?2",
            )?;
            for (tenant, status) in changes {
                let state = status.state.name();
                update.execute(params![tenant, status.id, state, status.jid, status.lid, status.push_name, now()])?;
            }
            Ok(())
        })
    }

    /// Deletes the device `id` of `tenant` and removes it from its users.
    pub fn delete_device(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            if tx.execute("DELETE FROM devices WHERE tenant_id = ?1 AND id = ?2", [tenant, id])? == 0 {
                return Err(device_not_found(tenant, id));
            }
            tx.execute(
                "UPDATE users SET devices = (SELECT json_group_array(value) FROM json_each(users.devices) WHERE value != ?2)
                 WHERE tenant_id = ?1",
                [tenant, id],
            )?;
            Ok(())
        })
    }
}

/// The state a device was last recorded in, parsed back; unknown names read as unlinked.
pub fn recorded_state(record: &DeviceRecord) -> DeviceState {
    record.state.parse().unwrap_or(DeviceState::Unlinked)
}

pub(super) fn list(conn: &Connection, tenant: &str) -> Result<Vec<DeviceRecord>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, tenant_id, state, jid, lid, push_name, created_at, updated_at FROM devices
         WHERE tenant_id = ?1 ORDER BY id",
    )?;
    Ok(statement.query_map([tenant], read)?.collect::<Result<_, _>>()?)
}

fn get(conn: &Connection, tenant: &str, id: &str) -> Result<DeviceRecord, StoreError> {
    tenants::require(conn, tenant)?;
    conn.query_row(
        "SELECT id, tenant_id, state, jid, lid, push_name, created_at, updated_at FROM devices
         WHERE tenant_id = ?1 AND id = ?2",
        [tenant, id],
        read,
    )
    .optional()?
    .ok_or_else(|| device_not_found(tenant, id))
}

fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        state: row.get(2)?,
        jid: row.get(3)?,
        lid: row.get(4)?,
        push_name: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

fn device_not_found(tenant: &str, id: &str) -> StoreError {
    StoreError::NotFound(format!("tenant `{tenant}` has no device `{id}`"))
}

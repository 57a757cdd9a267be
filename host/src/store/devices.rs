//! Devices of a tenant: the WhatsApp identity once linked and the last known state.
//!
//! The session itself (keys, prekeys, app state) lives in whatsapp-rust's own store per device
//! ([`crate::device::whatsapp`]); this table is the directory of devices and what an operator
//! sees about each. Terminal states (logged out, replaced, banned) are recorded here so a
//! restart does not reconnect a device WhatsApp has dropped; sessions record them
//! ([`StatusObserver::settled`]) before anyone can see them, so a crash right after cannot
//! forget them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::{Store, StoreError, check_identifier, conflict_on_unique, now, tenants};
use crate::bindings::types::{DeviceState, DeviceStatus};
use crate::device::StatusObserver;

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

    /// An observer for device sessions that records their status changes off the callers'
    /// threads. Changes that arrive while a write is under way are written together in the
    /// next transaction, so a thousand devices reconnecting at once cost a few commits, not
    /// thousands; what waits is the latest status of each device, so the backlog is bounded by
    /// the number of devices, and a failed write is retried, never dropped. Must be called
    /// inside a tokio runtime.
    pub fn status_recorder(&self) -> Arc<dyn StatusObserver> {
        let (recorded, watcher) = watch::channel(0);
        let queue = Arc::new(StatusQueue { pending: Mutex::new(Pending::default()), wake: Notify::new() });
        tokio::spawn(record_statuses(self.clone(), queue.clone(), recorded));
        Arc::new(StatusRecorder { queue, recorded: watcher })
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

/// How long the recorder waits before it retries a failed write.
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// [`Store::status_recorder`]: notes changes in a queue that a task writes; once it is
/// dropped, the task ends.
struct StatusRecorder {
    queue: Arc<StatusQueue>,
    /// How many of the changes noted (in order) are recorded.
    recorded: watch::Receiver<u64>,
}

/// The device statuses noted and not yet recorded.
struct StatusQueue {
    pending: Mutex<Pending>,
    /// Wakes the writer when a change is noted.
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    /// The latest unrecorded status of each device, by tenant and device id.
    latest: HashMap<(String, String), DeviceStatus>,
    /// How many changes were noted so far.
    noted: u64,
}

impl StatusQueue {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StatusRecorder {
    /// Notes a change; returns its number.
    fn note(&self, tenant: &str, status: &DeviceStatus) -> u64 {
        let noted = {
            let mut pending = self.queue.pending();
            pending.latest.insert((tenant.to_string(), status.id.clone()), status.clone());
            pending.noted += 1;
            pending.noted
        };
        self.queue.wake.notify_one();
        noted
    }

    /// Waits until the change numbered `noted` is recorded.
    async fn recorded(&self, noted: u64) -> anyhow::Result<()> {
        let mut recorded = self.recorded.clone();
        recorded.wait_for(|recorded| *recorded >= noted).await.map_err(|_| anyhow::anyhow!("the store is closed"))?;
        Ok(())
    }
}

#[async_trait]
impl StatusObserver for StatusRecorder {
    fn changed(&self, tenant: &str, status: &DeviceStatus) {
        self.note(tenant, status);
    }

    async fn settled(&self, tenant: &str, status: &DeviceStatus) -> anyhow::Result<()> {
        let noted = self.note(tenant, status);
        self.recorded(noted).await
    }

    async fn flushed(&self) -> anyhow::Result<()> {
        let noted = self.queue.pending().noted;
        self.recorded(noted).await
    }
}

/// Writes what gathers in `queue` until its recorder is dropped, telling `recorded` how far it
/// got.
async fn record_statuses(store: Store, queue: Arc<StatusQueue>, recorded: watch::Sender<u64>) {
    loop {
        let (latest, noted) = {
            let mut pending = queue.pending();
            (std::mem::take(&mut pending.latest), pending.noted)
        };
        if latest.is_empty() {
            tokio::select! {
                () = queue.wake.notified() => continue,
                () = recorded.closed() => return,
            }
        }
        let changes: Arc<Vec<(String, DeviceStatus)>> =
            Arc::new(latest.into_iter().map(|((tenant, _), status)| (tenant, status)).collect());
        let written = changes.clone();
        match store.run(move |store| store.record_device_statuses(&written)).await {
            Ok(()) => {
                recorded.send_replace(noted);
            }
            Err(e) => {
                tracing::error!("recording {} device status change(s) failed, retrying: {e}", changes.len());
                {
                    let mut pending = queue.pending();
                    for (tenant, status) in changes.iter() {
                        // A change noted meanwhile is newer: it wins.
                        pending.latest.entry((tenant.clone(), status.id.clone())).or_insert_with(|| status.clone());
                    }
                }
                tokio::time::sleep(RECORD_RETRY).await;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: DeviceState) -> DeviceStatus {
        DeviceStatus { id: "main".to_string(), state, jid: None, lid: None, push_name: None }
    }

    fn with_device(store: Store) -> Store {
        let tenant = serde_json::from_value(serde_json::json!({ "id": "acme" })).unwrap();
        store.create_tenant(tenant).unwrap();
        store.create_device("acme", "main").unwrap();
        store
    }

    #[tokio::test]
    async fn a_settled_status_is_recorded_when_settled_returns() {
        let store = with_device(Store::open_in_memory().unwrap());
        let recorder = store.status_recorder();
        recorder.changed("acme", &status(DeviceState::Connected));
        recorder.settled("acme", &status(DeviceState::LoggedOut)).await.unwrap();
        assert_eq!(store.device("acme", "main").unwrap().state, "logged-out");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_status_whose_write_failed_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waedge.db");
        let store = with_device(Store::open(&path).unwrap());
        let recorder = store.status_recorder();
        // Another process holds the write lock longer than the busy timeout: the write fails.
        let mut other = Connection::open(&path).unwrap();
        let holding = other.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        recorder.changed("acme", &status(DeviceState::Banned));
        tokio::time::sleep(Duration::from_secs(6)).await;
        holding.rollback().unwrap();
        tokio::time::timeout(Duration::from_secs(5), recorder.flushed()).await.expect("recorded in time").unwrap();
        assert_eq!(store.device("acme", "main").unwrap().state, "banned");
    }
}

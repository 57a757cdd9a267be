//! Device statuses recorded in the store as sessions report them.
//!
//! Sessions tell a [`StatusObserver`] every change; the one [`status_recorder`] makes writes
//! them to the store off the sessions' threads, and records a terminal state before the
//! session shows it (`settled`), so a crash right after cannot forget it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use waedge_contract::types::DeviceStatus;
use waedge_store::{StatusReport, Store};

use super::StatusObserver;
use super::mailbox::Appended;

/// An observer for device sessions that records their status changes off the callers'
/// threads. Changes that arrive while a write is under way are written together in the
/// next transaction, so a thousand devices reconnecting at once cost a few commits, not
/// thousands; what waits is the latest status of each device, so the backlog is bounded by
/// the number of devices, and a failed write is retried, never dropped. The `device.status`
/// events it records are told to `appended`. Must be called inside a tokio runtime.
pub fn status_recorder(store: &Store, appended: Appended) -> Arc<dyn StatusObserver> {
    let (recorded, watcher) = watch::channel(0);
    let queue = Arc::new(StatusQueue { pending: Mutex::new(Pending::default()), wake: Notify::new() });
    tokio::spawn(record_statuses(store.clone(), queue.clone(), recorded, appended));
    Arc::new(StatusRecorder { queue, recorded: watcher })
}

/// How long the recorder waits before it retries a failed write.
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// [`status_recorder`]: notes changes in a queue that a task writes; once it is
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
    latest: HashMap<(String, String), StatusReport>,
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
    fn note(&self, tenant: &str, status: &DeviceStatus, epoch: i64) -> u64 {
        let report = StatusReport { tenant: tenant.to_string(), status: status.clone(), epoch };
        let noted = {
            let mut pending = self.queue.pending();
            pending.latest.insert((tenant.to_string(), status.id.clone()), report);
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
    fn changed(&self, tenant: &str, status: &DeviceStatus, epoch: i64) {
        self.note(tenant, status, epoch);
    }

    async fn settled(&self, tenant: &str, status: &DeviceStatus, epoch: i64) -> anyhow::Result<()> {
        let noted = self.note(tenant, status, epoch);
        self.recorded(noted).await
    }

    async fn flushed(&self) -> anyhow::Result<()> {
        let noted = self.queue.pending().noted;
        self.recorded(noted).await
    }
}

/// Writes what gathers in `queue` until its recorder is dropped, telling `recorded` how far it
/// got.
async fn record_statuses(store: Store, queue: Arc<StatusQueue>, recorded: watch::Sender<u64>, appended: Appended) {
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
        let changes: Arc<Vec<StatusReport>> = Arc::new(latest.into_values().collect());
        let written = changes.clone();
        let writer = store.clone();
        match tokio::task::spawn_blocking(move || writer.record_device_statuses(&written))
            .await
            .expect("store task panicked")
        {
            Ok(events) => {
                appended.notify(&events);
                recorded.send_replace(noted);
            }
            Err(e) => {
                tracing::error!("recording {} device status change(s) failed, retrying: {e}", changes.len());
                {
                    let mut pending = queue.pending();
                    for report in changes.iter() {
                        // A change noted meanwhile is newer: it wins.
                        let key = (report.tenant.clone(), report.status.id.clone());
                        pending.latest.entry(key).or_insert_with(|| report.clone());
                    }
                }
                tokio::time::sleep(RECORD_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use waedge_contract::types::DeviceState;
    use waedge_store::tenants::NewTenant;

    fn status(state: DeviceState) -> DeviceStatus {
        DeviceStatus { id: "main".to_string(), state, jid: None, lid: None, push_name: None }
    }

    fn with_device(store: Store) -> Store {
        store.create_tenant(NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        store.create_device("acme", "main").unwrap();
        store
    }

    #[tokio::test]
    async fn a_settled_status_is_recorded_when_settled_returns() {
        let store = with_device(Store::open_in_memory().unwrap());
        let recorder = status_recorder(&store, Appended::default());
        recorder.changed("acme", &status(DeviceState::Connected), 0);
        recorder.settled("acme", &status(DeviceState::LoggedOut), 0).await.unwrap();
        assert_eq!(store.device("acme", "main").unwrap().state, "logged-out");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_status_whose_write_failed_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waedge.db");
        let store = with_device(Store::open(&path).unwrap());
        let recorder = status_recorder(&store, Appended::default());
        // Another process holds the write lock longer than the busy timeout: the write fails.
        let mut other = Connection::open(&path).unwrap();
        let holding = other.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        recorder.changed("acme", &status(DeviceState::Banned), 0);
        tokio::time::sleep(Duration::from_secs(6)).await;
        holding.rollback().unwrap();
        tokio::time::timeout(Duration::from_secs(5), recorder.flushed()).await.expect("recorded in time").unwrap();
        assert_eq!(store.device("acme", "main").unwrap().state, "banned");
    }
}

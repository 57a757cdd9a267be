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
use waedge_store::{LeaseEpoch, StatusReport, Store};

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

impl Pending {
    /// Keeps `report`, the device's latest, unless what waits of the device was reported
    /// under a later lease (the store would leave `report` out).
    fn note(&mut self, report: StatusReport) {
        self.keep(report, |waiting, report| waiting <= report);
    }

    /// Puts back `report`, whose write failed, unless a report of the device under the same or
    /// a later lease was noted since (it is newer).
    fn put_back(&mut self, report: StatusReport) {
        self.keep(report, |waiting, report| waiting < report);
    }

    /// Keeps `report` where nothing of its device waits, or where `replaces` says so of the
    /// leases of what waits and of `report`.
    fn keep(&mut self, report: StatusReport, replaces: impl FnOnce(LeaseEpoch, LeaseEpoch) -> bool) {
        let key = (report.tenant.clone(), report.status.id.clone());
        match self.latest.get_mut(&key) {
            Some(waiting) if replaces(waiting.under, report.under) => *waiting = report,
            Some(_) => {}
            None => {
                self.latest.insert(key, report);
            }
        }
    }
}

impl StatusRecorder {
    /// Notes a change; returns its number.
    fn note(&self, tenant: &str, status: &DeviceStatus, under: LeaseEpoch) -> u64 {
        let report = StatusReport { tenant: tenant.to_string(), status: status.clone(), under };
        let noted = {
            let mut pending = self.queue.pending();
            pending.note(report);
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
    fn changed(&self, tenant: &str, status: &DeviceStatus, under: LeaseEpoch) {
        self.note(tenant, status, under);
    }

    async fn settled(&self, tenant: &str, status: &DeviceStatus, under: LeaseEpoch) -> anyhow::Result<()> {
        let noted = self.note(tenant, status, under);
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
        let reports: Arc<Vec<StatusReport>> = Arc::new(latest.into_values().collect());
        let written = reports.clone();
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
                tracing::error!("recording {} device status change(s) failed, retrying: {e}", reports.len());
                {
                    let mut pending = queue.pending();
                    reports.iter().for_each(|report| pending.put_back(report.clone()));
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

    #[test]
    fn what_waits_of_a_device_is_its_latest_report_under_its_latest_lease() {
        let report = |state, epoch| StatusReport {
            tenant: "acme".into(),
            status: status(state),
            under: LeaseEpoch { lease: 1, epoch },
        };
        let waiting = |pending: &Pending| {
            let report = &pending.latest[&("acme".to_string(), "main".to_string())];
            (report.status.state, report.under.epoch)
        };
        let mut pending = Pending::default();
        pending.note(report(DeviceState::Connecting, 2));
        pending.note(report(DeviceState::Connected, 2));
        assert_eq!(waiting(&pending), (DeviceState::Connected, 2), "the later report");
        pending.note(report(DeviceState::Disconnected, 1));
        assert_eq!(waiting(&pending), (DeviceState::Connected, 2), "not one under an earlier lease");
        pending.put_back(report(DeviceState::Connecting, 2));
        assert_eq!(waiting(&pending), (DeviceState::Connected, 2), "a failed write is older than what waits");
        pending.put_back(report(DeviceState::LoggedOut, 3));
        assert_eq!(waiting(&pending), (DeviceState::LoggedOut, 3), "unless it is under a later lease");
    }

    #[tokio::test]
    async fn a_settled_status_is_recorded_when_settled_returns() {
        let store = with_device(Store::open_in_memory().unwrap());
        let recorder = status_recorder(&store, Appended::default());
        recorder.changed("acme", &status(DeviceState::Connected), LeaseEpoch::default());
        recorder.settled("acme", &status(DeviceState::LoggedOut), LeaseEpoch::default()).await.unwrap();
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
        recorder.changed("acme", &status(DeviceState::Banned), LeaseEpoch::default());
        tokio::time::sleep(Duration::from_secs(6)).await;
        holding.rollback().unwrap();
        tokio::time::timeout(Duration::from_secs(5), recorder.flushed()).await.expect("recorded in time").unwrap();
        assert_eq!(store.device("acme", "main").unwrap().state, "banned");
    }
}

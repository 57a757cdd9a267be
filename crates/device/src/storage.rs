//! Where device sessions keep whatsapp-rust's state.
//!
//! On one machine, each device has a SQLite file of its own ([`Storage::Files`]). Nodes that
//! share a PostgreSQL database ([`Storage::Shared`]) keep it there instead, and a device's
//! state opens only on the node holding the device's lease: every write carries the lease's
//! epoch, and once another node has taken the device over, the former owner's writes are
//! refused and its client stops (see `waedge_device_pg`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use diesel::SqliteConnection;
use diesel::connection::{CacheSize, Connection};
use tokio::sync::watch;
pub use waedge_device_pg::{Database, Holding};
use waedge_device_pg::{DeviceState, Lease, Leases, SqliteState};
use waedge_store::LeaseEpoch;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::store::{SqliteStore, SqliteStoreConfig, Synchronous};

/// Where the device sessions of a process keep whatsapp-rust's state.
#[derive(Clone)]
pub(crate) enum Storage {
    /// A SQLite file per device: `DIR/TENANT/DEVICE.db`.
    Files(PathBuf),
    /// PostgreSQL, shared with other nodes, each device under its lease.
    Shared(Arc<Shared>),
}

/// The PostgreSQL database nodes share, and this node's leases on it.
pub struct Shared {
    db: Arc<Database>,
    leases: Leases,
}

impl Shared {
    /// The device state in `db`, under the leases `leases` holds.
    pub fn new(db: Arc<Database>, leases: Leases) -> Shared {
        Shared { db, leases }
    }

    /// Connects `connections` times to the PostgreSQL database at `url` (bringing the device
    /// state's schema up to date) for the node `node`, whose leases last `lease` unless
    /// renewed.
    pub async fn connect(url: &str, connections: usize, node: &str, lease: Duration) -> anyhow::Result<Shared> {
        let db = Arc::new(Database::connect(url, connections).await?);
        Ok(Shared::new(db.clone(), Leases::new(db, node, lease)))
    }

    /// The name this node process holds its leases under (see [`Leases::holder`]).
    pub fn holder(&self) -> &str {
        self.leases.holder()
    }

    /// Every device's lease as the database has it now, by tenant and device.
    pub async fn holdings(&self) -> anyhow::Result<Vec<Holding>> {
        Ok(self.leases.holdings().await?)
    }

    /// This node's leases.
    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }
}

/// Moves `tenant`'s `device`'s state from the file a gateway on one machine keeps it in,
/// under `data_dir`, into the device state in `db` — in one transaction, replacing what an
/// earlier move wrote but never the state of a device a node has run — so that the node that
/// takes the device runs it on the session it had, without linking it again. Returns the
/// rows it moved, or `None` when there was nothing to move (no file, or the device was never
/// linked). whatsapp-rust brings the file's schema up to date, as starting the device would;
/// its data is left as it was.
pub async fn move_from_file(db: &Database, data_dir: &Path, tenant: &str, device: &str) -> anyhow::Result<Option<u64>> {
    let Some(state) = SqliteState::read(&file_in(data_dir, tenant, device)).await? else {
        return Ok(None);
    };
    db.import(tenant, device, &state).await?;
    Ok(Some(state.rows()))
}

/// The file of `tenant`'s `device` under `data_dir`, on a gateway on one machine.
pub fn file_in(data_dir: &Path, tenant: &str, device: &str) -> PathBuf {
    file_of(&files_in(data_dir), tenant, device)
}

/// Where the device files of a gateway on one machine are: `DATA_DIR/devices`.
pub(crate) fn files_in(data_dir: &Path) -> PathBuf {
    data_dir.join("devices")
}

/// The page cache of each device store's connection, in KiB. A device store is a few hundred
/// KiB that a connected, idle session hardly reads; the library's 512 KiB default let each
/// session keep its whole database in the heap (a thousand sessions, a few hundred MB). Pages
/// past the cache are read from the kernel's page cache, shared and reclaimable.
const STORE_CACHE_KIB: u32 = 32;

/// How a device store is opened: `synchronous = FULL`, as `waedge.db` — a committed Signal
/// session, prekey or app-state change survives a power cut, like everything else the gateway
/// acknowledged (the library's default, NORMAL, may lose the last transactions) — with a page
/// cache of [`STORE_CACHE_KIB`] and no prepared statements kept (see [`keep_no_statements`]).
fn store_config() -> SqliteStoreConfig {
    SqliteStoreConfig {
        synchronous: Synchronous::Full,
        cache_size_kib: STORE_CACHE_KIB,
        ..SqliteStoreConfig::default()
    }
    .with_connection_init(keep_no_statements)
}

/// Makes a device store's connection finalise each statement once it has run. diesel keeps
/// every statement it can reuse for as long as the connection lives, and a gateway holds a
/// connection per device: about 80 KB of each connected session's memory, for queries an idle
/// session hardly runs again. Preparing a statement again made no difference measured in the
/// CPU of a store call (`BENCHMARKS.md`).
fn keep_no_statements(connection: &mut SqliteConnection) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    connection.set_prepared_statement_cache_size(CacheSize::Disabled);
    Ok(())
}

/// One device's state: its file, or its rows and the lease it holds them under.
pub(crate) enum DeviceStorage {
    File(PathBuf),
    Shared { shared: Arc<Shared>, lease: Mutex<Option<Lease>> },
}

/// An opened state, and (shared) the signal that another node took the device over.
pub(crate) struct Opened {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) fenced: Option<watch::Receiver<bool>>,
}

impl Storage {
    /// The state of `tenant`'s `device`.
    pub(crate) fn of(&self, tenant: &str, device: &str) -> DeviceStorage {
        match self {
            Storage::Files(dir) => DeviceStorage::File(file_of(dir, tenant, device)),
            Storage::Shared(shared) => DeviceStorage::Shared { shared: shared.clone(), lease: Mutex::new(None) },
        }
    }

    /// Makes `tenant`'s `device` known: shared, to every node, one of which takes it.
    pub(crate) async fn register(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        match self {
            Storage::Files(_) => Ok(()),
            Storage::Shared(shared) => Ok(shared.leases.register(tenant, device).await?),
        }
    }

    /// Forgets `tenant`'s `device`: deletes its file, or (shared) its lease row and state;
    /// whichever node still runs it is refused its next write, and stops.
    pub(crate) async fn remove(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        match self {
            Storage::Files(dir) => delete_file(&file_of(dir, tenant, device)),
            Storage::Shared(shared) => Ok(shared.leases.forget(tenant, device).await?),
        }
    }
}

fn file_of(dir: &Path, tenant: &str, device: &str) -> PathBuf {
    dir.join(tenant).join(format!("{device}.db"))
}

impl DeviceStorage {
    /// Opens the state: creates the file, or (shared) opens it under the lease this node
    /// holds — an error if it holds none.
    pub(crate) async fn open(&self) -> anyhow::Result<Opened> {
        match self {
            DeviceStorage::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let store = SqliteStore::with_config(&path.to_string_lossy(), store_config()).await?;
                Ok(Opened { backend: Arc::new(store), fenced: None })
            }
            DeviceStorage::Shared { shared, .. } => {
                let lease = self.lease().context(NOT_OWNED)?;
                // With a turn to spare: a node whose turns stalled must not start a client on
                // a lease another node may be taking.
                anyhow::ensure!(shared.leases.holds(&lease, shared.leases.turn_interval()).await?, NOT_OWNED);
                let state = DeviceState::new(shared.db.clone(), &lease);
                let fenced = Some(state.fenced());
                Ok(Opened { backend: Arc::new(state), fenced })
            }
        }
    }

    /// Deletes the state: the device is then as never linked.
    pub(crate) async fn delete(&self) -> anyhow::Result<()> {
        match self {
            DeviceStorage::File(path) => delete_file(path),
            DeviceStorage::Shared { shared, .. } => {
                let lease = self.lease().context(NOT_OWNED)?;
                Ok(DeviceState::new(shared.db.clone(), &lease).clear().await?)
            }
        }
    }

    /// Records (shared) that the device stopped for good in `state`, or (`None`) that it
    /// connected again, for the next node to hold it; a failure is only logged: the next
    /// holder then starts it, and WhatsApp says again.
    pub(crate) async fn stopped_as(&self, state: Option<&str>) {
        if let (DeviceStorage::Shared { shared, .. }, Some(lease)) = (self, self.lease())
            && lease.stopped_as.as_deref() != state
        {
            match shared.leases.stopped_as(&lease, state).await {
                Ok(()) => self.set_lease(Some(Lease { stopped_as: state.map(str::to_string), ..lease })),
                Err(e) => {
                    tracing::warn!(device = lease.device, "recording the device's state for the other nodes: {e}")
                }
            }
        }
    }

    /// Whether this node may run the device: always for a file, under a lease if shared.
    pub(crate) fn owned(&self) -> bool {
        self.held().is_some()
    }

    /// What this node runs the device under, if it may run it: for a file, no lease (lease and
    /// epoch 0); if shared, the lease it holds. What the device's status is recorded under.
    pub(crate) fn held(&self) -> Option<LeaseEpoch> {
        match self {
            DeviceStorage::File(_) => Some(LeaseEpoch::default()),
            DeviceStorage::Shared { lease, .. } => {
                let held = lease.lock().expect("lease lock");
                held.as_ref().map(|held| LeaseEpoch { lease: held.id, epoch: held.epoch })
            }
        }
    }

    /// The lease this node holds on the device, if shared and held.
    pub(crate) fn lease(&self) -> Option<Lease> {
        match self {
            DeviceStorage::File(_) => None,
            DeviceStorage::Shared { lease, .. } => lease.lock().expect("lease lock").clone(),
        }
    }

    /// Holds the device under `lease` from now on, or (`None`) no longer.
    pub(crate) fn set_lease(&self, held: Option<Lease>) {
        if let DeviceStorage::Shared { lease, .. } = self {
            *lease.lock().expect("lease lock") = held;
        }
    }
}

impl std::fmt::Display for DeviceStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceStorage::File(path) => write!(f, "{}", path.display()),
            DeviceStorage::Shared { .. } => match self.lease() {
                Some(lease) => write!(f, "PostgreSQL, device {} epoch {}", lease.id, lease.epoch),
                None => write!(f, "PostgreSQL, not held by this node"),
            },
        }
    }
}

/// Why a shared device's state does not open here.
pub(crate) const NOT_OWNED: &str = "another node runs this device (or none does yet): use that node";

/// Deletes a device's SQLite store: the database and its WAL and shared-memory files.
fn delete_file(db: &std::path::Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = db.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("deleting {}", PathBuf::from(file).display()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use diesel::connection::{Instrumentation, InstrumentationEvent};

    use super::*;

    #[test]
    fn device_stores_are_as_durable_as_the_gateway_store() {
        let config = store_config();
        assert!(matches!(config.synchronous, Synchronous::Full));
        assert_eq!(config.cache_size_kib, STORE_CACHE_KIB);
    }

    /// Counts the statements a connection prepares to keep, and the queries it runs.
    struct CountKept {
        kept: Arc<AtomicUsize>,
        run: Arc<AtomicUsize>,
    }

    impl Instrumentation for CountKept {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            match event {
                InstrumentationEvent::CacheQuery { .. } => {
                    self.kept.fetch_add(1, Ordering::Relaxed);
                }
                InstrumentationEvent::StartQuery { .. } => {
                    self.run.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }

    /// The statements a device store opened with `config` kept, from its opening (its
    /// migrations) to a read of an identity, and the queries it ran meanwhile; the
    /// connection's own hook, if any, runs first.
    async fn statements_kept(config: SqliteStoreConfig) -> (usize, usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.db");
        let (kept, run) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counters = (kept.clone(), run.clone());
        let hook = config.connection_init.clone();
        let config = config.with_connection_init(move |connection| {
            if let Some(hook) = &hook {
                hook(connection)?;
            }
            connection.set_instrumentation(CountKept { kept: counters.0.clone(), run: counters.1.clone() });
            Ok(())
        });
        let store = SqliteStore::with_config(&path.to_string_lossy(), config).await.unwrap();
        let device = store.device_id();
        store.put_identity_for_device("15550001111.0", [7; 32], device).await.unwrap();
        let identity = store.load_identity_for_device("15550001111.0", device).await.unwrap();
        assert_eq!(identity, Some(vec![7; 32]));
        (kept.load(Ordering::Relaxed), run.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn device_stores_keep_no_prepared_statements() {
        // The same store without the hook keeps statements: the counter sees them.
        let (kept, _) = statements_kept(SqliteStoreConfig { connection_init: None, ..store_config() }).await;
        assert!(kept > 0);
        let (kept, run) = statements_kept(store_config()).await;
        assert_eq!(kept, 0);
        assert!(run > 0, "the counter saw no query");
    }
}

//! waedge-store: the persistent store of waedge — tenants, their host names, users, API
//! tokens, devices, routes, component versions, events and webhooks, in one SQLite database
//! in the data directory (`waedge.db`).
//!
//! The store is the truth about what exists; the gateway serves from a
//! [`Snapshot`] of it and is rebuilt from a fresh snapshot after every change, so a revoked
//! token or a deleted route stops working as soon as the change is acknowledged. Writes are
//! transactions in WAL mode with `synchronous = FULL`: an acknowledged change survives a
//! `kill -9` or a power cut. One connection writes; reads that decide no write go to a second,
//! read-only connection, which sees what was last committed without waiting for a write under
//! way. The store is synchronous (no async runtime): callers on an async
//! runtime run it on a blocking thread, except [`Store::known_verified_link`], which answers
//! from memory without waiting for the connection.
//!
//! API tokens are never stored, only their SHA-256 ([`TokenHash`], in [`token`]).
//!
//! Each concept has its module: [`tenants`] (with their [`limits`]), [`users`] (and their
//! tokens), [`devices`], [`routes`], [`components`] (deployed versions), [`admin`]
//! (admin-API tokens), [`events`] (the outbox of what happened on the devices), [`sent`]
//! (the messages devices sent), [`links`] (verified LID ↔ phone links), [`names`] (the names
//! devices learned for their contacts) and [`webhooks`]
//! (which deliver a tenant's events to HTTP endpoints, with their delivery logs and dead
//! letters). The schema is in [`migrations`]. The configuration file seeds an empty
//! store (`waedge::config::Config::seed`): the store knows nothing of the file.
//!
//! It depends only on `waedge-contract` (a device's state is the contract's `device-state`);
//! `waedge-device` records device statuses in it and `waedge` (the host) serves from it.
#![deny(missing_docs)]

pub mod admin;
pub mod components;
pub mod devices;
pub mod events;
mod known_links;
pub mod limits;
pub mod links;
pub mod migrations;
pub mod names;
pub mod routes;
pub mod sent;
pub mod tenants;
pub mod token;
pub mod users;
pub mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};

use crate::known_links::KnownLinks;
use crate::token::TokenHash;
pub use devices::DeviceRecord;
pub use routes::{ComponentRef, RouteRecord};
pub use tenants::TenantRecord;
pub use users::{TokenRecord, UserRecord};
pub use webhooks::WebhookRecord;

/// How long a connection waits for another's lock (another process writing, a checkpoint)
/// before its statement fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A handle on the store; clones share its connections.
#[derive(Clone)]
pub struct Store {
    /// A read-only connection for the reads that need no lock ([`Store::read`]): in WAL mode
    /// it reads the last committed state while `conn` writes, so the admin API's lists, the
    /// gateway's snapshots and the webhooks' next deliveries do not queue behind the device
    /// sessions' status and event writes. The same connection as `conn` in memory. Declared
    /// first, so that it closes first: the last connection to close moves the WAL into the
    /// database file, which a read-only one cannot do.
    reader: Arc<Mutex<Connection>>,
    /// The connection that writes, and reads what must be read under the write lock.
    conn: Arc<Mutex<Connection>>,
    links: Arc<KnownLinks>,
}

/// A read transaction on the store's reading connection ([`Store::read`]), ended when dropped.
struct Reading<'a>(MutexGuard<'a, Connection>);

impl std::ops::Deref for Reading<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        // A read transaction left open would pin the connection to an old commit.
        if self.0.execute_batch("COMMIT").is_err() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts what exists (a duplicate id, host name or token).
    #[error("{0}")]
    Conflict(String),
    /// The input is not acceptable; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Everything the gateway serves from, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every tenant with its parts.
    pub tenants: Vec<TenantSnapshot>,
}

/// One tenant and everything that belongs to it.
#[derive(Debug, Clone)]
pub struct TenantSnapshot {
    /// The tenant, with its host names.
    pub tenant: TenantRecord,
    /// Its users, each with the hashes of its unrevoked tokens.
    pub users: Vec<(UserRecord, Vec<TokenHash>)>,
    /// Its devices.
    pub devices: Vec<DeviceRecord>,
    /// Its routes.
    pub routes: Vec<RouteRecord>,
    /// Every version of each of its components.
    pub components: Vec<components::VersionRef>,
    /// Its event handlers: the webhooks that name a component, by webhook id.
    pub event_handlers: Vec<(String, ComponentRef)>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Store::init(Connection::open_with_flags(path, flags)?)?;
        // Opened once the writer has made the database and its WAL: a reader cannot create them.
        let reader =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Store::with(Arc::new(Mutex::new(conn)), Arc::new(Mutex::new(reader))))
    }

    /// A store that lives in memory only (tests): one connection writes and reads.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Arc::new(Mutex::new(Store::init(Connection::open_in_memory()?)?));
        Ok(Store::with(conn.clone(), conn))
    }

    /// A store writing through `conn` and reading through `reader`.
    fn with(conn: Arc<Mutex<Connection>>, reader: Arc<Mutex<Connection>>) -> Store {
        Store { reader, conn, links: Arc::default() }
    }

    /// Sets up a writing connection and brings the schema up to date.
    fn init(mut conn: Connection) -> Result<Connection, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > migrations::latest() {
            return Err(StoreError::Invalid(format!(
                "the database has schema version {version}, newer than this waedge knows ({}): run a newer waedge",
                migrations::latest()
            )));
        }
        migrations::migrate(&mut conn)?;
        Ok(conn)
    }

    /// Runs `f` in one transaction: all of its changes or none.
    pub(crate) fn transaction<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        // IMMEDIATE: take the write lock at the start, so another process writing (the CLI's
        // `admin-token`) makes this wait (busy timeout) instead of failing mid-transaction.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// The writing connection.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (it rolls
        // back on drop), so a poisoned lock is still a consistent connection.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A read transaction on the reading connection: its statements all see what was committed
    /// when the first of them ran, without waiting for a write under way. Not for a read whose
    /// answer decides a write (that reads under [`lock`](Self::lock), in the write's
    /// transaction).
    fn read(&self) -> Result<Reading<'_>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        conn.execute_batch("BEGIN DEFERRED")?;
        Ok(Reading(conn))
    }

    /// Whether the store has no tenant.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let count: i64 = self.lock().query_row("SELECT count(*) FROM tenants", [], |row| row.get(0))?;
        Ok(count == 0)
    }

    /// A value of the store's own bookkeeping.
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self.lock().query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0)).optional()?)
    }

    /// Sets a value of the store's own bookkeeping.
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lock().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Whether the store was seeded (see [`Store::mark_seeded`]).
    pub fn is_seeded(&self) -> Result<bool, StoreError> {
        Ok(self.meta("seeded")?.is_some())
    }

    /// Records that the store was seeded, now: from then on it is the truth, and a
    /// configuration file's tenants are not written into it again.
    pub fn mark_seeded(&self) -> Result<(), StoreError> {
        self.set_meta("seeded", &now())
    }

    /// Reads everything the gateway serves from, consistently.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let conn = self.read()?;
        let mut tenants = Vec::new();
        for tenant in tenants::list(&conn)? {
            let id = tenant.id.clone();
            let users = users::list(&conn, &id)?
                .into_iter()
                .map(|user| {
                    let hashes = users::active_token_hashes(&conn, &user.id)?;
                    Ok((user, hashes))
                })
                .collect::<Result<_, StoreError>>()?;
            tenants.push(TenantSnapshot {
                users,
                devices: devices::list(&conn, &id)?,
                routes: routes::list(&conn, &id)?,
                components: components::refs(&conn, &id)?,
                event_handlers: webhooks::handlers(&conn, &id)?,
                tenant,
            });
        }
        Ok(Snapshot { tenants })
    }
}

/// The current time as RFC 3339 UTC with seconds, e.g. `2026-11-22T05:54:42Z`.
pub(crate) fn now() -> String {
    rfc3339(chrono::Utc::now())
}

/// `at` as RFC 3339 UTC with seconds, the form every time in the store has.
pub(crate) fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Turns a unique-constraint failure into [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(error: rusqlite::Error, message: impl FnOnce() -> String) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(message())
        }
        other => StoreError::Sqlite(other),
    }
}

/// Reads a JSON column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into()))
}

/// Reads an optional field of a request body that, when given, holds a value: `null` is
/// refused (with serde's "invalid type: null" error), as the admin API's document types these
/// fields without it; a client leaves the field out to give none. Used with
/// `#[serde(default, deserialize_with = "crate::present")]`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Writes a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store values serialise")
}

/// Whether `id` is a valid tenant or device id: 1–64 letters, digits, `-` or `_`.
pub fn is_identifier(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// [`StoreError::Invalid`] unless `id` [is an identifier](is_identifier).
pub(crate) fn check_identifier(what: &str, id: &str) -> Result<(), StoreError> {
    if is_identifier(id) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("{what} id `{id}`: use 1 to 64 letters, digits, `-` and `_`")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tenants::NewTenant;

    /// A store in memory with one tenant, `acme`.
    pub(crate) fn acme() -> Store {
        let store = Store::open_in_memory().unwrap();
        store.create_tenant(NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        store
    }

    #[test]
    fn a_snapshot_holds_each_tenant_with_its_parts() {
        let store = acme();
        store.create_tenant(NewTenant { id: "globex".into(), ..Default::default() }).unwrap();
        store.create_device("acme", "main").unwrap();
        let user = store.create_user("acme", users::NewUser { devices: vec!["main".into()], ..Default::default() });
        let (_, token) = store.create_token("acme", &user.unwrap().id).unwrap();
        let route = RouteRecord { prefix: "/devices".into(), component: ComponentRef::Builtin("devices-api".into()) };
        store.put_route("acme", route.clone()).unwrap();

        let snapshot = store.snapshot().unwrap();
        let ids: Vec<&str> = snapshot.tenants.iter().map(|t| t.tenant.id.as_str()).collect();
        assert_eq!(ids, ["acme", "globex"]);
        let acme = &snapshot.tenants[0];
        assert_eq!(acme.devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["main"]);
        assert_eq!(acme.routes, [route]);
        assert_eq!(acme.users.len(), 1);
        assert_eq!(acme.users[0].1, [TokenHash::of(&token)], "the token's hash, never the token");
        let globex = &snapshot.tenants[1];
        assert!(globex.users.is_empty() && globex.devices.is_empty() && globex.routes.is_empty());
    }

    #[test]
    fn the_store_is_seeded_once_it_says_so() {
        let store = Store::open_in_memory().unwrap();
        assert!(store.is_empty().unwrap());
        assert!(!store.is_seeded().unwrap());
        store.mark_seeded().unwrap();
        assert!(store.is_seeded().unwrap());
        assert!(store.is_empty().unwrap(), "seeding marks the store, it adds no tenant");
    }

    #[test]
    fn a_database_newer_than_this_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waedge.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", migrations::latest() + 1).unwrap();
        drop(conn);
        let refused = Store::open(&path).err().expect("a newer schema is refused");
        assert!(matches!(refused, StoreError::Invalid(ref m) if m.contains("run a newer waedge")), "{refused}");
    }

    #[test]
    fn reads_answer_what_was_committed_while_a_write_is_under_way() {
        use std::sync::mpsc::channel;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("waedge.db")).unwrap();
        store.create_tenant(NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        store.create_device("acme", "main").unwrap();

        // A write that holds its transaction (a device session's status batch, say) until told.
        let (written, wait_for_write) = channel();
        let (finish, until_finished) = channel::<()>();
        let writer = store.clone();
        let write = std::thread::spawn(move || {
            writer.transaction(|tx| {
                tx.execute(
                    "INSERT INTO devices (tenant_id, id, state, created_at, updated_at)
                     VALUES ('acme', 'second', 'unlinked', '', '')",
                    [],
                )?;
                written.send(()).unwrap();
                until_finished.recv().unwrap();
                Ok(())
            })
        });
        wait_for_write.recv().unwrap();

        let reader = store.clone();
        let (answered, answer) = channel();
        std::thread::spawn(move || {
            let read = (reader.devices("acme"), reader.snapshot(), reader.tenant("acme"));
            answered.send(read).ok();
        });
        // Without a connection of their own, the reads wait for the write to finish.
        let read = answer.recv_timeout(std::time::Duration::from_secs(10));
        finish.send(()).unwrap();
        let (devices, snapshot, tenant) = read.expect("the reads answered while the write held its transaction");
        let ids = |devices: &[DeviceRecord]| devices.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&devices.unwrap()), ["main"], "what was committed, not the write under way");
        assert_eq!(ids(&snapshot.unwrap().tenants[0].devices), ["main"]);
        assert_eq!(tenant.unwrap().id, "acme");

        write.join().unwrap().unwrap();
        assert_eq!(ids(&store.devices("acme").unwrap()), ["main", "second"], "and the write once committed");
    }

    #[test]
    fn a_closed_store_leaves_every_commit_in_its_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waedge.db");
        let store = Store::open(&path).unwrap();
        store.create_tenant(NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        store.tenants().unwrap();
        drop(store);
        // The last connection to close moves the WAL into the file: a copy of the file alone
        // (a backup) holds everything.
        assert!(!dir.path().join("waedge.db-wal").exists(), "the WAL was checkpointed and removed");
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let tenants: i64 = conn.query_row("SELECT count(*) FROM tenants", [], |row| row.get(0)).unwrap();
        assert_eq!(tenants, 1);
    }

    #[test]
    fn identifiers_are_short_and_plain() {
        assert!(is_identifier("acme") && is_identifier("a_b-9") && is_identifier(&"x".repeat(64)));
        for bad in ["", "a b", "a/b", "../x", "é", "x".repeat(65).as_str()] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
    }
}

//! waedge-store: the persistent store of waedge — tenants, their host names, users, API
//! tokens, devices, routes, component versions, events and webhooks — in one SQLite database
//! in the data directory (`waedge.db`, one machine), or in a PostgreSQL database that several
//! nodes share ([`Store::connect`]).
//!
//! The store is the truth about what exists; the gateway serves from a
//! [`Snapshot`] of it and is rebuilt from a fresh snapshot after every change, so a revoked
//! token or a deleted route stops working as soon as the change is acknowledged. Writes are
//! transactions, run one at a time (in PostgreSQL, across every node: one advisory lock),
//! and an acknowledged change survives a `kill -9` or a power cut (SQLite: WAL mode with
//! `synchronous = FULL`). Reads that decide no write run on connections of their own, each in a
//! transaction that sees what was last committed without waiting for a write under way. The
//! store is synchronous (no async runtime; PostgreSQL's connections are driven by a thread of
//! the store's own): callers on an async runtime run it on a blocking thread, except
//! [`Store::known_verified_link`], which answers from memory without waiting for a connection
//! (a SQLite store's only: a PostgreSQL one keeps no links in memory), and [`changes`]'
//! asynchronous connection of its own.
//!
//! API tokens are never stored, only their SHA-256 ([`TokenHash`], in [`token`]).
//!
//! Each concept has its module: [`tenants`] (with their [`limits`]), [`users`] (and their
//! tokens), [`devices`], [`routes`], [`components`] (deployed versions), [`admin`]
//! (admin-API tokens), [`events`] (the outbox of what happened on the devices), [`sent`]
//! (the messages devices sent), [`links`] (verified LID ↔ phone links), [`names`] (the names
//! devices learned for their contacts) and [`webhooks`]
//! (which deliver a tenant's events to HTTP endpoints, with their delivery logs and dead
//! letters). Their SQL is written once for both databases (`db`); the schemas and their
//! migrations are in `migrations`; [`copy`] moves a SQLite store into PostgreSQL. The
//! configuration file seeds an empty store (`waedge::config::Config::seed`): the store knows
//! nothing of the file.
//!
//! It depends only on `waedge-contract` (a device's state is the contract's `device-state`)
//! and `waedge-pg` (how waedge connects to PostgreSQL); `waedge-device` records device
//! statuses in it and `waedge` (the host) serves from it.
#![deny(missing_docs)]

pub mod admin;
pub mod changes;
pub mod components;
pub mod copy;
mod db;
pub mod devices;
pub mod events;
mod known_links;
pub mod limits;
pub mod links;
mod migrations;
pub mod names;
pub mod routes;
pub mod sent;
pub mod tenants;
pub mod token;
pub mod users;
pub mod webhooks;

use std::path::Path;
use std::sync::Arc;

use crate::db::{Conn, Listener, Postgres, Sqlite};
use crate::known_links::KnownLinks;
use crate::token::TokenHash;
pub use db::DatabaseError;
pub use devices::{DeviceRecord, LeaseEpoch, StatusReport};
pub use routes::{ComponentRef, RouteRecord};
pub use tenants::TenantRecord;
pub use users::{TokenRecord, UserRecord};
pub use webhooks::WebhookRecord;

/// A handle on the store; clones share its connections.
#[derive(Clone)]
pub struct Store {
    database: Database,
    links: Arc<KnownLinks>,
}

/// The database a store lives in.
#[derive(Clone)]
enum Database {
    Sqlite(Sqlite),
    Postgres(Postgres),
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
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DatabaseError),
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
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to
    /// date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::with(Database::Sqlite(Sqlite::open(path)?)))
    }

    /// A store that lives in memory only (tests): one SQLite connection writes and reads.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Ok(Store::with(Database::Sqlite(Sqlite::open_in_memory()?)))
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/db`)
    /// and brings the store's schema in it up to date: the store several nodes share.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store::with(Database::Postgres(Postgres::connect(url)?)))
    }

    fn with(database: Database) -> Store {
        Store { database, links: Arc::default() }
    }

    /// Whether several nodes may share this store (it is in PostgreSQL): what this process
    /// read may have been changed by another since.
    pub fn is_shared(&self) -> bool {
        matches!(self.database, Database::Postgres(_))
    }

    /// Runs `f` in one write transaction: all of its changes or none. Write transactions run
    /// one at a time (across every node sharing a PostgreSQL store), so what `f` reads holds
    /// until it commits.
    pub(crate) fn transaction<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.database {
            Database::Sqlite(sqlite) => sqlite.transaction(f),
            Database::Postgres(postgres) => postgres.transaction(f),
        }
    }

    /// Runs `f` in one read transaction: its statements all see what was committed when the
    /// first of them ran, without waiting for a write under way. Not for a read whose answer
    /// decides a write (that reads in the write's [`transaction`](Self::transaction)).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.database {
            Database::Sqlite(sqlite) => sqlite.read(f),
            Database::Postgres(postgres) => postgres.read(f),
        }
    }

    /// The SQLite store's writing connection itself, for tests that look under the store.
    #[cfg(test)]
    pub(crate) fn sqlite_writer(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        match &self.database {
            Database::Sqlite(sqlite) => sqlite.writer(),
            Database::Postgres(_) => panic!("a SQLite store was expected"),
        }
    }

    /// Runs `f` while no other node of this store runs its own `exclusively` (in PostgreSQL; a
    /// SQLite store has one node, and runs `f` as it is). `f` uses the store as usual.
    pub fn exclusively<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.database {
            Database::Postgres(postgres) => postgres.exclusively(f),
            Database::Sqlite(_) => f(),
        }
    }

    /// A connection of its own listening on `channels` (PostgreSQL only).
    fn listen(&self, channels: &[&str]) -> Result<Listener, StoreError> {
        match &self.database {
            Database::Postgres(postgres) => postgres.listen(channels),
            Database::Sqlite(_) => {
                Err(StoreError::Invalid("a SQLite store has one node: there are no other nodes to hear from".into()))
            }
        }
    }

    /// Whether the store has no tenant.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let count: i64 = self.read(|conn| conn.query_value("SELECT count(*) FROM tenants", &[]))?;
        Ok(count == 0)
    }

    /// Whether the store was seeded (see [`Store::mark_seeded`]).
    pub fn is_seeded(&self) -> Result<bool, StoreError> {
        let seeded = self.read(|conn| conn.query_opt("SELECT 1 FROM meta WHERE key = 'seeded'", &[], |_| Ok(())))?;
        Ok(seeded.is_some())
    }

    /// Records that the store was seeded, now: from then on it is the truth, and a
    /// configuration file's tenants are not written into it again.
    pub fn mark_seeded(&self) -> Result<(), StoreError> {
        self.transaction(|conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('seeded', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                db::params![now()],
            )?;
            Ok(())
        })
    }

    /// Reads everything the gateway serves from, consistently.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.read(|conn| {
            let mut tenants = Vec::new();
            for tenant in tenants::list(conn)? {
                let id = tenant.id.clone();
                let users = users::list(conn, &id)?
                    .into_iter()
                    .map(|user| {
                        let hashes = users::active_token_hashes(conn, &user.id)?;
                        Ok((user, hashes))
                    })
                    .collect::<Result<_, StoreError>>()?;
                tenants.push(TenantSnapshot {
                    users,
                    devices: devices::list(conn, &id)?,
                    routes: routes::list(conn, &id)?,
                    components: components::refs(conn, &id)?,
                    event_handlers: webhooks::handlers(conn, &id)?,
                    tenant,
                });
            }
            Ok(Snapshot { tenants })
        })
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

/// Turns a constraint failure (a duplicate key) into [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(error: StoreError, message: impl FnOnce() -> String) -> StoreError {
    match error {
        StoreError::Database(e) if e.is_constraint_violation() => StoreError::Conflict(message()),
        other => other,
    }
}

/// Reads a JSON column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| DatabaseError::Json(e).into())
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

/// Writes a JSON column, without NUL in its strings (see [`db::without_nul`]).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).expect("store values serialise");
    // JSON writes a NUL as `\u0000` (an escaped backslash before `u0000` reads the same here,
    // and only costs the round trip).
    if !text.contains("\\u0000") {
        return text;
    }
    let mut json = serde_json::to_value(value).expect("store values serialise");
    replace_nul(&mut json);
    json.to_string()
}

/// Replaces each NUL in the strings and keys of `json` (see [`db::without_nul`]).
fn replace_nul(json: &mut serde_json::Value) {
    match json {
        serde_json::Value::String(text) if text.contains('\0') => *text = db::without_nul(text).into_owned(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_nul),
        serde_json::Value::Object(fields) if fields.keys().any(|key| key.contains('\0')) => {
            let mut clean: serde_json::Map<String, serde_json::Value> = std::mem::take(fields)
                .into_iter()
                .map(|(key, value)| (db::without_nul(&key).into_owned(), value))
                .collect();
            clean.values_mut().for_each(replace_nul);
            *fields = clean;
        }
        serde_json::Value::Object(fields) => fields.values_mut().for_each(replace_nul),
        _ => {}
    }
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

    /// Defines each test twice, for each database a store can live in: in a module `sqlite`
    /// on a SQLite store in memory, and in a module `postgres` on a PostgreSQL store (a
    /// database of its own on the test process's server), which is ignored where PostgreSQL
    /// is not installed (`scripts/test` runs it where it is). `fn name(store) { … }` names the
    /// empty store the test gets.
    macro_rules! on_both {
        ($($(#[$meta:meta])* fn $name:ident($store:ident) $body:block)*) => {
            mod sqlite {
                #[allow(unused_imports)]
                use super::*;
                $($(#[$meta])* #[test] fn $name() { let $store = $crate::tests::sqlite(); $body })*
            }
            mod postgres {
                #[allow(unused_imports)]
                use super::*;
                $(
                    $(#[$meta])*
                    #[test]
                    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
                    fn $name() { let $store = $crate::tests::postgres(); $body }
                )*
            }
        };
    }
    pub(crate) use on_both;

    /// An empty SQLite store in memory.
    pub(crate) fn sqlite() -> Store {
        Store::open_in_memory().unwrap()
    }

    /// An empty PostgreSQL store, in a new database on the test process's server.
    pub(crate) fn postgres() -> Store {
        Store::connect(&postgres_url()).unwrap()
    }

    /// The URL of a new database on the test process's PostgreSQL server.
    pub(crate) fn postgres_url() -> String {
        let server = waedge_test_postgres::Postgres::shared().expect("a PostgreSQL server for the tests");
        server.create_database().expect("a database for the test")
    }

    /// `store` with one tenant, `acme`.
    pub(crate) fn acme(store: Store) -> Store {
        store.create_tenant(NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        store
    }

    on_both! {
    fn a_snapshot_holds_each_tenant_with_its_parts(store) {
        let store = acme(store);
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

    fn a_nul_in_text_or_json_is_stored_as_a_replacement_character(store) {
        use waedge_contract::types::{DeviceState, DeviceStatus};
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let push_name = Some("Ana\0Bob".to_owned());
        let status = DeviceStatus { id: "main".into(), state: DeviceState::Connected, jid: None, lid: None, push_name };
        store.record_device_statuses(&[StatusReport { tenant: "acme".into(), status, under: LeaseEpoch::default() }]).unwrap();
        assert_eq!(store.device("acme", "main").unwrap().push_name.as_deref(), Some("Ana\u{FFFD}Bob"));
        let event = events::NewEvent {
            device: "main".into(),
            kind: "message.received".into(),
            chat: "1@s.whatsapp.net".into(),
            dedup: Some("1@s.whatsapp.net|x\0".into()),
            at: now(),
            data: serde_json::json!({ "text": "a\0b", "k\0": [1, "\0"], "message_id": "m\0" }),
        };
        assert_eq!(store.append_events("acme", &[event]).unwrap().len(), 1);
        let listed = store.events("acme", None, 10).unwrap();
        let message = listed.iter().find(|event| event.kind == "message.received").expect("the event");
        let clean = serde_json::json!({ "text": "a\u{FFFD}b", "k\u{FFFD}": [1, "\u{FFFD}"], "message_id": "m\u{FFFD}" });
        assert_eq!(message.data, clean);
    }

    fn the_store_is_seeded_once_it_says_so(store) {
        assert!(store.is_empty().unwrap());
        assert!(!store.is_seeded().unwrap());
        store.mark_seeded().unwrap();
        assert!(store.is_seeded().unwrap());
        assert!(store.is_empty().unwrap(), "seeding marks the store, it adds no tenant");
    }
    }

    #[test]
    fn a_sqlite_database_newer_than_this_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waedge.db");
        drop(Store::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", migrations::sqlite::latest() + 1).unwrap();
        drop(conn);
        let refused = Store::open(&path).err().expect("a newer schema is refused");
        assert!(matches!(refused, StoreError::Invalid(ref m) if m.contains("run a newer waedge")), "{refused}");
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn a_postgres_database_newer_than_this_build_is_refused() {
        let url = postgres_url();
        let store = Store::connect(&url).unwrap();
        store.transaction(|conn| conn.execute("UPDATE store_schema SET version = version + 1", &[])).unwrap();
        let refused = Store::connect(&url).err().expect("a newer schema is refused");
        assert!(matches!(refused, StoreError::Invalid(ref m) if m.contains("run a newer waedge")), "{refused}");
        let migrated_again = Store::connect(&postgres_url());
        assert!(migrated_again.is_ok(), "a new database is migrated (twice on one server: the lock is per database)");
    }

    #[test]
    fn sqlite_reads_answer_what_was_committed_while_a_write_is_under_way() {
        let dir = tempfile::tempdir().unwrap();
        reads_answer_what_was_committed_while_a_write_is_under_way(Store::open(&dir.path().join("waedge.db")).unwrap());
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn postgres_reads_answer_what_was_committed_while_a_write_is_under_way() {
        reads_answer_what_was_committed_while_a_write_is_under_way(postgres());
    }

    /// A file store in `dir` with tenant `acme` and its device `main`.
    fn sqlite_file(dir: &tempfile::TempDir) -> Store {
        with_main(Store::open(&dir.path().join("waedge.db")).unwrap())
    }

    /// `store` with tenant `acme` and its device `main`.
    fn with_main(store: Store) -> Store {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store
    }

    #[test]
    fn a_sqlite_read_under_way_holds_up_no_other_read() {
        let dir = tempfile::tempdir().unwrap();
        a_read_under_way_holds_up_no_other_read(sqlite_file(&dir));
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn a_postgres_read_under_way_holds_up_no_other_read() {
        a_read_under_way_holds_up_no_other_read(with_main(postgres()));
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn postgres_reads_open_their_sessions_again_once_the_server_ended_them() {
        let store = with_main(postgres());
        // Each ended, its server process gone (waited for up to 5 s), except the one asking.
        let ended = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()";
        // The reading session the store opened with, and another one beside it.
        a_read_under_way_holds_up_no_other_read(store.clone());
        let terminated = store.transaction(|conn| conn.query_value::<i64>(ended, &[])).unwrap();
        assert!(terminated >= 2, "the reading sessions were ended ({terminated} sessions)");
        // A read on an ended session fails, if the end was not noticed yet; the next one on it
        // opens it again, and every read after it answers.
        let reads: Vec<_> = (0..4).map(|_| store.tenant("acme").map(|tenant| tenant.id)).collect();
        let first = reads.iter().position(Result::is_ok);
        assert!(first.is_some_and(|first| first <= 1), "{reads:?}");
        assert!(reads.iter().skip_while(|read| read.is_err()).all(|read| read.as_deref().ok() == Some("acme")));
    }

    /// A read answers while another holds its connection (the admin API writing a long device
    /// list as it reads it).
    fn a_read_under_way_holds_up_no_other_read(store: Store) {
        use std::sync::mpsc::channel;
        let (reading, wait_for_read) = channel();
        let (finish, until_finished) = channel::<()>();
        let long = store.clone();
        let read = std::thread::spawn(move || {
            long.each_device("acme", |_| {
                reading.send(()).unwrap();
                until_finished.recv().unwrap();
            })
        });
        wait_for_read.recv().unwrap();
        let other = store.clone();
        let (answered, answer) = channel();
        std::thread::spawn(move || answered.send(other.tenant("acme").map(|tenant| tenant.id)).ok());
        let answer = answer.recv_timeout(std::time::Duration::from_secs(10));
        finish.send(()).unwrap();
        assert_eq!(answer.expect("another read answered while the first held its connection").unwrap(), "acme");
        read.join().unwrap().unwrap();
    }

    #[test]
    fn a_sqlite_read_that_panicked_leaves_its_connection_usable_and_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        // In a file, reads have connections of their own; in memory, the writer's reads.
        a_read_that_panicked_leaves_its_connection_usable_and_up_to_date(sqlite_file(&dir));
        a_read_that_panicked_leaves_its_connection_usable_and_up_to_date(with_main(sqlite()));
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn a_postgres_read_that_panicked_leaves_its_connection_usable_and_up_to_date() {
        a_read_that_panicked_leaves_its_connection_usable_and_up_to_date(with_main(postgres()));
    }

    /// After a read whose visitor panicked, `store` (with `acme`'s device `main`) writes, and
    /// reads what it wrote.
    fn a_read_that_panicked_leaves_its_connection_usable_and_up_to_date(store: Store) {
        let visit = std::panic::AssertUnwindSafe(|| store.each_device("acme", |_| panic!("a visitor that fails")));
        assert!(std::panic::catch_unwind(visit).is_err());
        // Written and read after it: the panicked read's transaction did not stay open.
        store.create_device("acme", "second").unwrap();
        let ids: Vec<String> = store.devices("acme").unwrap().into_iter().map(|device| device.id).collect();
        assert_eq!(ids, ["main", "second"]);
    }

    fn reads_answer_what_was_committed_while_a_write_is_under_way(store: Store) {
        use std::sync::mpsc::channel;
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
                    &[],
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
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let conn = rusqlite::Connection::open_with_flags(&path, flags).unwrap();
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

//! A device's state moves from whatsapp-rust's SQLite file into PostgreSQL whole: what the
//! device reads afterwards, through the storage traits, is what it read from the file.

mod common;
mod conformance;

use std::time::Duration;

use wacore::store::traits::{DeviceStore, SignalStore};
use waedge_device_pg::{DeviceState, Leases, SqliteState};
use whatsapp_rust::store::SqliteStore;

/// The rows [`conformance::fill`] writes besides the device: one in each of the 17 other
/// tables, but two prekeys (one uploaded, one not) and two devices' sender-key statuses.
const FILLED_ROWS: u64 = 19;

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_device_file_moves_into_postgres_whole_and_never_over_a_state_a_node_ran() {
    let (_server, url, db) = common::database().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("main.db");
    let file = SqliteStore::new(path.to_str().unwrap()).await.expect("open the device file");
    conformance::fill(&file).await;

    let state = SqliteState::read(&path).await.expect("the file reads").expect("the file holds a device");
    assert_eq!(state.rows(), 1 + FILLED_ROWS, "the device and every filled row");
    db.import("acme", "main", &state).await.expect("imported");
    // Imported again (a migration run twice): replaced, not doubled.
    let raw = common::raw(&url).await;
    let first = device_key(&raw).await;
    db.import("acme", "main", &state).await.expect("imported again");
    assert_ne!(device_key(&raw).await, first, "a new row");
    let rows: i64 = raw.query_one("SELECT count(*) FROM wa_sessions", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1, "one session, not two");

    // Nobody holds the imported device: the first node to ask takes it.
    let leases = Leases::new(db.clone(), "node-a", Duration::from_secs(60));
    let lease = leases.acquire("acme", "main").await.unwrap().expect("an imported device is free");
    let moved = DeviceState::new(db.clone(), &lease);

    // Values no trait reads back are copied as they are: the upload marks and the times.
    let uploaded: Vec<(i64, bool)> = raw
        .query("SELECT id, uploaded FROM wa_prekeys WHERE device = $1 ORDER BY id", &[&lease.id])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(uploaded, [(21, true), (22, false)]);
    let file_rows = rusqlite::Connection::open(&path).unwrap();
    for (table, column, moved_table) in [
        ("base_keys", "created_at", "wa_base_keys"),
        ("sent_messages", "created_at", "wa_sent_messages"),
        ("pending_inbound_messages", "inserted_at", "wa_pending_inbound"),
        ("sender_key_devices", "updated_at", "wa_sender_key_devices"),
    ] {
        let before: i64 =
            file_rows.query_row(&format!("SELECT min({column}) FROM {table}"), [], |row| row.get(0)).unwrap();
        let after: i64 = raw
            .query_one(&format!("SELECT min({column}) FROM {moved_table} WHERE device = $1"), &[&lease.id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(after, before, "{table}.{column}");
    }
    // (It takes the sent message: last.)
    conformance::assert_same_state(&file, &moved).await;

    // Once a node ran it, the file is older than the device's state: never copied over it.
    moved.put_session("15552100009.0", b"newer").await.expect("the node writes");
    let refused = db.import("acme", "main", &state).await;
    assert!(matches!(refused, Err(waedge_device_pg::Error::Run { .. })), "{refused:?}");
    assert_eq!(moved.get_session("15552100009.0").await.unwrap().as_deref(), Some(&b"newer"[..]), "untouched");
    assert!(!*moved.fenced().borrow(), "and its node runs on");
}

#[tokio::test]
async fn a_missing_file_or_one_without_a_device_has_nothing_to_move() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    assert!(SqliteState::read(&missing).await.unwrap().is_none());
    assert!(!missing.exists(), "reading does not create the file");

    let empty = dir.path().join("empty.db");
    let file = SqliteStore::new(empty.to_str().unwrap()).await.unwrap();
    assert!(!file.exists().await.unwrap());
    assert!(SqliteState::read(&empty).await.unwrap().is_none(), "a file whose device was never created");
    // A client started on it once, but no phone linked it: nothing worth moving.
    file.create().await.unwrap();
    assert!(file.exists().await.unwrap());
    assert!(SqliteState::read(&empty).await.unwrap().is_none(), "a device never linked");
}

/// The key of device `main` in the database.
async fn device_key(raw: &tokio_postgres::Client) -> i64 {
    raw.query_one("SELECT id FROM wa_devices WHERE device = 'main'", &[]).await.unwrap().get(0)
}

//! The conformance suite against whatsapp-rust's own SQLite store: the reference behaviour the
//! PostgreSQL backend is held to. If a check fails here, the check is wrong, not SQLite.
//!
//! Not run against `wacore::store::InMemoryBackend`: it deviates from SQLite where the suite
//! pins SQLite's behaviour (the checks `app_state_sync_keys`, `app_state_sync_key_validation`
//! and `lid_pn_mappings` fail on it; every other check passes):
//! - `get_latest_sync_key_id` returns the most recently *set* key id, not the greatest one;
//! - `get_sync_key` returns keys whose `key_data` is not 32 bytes (SQLite reads them as absent,
//!   and `get_latest_sync_key_id` skips them);
//! - `get_pn_mapping` returns the LID *put* last for the phone, not the greatest `updated_at`;
//! - re-putting a LID mapping overwrites `created_at` (SQLite keeps the first one).

mod conformance;

use tempfile::TempDir;
use whatsapp_rust::store::SqliteStore;

/// A new SQLite database file in its own temporary directory (kept alive by the `TempDir`).
fn database() -> (TempDir, String) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("device.db");
    let path = path.to_str().expect("temporary path is UTF-8").to_string();
    (dir, path)
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let (_dir, path) = database();
    let store = SqliteStore::new(&path).await.expect("open SQLite store");
    conformance::fresh(&store).await;
    conformance::all(&store).await;
}

#[tokio::test]
async fn sqlite_stores_for_two_devices_are_isolated() {
    let (_dir, path) = database();
    let first = SqliteStore::new_for_device(&path, 1).await.expect("open SQLite store for device 1");
    let second = SqliteStore::new_for_device(&path, 2).await.expect("open SQLite store for device 2");
    conformance::isolated(&first, &second).await;
}

//! The conformance suite against the PostgreSQL backend, on a server of the test's own: it
//! must behave as whatsapp-rust's SQLite store does (`tests/sqlite.rs` runs the same checks
//! there).

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use waedge_device_pg::{Database, DeviceState, Leases};
use waedge_test_postgres::Postgres;

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn postgres_state_conforms_and_devices_are_isolated() {
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap().expect("PostgreSQL starts");
    let db = Arc::new(Database::connect(&server.create_database().unwrap(), 2).await.expect("connects"));
    let leases = Leases::new(db.clone(), "node-a", Duration::from_secs(60));
    let state = |device: &'static str| {
        let (db, leases) = (db.clone(), &leases);
        async move { DeviceState::new(db, &leases.acquire("acme", device).await.unwrap().expect("a free device")) }
    };

    let main = state("main").await;
    conformance::fresh(&main).await;
    conformance::all(&main).await;
    conformance::isolated(&state("first").await, &state("second").await).await;
}

//! The conformance suite against the PostgreSQL backend, on a server of the test's own: it
//! must behave as whatsapp-rust's SQLite store does (`tests/sqlite.rs` runs the same checks
//! there).

mod common;
mod conformance;

use std::time::Duration;

use waedge_device_pg::{DeviceState, Leases};

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn postgres_state_conforms_and_devices_are_isolated() {
    let (_server, _url, db) = common::database().await;
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

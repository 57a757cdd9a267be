//! A pre-seeded (already linked) device logs in fast.

mod common;

use std::time::{Duration, Instant};

use common::{SELF_LID, SELF_PHONE, TestClient, start_sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_device_reaches_connected_quickly() {
    let sim = start_sim().await;
    let started = Instant::now();
    let c = TestClient::seeded(&sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "Connected took {took:?}");
    assert_eq!(c.client.pn().unwrap().user, SELF_PHONE);
    assert_eq!(c.client.lid().unwrap().user, SELF_LID);
    c.stop().await;
}

//! A restarted sim: same static key keeps IK working; a new key falls back to XX. An outage
//! (connections dropped, the servers' state kept) needs no new pre-keys.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{SELF_LID, SELF_PHONE, TestClient};
use wa_sim::{Pattern, SimConfig, WaSim, World};
use whatsapp_rust::types::events::Event;

fn config(listen: Option<SocketAddr>, key: [u8; 32]) -> SimConfig {
    let world = World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/worlds/demo.toml")).unwrap();
    let mut cfg = SimConfig::new(world);
    if let Some(listen) = listen {
        cfg.listen = listen;
    }
    cfg.noise_static_key = Some(key);
    cfg
}

fn addr_of(sim: &WaSim) -> SocketAddr {
    sim.ws_url().trim_start_matches("ws://").trim_end_matches("/ws/chat").parse().unwrap()
}

async fn restart_with(second_key: [u8; 32]) -> (WaSim, TestClient) {
    let first = WaSim::start(config(None, [7; 32])).await.unwrap();
    let addr = addr_of(&first);
    let c = TestClient::seeded(&first, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    assert_eq!(first.handshakes(Pattern::Xx), 1);
    first.shutdown().await;
    c.wait_for(5, "Disconnected", |e| matches!(e, Event::Disconnected(_)).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = WaSim::start(config(Some(addr), second_key)).await.unwrap();
    c.connected(15).await;
    (second, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_static_key_resumes_with_ik() {
    let (sim, c) = restart_with([7; 32]).await;
    assert_eq!(sim.handshakes(Pattern::Ik), 1);
    // The new sim knows none of the client's pre-keys: it asks for an upload at login,
    // after which contacts can message the device again.
    a_contact_writes_once_the_sim_has_the_pre_keys(&sim, &c, "after restart").await;
    c.stop().await;
}

/// A contact sends `text` to the device as soon as the sim holds the device's pre-keys (within
/// 10 s; the client uploads them after it reports connected), and the device receives it.
async fn a_contact_writes_once_the_sim_has_the_pre_keys(sim: &WaSim, c: &TestClient, text: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.send_text("15550002222", SELF_PHONE, text).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no pre-keys uploaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait_for(10, "the contact's text", |e| matches!(e, Event::Messages(_)).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_static_key_recovers_with_xx_fallback() {
    let (sim, c) = restart_with([9; 32]).await;
    assert_eq!(sim.handshakes(Pattern::XxFallback), 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_sqlite_store_logs_in_again_with_ik_after_client_restart() {
    let sim = WaSim::start(config(None, [7; 32])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db").display().to_string();

    let store = whatsapp_rust::store::SqliteStore::new(&db).await.unwrap();
    let first = TestClient::with_backend(&sim, Arc::new(store)).await;
    let qr = first
        .wait_for(10, "QR code", |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    sim.scan_qr(&qr, SELF_PHONE).await.unwrap();
    // Now and then the client waits out its app-state grace (~10 s) after pairing.
    first.connected(30).await;
    let device = first.client.pn().unwrap().device;
    first.stop().await;
    let ik_before = sim.handshakes(Pattern::Ik);

    let store = whatsapp_rust::store::SqliteStore::new(&db).await.unwrap();
    let second = TestClient::with_backend(&sim, Arc::new(store)).await;
    second.connected(10).await;
    assert_eq!(second.client.pn().unwrap().device, device);
    assert!(sim.handshakes(Pattern::Ik) > ik_before, "the restarted client resumes with IK");
    second.stop().await;
}

/// During an outage WhatsApp still holds the device's pre-keys and queues what is sent to it:
/// a contact's text sent while the front end is down is encrypted to a kept pre-key (a new sim
/// could not: see `same_static_key_resumes_with_ik`), and reaches the client when it is back,
/// over IK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_devices_pre_keys_and_queued_messages() {
    let mut sim = WaSim::start(config(None, [7; 32])).await.unwrap();
    let c = TestClient::seeded(&sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    a_contact_writes_once_the_sim_has_the_pre_keys(&sim, &c, "before").await;
    sim.stop_listening().await;
    c.wait_for(5, "Disconnected", |e| matches!(e, Event::Disconnected(_)).then_some(())).await;
    let sent = sim.send_text("15550002222", SELF_PHONE, "while you were away").await.expect("the device's pre-keys");
    assert_eq!(sent.devices, 1, "queued for the device");
    sim.listen_again().await.expect("the sim listens again on its address");
    // The offline drain of the next login brings it (before the client reports connected).
    let text = c
        .wait_for(20, "the queued text", |e| match e {
            Event::Messages(batch) => batch
                .messages
                .iter()
                .find_map(|m| m.message.conversation.clone().filter(|text| text == "while you were away")),
            _ => None,
        })
        .await;
    assert_eq!(text, "while you were away");
    assert_eq!((sim.handshakes(Pattern::Xx), sim.handshakes(Pattern::Ik)), (1, 1), "back over IK, counters kept");
    c.stop().await;
}

//! Fault injection as the real client experiences it.

mod common;

use std::time::{Duration, Instant};

use common::{SELF_LID, SELF_PHONE, TestClient, start_sim};
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::Event;

async fn connected_self(sim: &wa_sim::WaSim) -> TestClient {
    let c = TestClient::seeded(sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_reconnects() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    sim.drop_connections().await;
    c.wait_for(5, "Disconnected", |e| matches!(e, Event::Disconnected(_)).then_some(())).await;
    c.connected(10).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_delay_the_reconnect() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    sim.refuse_connections(Duration::from_secs(2)).await;
    let t = Instant::now();
    sim.drop_connections().await;
    c.connected(15).await;
    assert!(t.elapsed() >= Duration::from_secs(2), "reconnected while refusing");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_for_good() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    sim.log_out(SELF_PHONE).await;
    c.wait_for(5, "LoggedOut", |e| matches!(e, Event::LoggedOut(_)).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!c.client.is_connected(), "client reconnected after logout");
    c.stop().await;
    let again = TestClient::seeded(&sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    again.wait_for(5, "LoggedOut on connect", |e| matches!(e, Event::LoggedOut(_)).then_some(())).await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_stream_is_reported() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    sim.replace(SELF_PHONE).await;
    c.wait_for(5, "StreamReplaced", |e| matches!(e, Event::StreamReplaced(_)).then_some(())).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_iq_answers() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    sim.set_latency(Duration::from_millis(400));
    let t = Instant::now();
    c.client.contacts().get_user_info(&[Jid::pn("15550002222")]).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(400));
    sim.set_latency(Duration::ZERO);
    c.stop().await;
}

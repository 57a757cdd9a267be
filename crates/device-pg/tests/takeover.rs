//! The real whatsapp-rust client on the PostgreSQL state, against wa-sim: a device linked on
//! one node is taken over by another node, which logs in with the same session — no QR code,
//! no pairing — and answers lookups.

mod common;

use std::sync::Arc;
use std::time::Duration;

use wa_sim::{SimConfig, WaSim, World};
use waedge_device_pg::{Database, DeviceState, Lease, Leases};
use whatsapp_rust::http::UreqHttpClient;
use whatsapp_rust::store::persistence_manager::PersistenceManager;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::{ChannelEventHandler, Event, EventInterest, EventKind};
use whatsapp_rust::{Client, Jid, TokioRuntime};

/// The account the device links to, and a contact of the world fixture.
const SELF_PHONE: &str = "6285550000001";
const CONTACT: &str = "6281234567890";

/// A client of the device on `lease`'s state, running, with its events.
async fn client(sim: &WaSim, db: &Arc<Database>, lease: &Lease) -> (Arc<Client>, async_channel::Receiver<Arc<Event>>) {
    let state = Arc::new(DeviceState::new(db.clone(), lease));
    let persistence = Arc::new(PersistenceManager::new(state).await.expect("the state opens"));
    let client = Client::builder()
        .with_runtime(TokioRuntime)
        .with_http_client(UreqHttpClient::new())
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(sim.ws_url()))
        .with_version_override((2, 3000, 1))
        .with_persistence_manager(persistence)
        .build()
        .await
        .expect("a client")
        .into_client();
    let (handler, events) = ChannelEventHandler::new();
    client
        .subscribe(
            EventInterest::of(&[EventKind::PairingQrCode, EventKind::PairSuccess, EventKind::Connected]),
            handler,
        )
        .detach();
    let runner = client.clone();
    tokio::spawn(async move { runner.run().await });
    (client, events)
}

async fn next(events: &async_channel::Receiver<Arc<Event>>) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(30), events.recv()).await.expect("an event in time").expect("events")
}

async fn registered(client: &Client) -> bool {
    let found = client.contacts().is_on_whatsapp(&[Jid::pn(CONTACT)]).await.expect("the lookup answers");
    found.iter().any(|result| result.is_registered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn another_node_takes_a_linked_device_over_without_pairing() {
    let (_server, url, db_a) = common::database().await;
    let world = World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/fixtures/wa-world.toml"))
        .expect("the world fixture");
    let sim = WaSim::start(SimConfig::new(world)).await.expect("wa-sim starts");

    // Node A links the device by QR code.
    let node_a = Leases::new(db_a.clone(), "node-a", Duration::from_secs(30));
    let lease_a = node_a.acquire("acme", "main").await.unwrap().unwrap();
    let (client_a, events) = client(&sim, &db_a, &lease_a).await;
    let Event::PairingQrCode(qr) = &*next(&events).await else { panic!("an unlinked device shows a QR code first") };
    sim.scan_qr(&qr.code, SELF_PHONE).await.expect("the phone scans it");
    loop {
        if matches!(&*next(&events).await, Event::Connected(_)) {
            break;
        }
    }
    assert!(registered(&client_a).await);
    client_a.disconnect().await;
    node_a.release(&lease_a).await.unwrap();

    // Node B, with connections of its own, takes it over and logs in with the same session.
    let db_b = Arc::new(Database::connect(&url, 2).await.unwrap());
    let node_b = Leases::new(db_b.clone(), "node-b", Duration::from_secs(30));
    let lease_b = node_b.acquire("acme", "main").await.unwrap().expect("a released device is free");
    assert_eq!(lease_b.epoch, lease_a.epoch + 2, "the release and the takeover each moved the epoch on");
    let (client_b, events) = client(&sim, &db_b, &lease_b).await;
    match &*next(&events).await {
        Event::Connected(_) => {}
        other => panic!("the taken-over device logs in without pairing, got {other:?}"),
    }
    assert_eq!(client_b.pn().map(|jid| jid.user.clone()).as_deref(), Some(SELF_PHONE));
    assert!(registered(&client_b).await, "lookups work on the taken-over session");
    client_b.disconnect().await;
    sim.shutdown().await;
}

//! The sim's offline queue: a message waits for the device's acknowledgement; a device
//! that was offline gets it at its next login, and one that did not acknowledge it gets
//! the very same stanza again, until it does.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SELF_LID, SELF_PHONE, TestClient};
use wa_sim::{Sent, WaSim};
use whatsapp_rust::types::durability_hook::InboundMessage;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::{Client, InboundDurabilityHook};

/// The demo world's contact who writes to the self account.
const ALICE: &str = "15550002222";

/// A received message as the test compares it: id, text, whether it came offline.
type Received = (String, String, bool);

fn received(m: &InboundMessage) -> Received {
    (m.info.id.clone(), m.message.conversation.clone().unwrap_or_default(), m.info.is_offline)
}

/// Alice sends `text`; the device gets it whether online or not.
async fn alice_sends(sim: &WaSim, text: &str) -> Sent {
    let sent = sim.send_text(ALICE, SELF_PHONE, text).await.expect("Alice's text is sent");
    assert_eq!(sent.devices, 1, "one linked device of {SELF_PHONE}");
    sent
}

/// The next message batch the client dispatches.
async fn next_batch(c: &TestClient) -> Vec<Received> {
    c.wait_for(10, "Messages", |e| match e {
        Event::Messages(batch) => Some(batch.messages.iter().map(received).collect()),
        _ => None,
    })
    .await
}

/// The next login's offline drain: the count the sim announced in `<ib><offline count/>`
/// and the messages of the first `messages` the client dispatched.
async fn next_drain(c: &TestClient, messages: usize) -> (i32, Vec<Received>) {
    let (mut count, mut got) = (None, Vec::new());
    c.wait_for(20, "the offline drain", |e| {
        match e {
            Event::OfflineSyncCompleted(done) => count = Some(done.count),
            Event::Messages(batch) => got.extend(batch.messages.iter().map(received)),
            _ => {}
        }
        count.filter(|_| got.len() >= messages).map(|n| (n, got.clone()))
    })
    .await
}

/// Waits until `n` messages wait for an acknowledgement from the self account's devices.
async fn unacknowledged_becomes(sim: &WaSim, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.unacknowledged(SELF_PHONE) != n {
        assert!(tokio::time::Instant::now() < deadline, "{} unacknowledged, not {n}", sim.unacknowledged(SELF_PHONE));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops the device's connection; it reconnects after its backoff (about a second).
async fn reconnect(sim: &WaSim, c: &TestClient) {
    sim.drop_connections_of(SELF_PHONE).await;
    c.wait_for(5, "Disconnected", |e| matches!(e, Event::Disconnected(_)).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_sent_while_offline_arrive_once_at_the_next_login() {
    let sim = common::start_sim().await;
    let c = TestClient::seeded(&sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    let live = alice_sends(&sim, "while online").await;
    assert_eq!(next_batch(&c).await, [(live.id.clone(), "while online".to_owned(), false)]);
    unacknowledged_becomes(&sim, 0).await;

    sim.refuse_connections(Duration::from_secs(60)).await;
    reconnect(&sim, &c).await;
    let first = alice_sends(&sim, "while offline").await;
    let second = alice_sends(&sim, "still offline").await;
    assert_ne!(first.id, live.id);
    assert_ne!(second.id, first.id);
    assert_eq!(sim.unacknowledged(SELF_PHONE), 2);
    sim.refuse_connections(Duration::ZERO).await;

    // Only the unacknowledged texts are delivered, not the one acknowledged before; the
    // client acknowledges both with one receipt (`id` and `<list><item id/></list>`).
    let expected = vec![(first.id, "while offline".to_owned(), true), (second.id, "still offline".to_owned(), true)];
    assert_eq!(next_drain(&c, 2).await, (2, expected));
    unacknowledged_becomes(&sim, 0).await;
    reconnect(&sim, &c).await;
    assert_eq!(next_drain(&c, 0).await, (0, vec![]));
    c.stop().await;
}

/// A consumer's store that fails to commit the first batch it is given.
#[derive(Default)]
struct FailsOnce {
    /// Every message it was asked to commit: id and text.
    seen: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl InboundDurabilityHook for FailsOnce {
    async fn on_messages(&self, _: Arc<Client>, batch: &[InboundMessage]) -> anyhow::Result<()> {
        let mut seen = self.seen.lock().unwrap();
        let first = seen.is_empty();
        seen.extend(batch.iter().map(|m| (m.info.id.clone(), m.message.conversation.clone().unwrap_or_default())));
        if first { Err(anyhow::anyhow!("the store is down")) } else { Ok(()) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_the_client_did_not_acknowledge_is_delivered_again_at_the_next_login() {
    let sim = common::start_sim().await;
    let hook = Arc::new(FailsOnce::default());
    let c = TestClient::seeded_with_hook(&sim, SELF_PHONE, SELF_LID, 5, hook.clone()).await;
    c.connected(10).await;
    let sent = alice_sends(&sim, "keep me").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hook.seen.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the hook never saw the text");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The hook failed: the client holds its acknowledgement back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.unacknowledged(SELF_PHONE), 1);

    reconnect(&sim, &c).await;
    assert_eq!(next_drain(&c, 1).await, (1, vec![(sent.id.clone(), "keep me".to_owned(), true)]));
    let attempt = (sent.id, "keep me".to_owned());
    assert_eq!(*hook.seen.lock().unwrap(), [attempt.clone(), attempt]);
    unacknowledged_becomes(&sim, 0).await;
    c.stop().await;
}

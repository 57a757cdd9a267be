//! A linked device sends texts to world accounts: the sim fetches it what it needs
//! (device lists, pre-key bundles), decrypts with the recipient's devices, records the
//! text once per message id, acks (or nacks) it, and the recipient's phone answers with
//! delivery and read receipts.

mod common;

use std::time::Duration;

use common::{SELF_LID, SELF_PHONE, TestClient};
use wa_sim::{ReceivedText, SimError, WaSim};
use whatsapp_rust::Jid;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::send::SendOptions;
use whatsapp_rust::types::events::{Event, ServerAck};
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::waproto::whatsapp as wa;

/// The demo world's contact with two companion devices besides her phone.
const ALICE: &str = "15550002222";
const ALICE_LID: &str = "100000000000002";
/// The demo world's business account: its phone is its only device.
const ACME: &str = "15550004444";

async fn linked_client(sim: &WaSim) -> TestClient {
    let c = TestClient::seeded(sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    c
}

/// The client sends `text` to `to`; returns the message id.
async fn send(c: &TestClient, to: Jid, text: &str) -> String {
    c.client.send_text(to, text).await.expect("the client sends").message_id
}

/// The server's answer to the client's message `id`.
async fn server_ack(c: &TestClient, id: &str) -> ServerAck {
    c.wait_for(10, "ServerAck", |e| match e {
        Event::ServerAck(ack) if ack.id == id && ack.class.as_deref() == Some("message") => Some(ack.clone()),
        _ => None,
    })
    .await
}

/// The server's ack of the client's message `id` and the recipient's delivery receipt
/// for it, in whichever order the client reports them (it handles stanzas concurrently).
async fn acked_and_delivered(c: &TestClient, id: &str) -> ServerAck {
    let (mut ack, mut delivered) = (None, false);
    c.wait_for(10, "ServerAck and Delivered receipt", |e| {
        match e {
            Event::ServerAck(a) if a.id == id && a.class.as_deref() == Some("message") => ack = Some(a.clone()),
            Event::Receipt(r) if r.r#type == ReceiptType::Delivered && r.message_ids.iter().any(|m| m == id) => {
                assert!(!r.offline, "delivered live");
                delivered = true;
            }
            _ => {}
        }
        ack.clone().filter(|_| delivered)
    })
    .await
}

/// Waits for a receipt of type `kind` for message `id`; returns whether it came from
/// the offline queue.
async fn receipt(c: &TestClient, id: &str, kind: ReceiptType) -> bool {
    c.wait_for(10, &format!("{kind:?} receipt"), |e| match e {
        Event::Receipt(r) if r.r#type == kind && r.message_ids.iter().any(|m| m == id) => Some(r.offline),
        _ => None,
    })
    .await
}

/// The texts `phone` received, without their times (checked to be recent).
fn received(sim: &WaSim, phone: &str) -> Vec<ReceivedText> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    sim.received(phone)
        .into_iter()
        .map(|t| {
            assert!(t.at <= now && now - t.at < 60, "received at {}, now {now}", t.at);
            ReceivedText { at: 0, ..t }
        })
        .collect()
}

fn from_self(id: &str, text: &str, reply_to: Option<&str>) -> ReceivedText {
    ReceivedText {
        from_phone: SELF_PHONE.to_owned(),
        from_lid: SELF_LID.to_owned(),
        id: id.to_owned(),
        text: text.to_owned(),
        reply_to: reply_to.map(str::to_owned),
        quoted_author: None,
        at: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_to_a_contact_arrive_decrypted_acked_and_delivered() {
    let sim = common::start_sim().await;
    let c = linked_client(&sim).await;
    let first = send(&c, Jid::pn(ALICE), "hello Alice").await;
    let ack = acked_and_delivered(&c, &first).await;
    assert_eq!(ack.error, None);
    assert!(ack.timestamp.is_some(), "a message ack carries the server time");
    assert_eq!(ack.from.map(|j| j.user.to_string()).as_deref(), Some(ALICE));
    assert_eq!(received(&sim, ALICE), [from_self(&first, "hello Alice", None)]);

    // On the session the first text started (the client's pre-key message reuses it).
    let second = send(&c, Jid::pn(ALICE), "and a second one").await;
    assert_eq!(server_ack(&c, &second).await.error, None);
    // Addressed by LID, it reaches the same account.
    let third = send(&c, Jid::lid(ALICE_LID), "by LID").await;
    assert_eq!(server_ack(&c, &third).await.error, None);
    assert_eq!(
        received(&sim, ALICE),
        [
            from_self(&first, "hello Alice", None),
            from_self(&second, "and a second one", None),
            from_self(&third, "by LID", None)
        ]
    );
    assert!(sim.received(ACME).is_empty());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_continues_the_session_and_names_the_quoted_message() {
    let sim = common::start_sim().await;
    let c = linked_client(&sim).await;
    let question = sim.send_text(ACME, SELF_PHONE, "is the order right?").await.unwrap();
    c.wait_for(10, "Acme's text", |e| match e {
        Event::Messages(batch) => batch.messages.iter().any(|m| m.info.id == question.id).then_some(()),
        _ => None,
    })
    .await;

    // The client answers on the session Acme's phone started (a `msg`, no pre-key).
    for text in ["yes, all right", "thanks"] {
        let reply = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some(text.to_owned()),
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some(question.id.clone()),
                    participant: Some(format!("{ACME}@s.whatsapp.net")),
                    quoted_message: MessageField::some(wa::Message {
                        conversation: Some("is the order right?".to_owned()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = c.client.send_message(Jid::pn(ACME), reply).await.expect("the reply is sent").message_id;
        assert_eq!(server_ack(&c, &id).await.error, None);
        let quoting = ReceivedText {
            quoted_author: Some(format!("{ACME}@s.whatsapp.net")),
            ..from_self(&id, text, Some(&question.id))
        };
        assert_eq!(received(&sim, ACME).last(), Some(&quoting));
    }
    assert_eq!(sim.received(ACME).len(), 2);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_sent_twice_is_received_once() {
    let sim = common::start_sim().await;
    let c = linked_client(&sim).await;
    let text = wa::Message { conversation: Some("only once".to_owned()), ..Default::default() };
    for attempt in 1..=2 {
        let options = SendOptions::default().with_message_id("3EB0SIMSENDTWICE");
        let sent = c.client.send_message_with_options(Jid::pn(ALICE), text.clone(), options).await.expect("sent");
        assert_eq!(sent.message_id, "3EB0SIMSENDTWICE");
        assert_eq!(server_ack(&c, "3EB0SIMSENDTWICE").await.error, None, "attempt {attempt} is acked");
    }
    assert_eq!(received(&sim, ALICE), [from_self("3EB0SIMSENDTWICE", "only once", None)]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_message_is_not_received() {
    let sim = common::start_sim().await;
    let c = linked_client(&sim).await;
    sim.nack_next(ALICE, 463, 1);
    let refused = send(&c, Jid::pn(ALICE), "refused").await;
    let nack = server_ack(&c, &refused).await;
    assert_eq!(nack.error.as_deref(), Some("463"));
    assert!(sim.received(ALICE).is_empty());

    // Only the next message was refused.
    let taken = send(&c, Jid::pn(ALICE), "taken").await;
    assert_eq!(server_ack(&c, &taken).await.error, None);
    assert_eq!(received(&sim, ALICE), [from_self(&taken, "taken", None)]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipient_confirms_delivery_then_reading() {
    let sim = common::start_sim().await;
    let c = linked_client(&sim).await;
    let id = send(&c, Jid::pn(ALICE), "read me").await;
    assert!(!receipt(&c, &id, ReceiptType::Delivered).await);
    sim.read(ALICE, &id).unwrap();
    assert!(!receipt(&c, &id, ReceiptType::Read).await, "read live");
    assert!(matches!(sim.read(ALICE, "NOSUCHID"), Err(SimError::UnknownMessage { .. })));
    assert!(matches!(sim.read(ACME, &id), Err(SimError::UnknownMessage { .. })), "Acme did not get it");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_delivery_receipts_a_text_is_only_acked_and_a_read_receipt_waits_for_an_offline_device() {
    let sim = common::start_sim().await;
    let c = linked_client(&sim).await;
    sim.set_auto_delivery(ALICE, false);
    let id = send(&c, Jid::pn(ALICE), "no receipt yet").await;
    assert_eq!(server_ack(&c, &id).await.error, None);
    let delivered = tokio::time::timeout(Duration::from_secs(2), receipt(&c, &id, ReceiptType::Delivered)).await;
    assert!(delivered.is_err(), "Alice's phone sent no delivery receipt");
    assert_eq!(received(&sim, ALICE), [from_self(&id, "no receipt yet", None)]);

    // The device is offline when Alice reads it: the receipt waits in its queue.
    sim.refuse_connections(Duration::from_secs(60)).await;
    sim.drop_connections_of(SELF_PHONE).await;
    c.wait_for(5, "Disconnected", |e| matches!(e, Event::Disconnected(_)).then_some(())).await;
    sim.read(ALICE, &id).unwrap();
    sim.refuse_connections(Duration::ZERO).await;
    assert!(receipt(&c, &id, ReceiptType::Read).await, "the read receipt comes from the offline queue");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_text_reaches_every_member_under_the_senders_key_and_each_confirms_it() {
    let sim = common::start_sim().await;
    let c = linked_client(&sim).await;
    // "LID Club": Alice and Acme by LID; the sender key goes to each member's devices.
    let group: Jid = "120363000000000002@g.us".parse().unwrap();
    let first = send(&c, group.clone(), "hello club").await;
    let ack = acked_and_delivered(&c, &first).await;
    assert_eq!((ack.error, ack.from.map(|j| j.to_string())), (None, Some(group.to_string())));
    let second = send(&c, group, "same key, next message").await;
    acked_and_delivered(&c, &second).await;
    let texts = [from_self(&first, "hello club", None), from_self(&second, "same key, next message", None)];
    assert_eq!(received(&sim, ALICE), texts);
    assert_eq!(received(&sim, ACME), texts);
    assert!(sim.received("15550003333").is_empty(), "Bob is no member");
    c.stop().await;
}

//! Contacts of the world send texts to a linked device; the client decrypts them and
//! learns the sender's push name.

mod common;

use common::{SELF_LID, SELF_PHONE, TestClient, start_sim};
use whatsapp_rust::types::events::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_text_arrives_with_push_name() {
    let sim = start_sim().await;
    let c = TestClient::seeded(&sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    assert!(matches!(sim.send_text(SELF_PHONE, SELF_PHONE, "me").await, Err(wa_sim::SimError::SelfMessage)));
    for text in ["hello from Alice", "and again"] {
        let sent = sim.send_text("15550002222", SELF_PHONE, text).await.unwrap();
        assert_eq!(sent.devices, 1);
        let (id, body, push_name, sender) = c
            .wait_for(10, "Messages", |e| match e {
                Event::Messages(batch) => batch.messages.first().map(|m| {
                    let (info, body) = (&m.info, m.message.conversation.clone());
                    (info.id.clone(), body, info.push_name.clone(), info.source.sender.user.to_string())
                }),
                _ => None,
            })
            .await;
        assert_eq!(id, sent.id);
        assert_eq!(body.as_deref(), Some(text));
        assert_eq!(push_name, "Alice");
        assert!(sender == "15550002222" || sender == "100000000000002", "{sender}");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lid_only_contact_writes_from_its_lid_without_its_number() {
    let sim = start_sim().await;
    let c = TestClient::seeded(&sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    let sent = sim.send_text("15550005555", SELF_PHONE, "it is me, Carol").await.unwrap();
    let (id, body, sender, sender_alt) = c
        .wait_for(10, "Messages", |e| match e {
            Event::Messages(batch) => batch.messages.first().map(|m| {
                let source = &m.info.source;
                (
                    m.info.id.clone(),
                    m.message.conversation.clone(),
                    source.sender.to_string(),
                    source.sender_alt.clone(),
                )
            }),
            _ => None,
        })
        .await;
    assert_eq!((id, body.as_deref()), (sent.id, Some("it is me, Carol")), "the client decrypts a LID-addressed pkmsg");
    assert_eq!(sender, "100000000000005@lid");
    assert_eq!(sender_alt, None, "WhatsApp gave no phone number with it");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_text_arrives_under_the_senders_key_addressed_as_the_group_is() {
    let sim = start_sim().await;
    let c = TestClient::seeded(&sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    let outsiders = sim.send_group_text("15550002222", "120363000000000003", "not for you").await;
    assert!(matches!(outsiders, Err(wa_sim::SimError::NoReceivingDevice(_))), "{outsiders:?}");
    let stranger = sim.send_group_text("15550004444", "120363000000000001", "hi").await;
    assert!(matches!(stranger, Err(wa_sim::SimError::NotAMember { .. })), "{stranger:?}");
    for (group, text, sender, alt) in [
        ("120363000000000001", "hello team", "15550002222@s.whatsapp.net", "100000000000002@lid"),
        ("120363000000000001", "and again, same key", "15550002222@s.whatsapp.net", "100000000000002@lid"),
        ("120363000000000002", "hello club", "100000000000002@lid", "15550002222@s.whatsapp.net"),
    ] {
        let sent = sim.send_group_text("15550002222", group, text).await.unwrap();
        assert_eq!(sent.devices, 1);
        let got = c
            .wait_for(10, "Messages", |e| match e {
                Event::Messages(batch) => batch.messages.first().map(|m| {
                    let source = &m.info.source;
                    let alt = source.sender_alt.as_ref().map(|j| j.to_string());
                    (
                        m.info.id.clone(),
                        m.message.conversation.clone(),
                        source.chat.to_string(),
                        source.sender.to_string(),
                        alt,
                    )
                }),
                _ => None,
            })
            .await;
        let expected =
            (sent.id, Some(text.to_owned()), format!("{group}@g.us"), sender.to_owned(), Some(alt.to_owned()));
        assert_eq!(got, expected);
    }
    c.stop().await;
}

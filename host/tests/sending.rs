//! A tenant's user sends a text through the devices API (`POST /devices/{id}/messages`) and
//! watches it go: WhatsApp (wa-sim) decrypts the same text for the recipient, the server's ack
//! and the recipient's receipts move its status (`GET /devices/{id}/messages/{message_id}`)
//! forward, each change a `message.status` event; the same `Idempotency-Key` never sends
//! twice, not even across a `kill -9`; a message the server refuses is `failed` with its code.
//!
//! Needs a test build (`wa-sim` feature); `cargo test --workspace` has it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::linked::Linked;
use support::{Reply, SELF_PHONE};

/// John Doe in the world: his phone number.
const JOHN: &str = "6281234567890";
const JOHN_JID: &str = "6281234567890@s.whatsapp.net";

async fn send(linked: &Linked, token: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    linked.waedge.api_post("/devices/main/messages", token, &body, headers).await
}

/// Waits up to `seconds` for the message `id` to reach `status`; returns it as the API shows it.
async fn wait_for_status(linked: &Linked, token: &str, id: &str, status: &str, seconds: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let reply = linked.waedge.api(&format!("/devices/main/messages/{id}"), token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if reply.json["data"]["status"] == status {
            return reply.json["data"].clone();
        }
        assert!(Instant::now() < deadline, "message {id} is not {status} after {seconds} s: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What John's account has received, once it has `count` messages (waiting up to 10 s, then
/// a moment more for any extra one to show).
async fn received_by_john(linked: &Linked, count: usize) -> Vec<wa_sim::ReceivedText> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while linked.sim.received(JOHN).len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = linked.sim.received(JOHN);
    assert_eq!(got.len(), count, "{got:#?}");
    got
}

/// The `message.status` events of `acme`: (message id, status, error code), in order.
async fn statuses(linked: &Linked) -> Vec<(String, String, Value)> {
    let events = linked.events(100).await;
    let statuses = events.iter().filter(|e| e["type"] == "message.status");
    statuses
        .map(|e| {
            assert_eq!((&e["chat"], &e["data"]["to"]), (&json!(JOHN_JID), &json!(JOHN_JID)), "{e}");
            let data = &e["data"];
            (
                data["message_id"].as_str().unwrap().to_string(),
                data["status"].as_str().unwrap().to_string(),
                data["error_code"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_text_reaches_the_recipient_and_its_status_follows_the_ack_and_the_receipts() {
    let (linked, token) = Linked::serving_devices_api().await;
    linked.sim.set_auto_delivery(JOHN, false);
    let sent = send(&linked, &token, json!({ "to": JOHN, "text": "hello John" }), &[]).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let message = &sent.json["data"];
    let id = message["id"].as_str().expect("a message id");
    assert_eq!(message["to"], JOHN_JID, "{message}");
    assert!(message["status"] == "pending" || message["status"] == "sent", "{message}");
    assert_eq!(message["error_code"], Value::Null);

    let got = received_by_john(&linked, 1).await;
    assert_eq!((got[0].id.as_str(), got[0].text.as_str(), got[0].from_phone.as_str()), (id, "hello John", SELF_PHONE));
    assert_eq!(got[0].reply_to, None);

    // The server's ack, then John's phone's receipts.
    wait_for_status(&linked, &token, id, "sent", 10).await;
    linked.sim.set_auto_delivery(JOHN, true);
    let again = send(&linked, &token, json!({ "to": JOHN, "text": "and again" }), &[]).await;
    let second = again.json["data"]["id"].as_str().expect("a second message id").to_string();
    wait_for_status(&linked, &token, &second, "delivered", 10).await;
    linked.sim.read(JOHN, &second).expect("John reads it");
    let read = wait_for_status(&linked, &token, &second, "read", 10).await;
    assert!(read["updated_at"].as_str() >= read["created_at"].as_str(), "{read}");

    // Each change once, in order. The phone's receipt may overtake the server's ack (the client
    // handles stanzas concurrently): a status never moves back, so that ack is then no change.
    let changes = statuses(&linked).await;
    let of = |message: &str| -> Vec<String> {
        changes.iter().filter(|(id, _, code)| id == message && code.is_null()).map(|(_, s, _)| s.clone()).collect()
    };
    assert_eq!(of(id), ["sent"], "{changes:?}");
    let second_changes = of(&second);
    assert!(second_changes == ["sent", "delivered", "read"] || second_changes == ["delivered", "read"], "{changes:?}");
    assert_eq!(changes.len(), 1 + second_changes.len(), "{changes:?}");
    // A message the device did not send is not found.
    let unknown = linked.waedge.api("/devices/main/messages/3EB0FFFFFFFFFFFFFFFFFFFF", &token).await;
    assert_eq!(
        (unknown.status, &unknown.json["error"]["code"]),
        (404, &json!("MESSAGE_NOT_FOUND")),
        "{}",
        unknown.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_sends_once_even_across_a_crash() {
    let (linked, token) = Linked::serving_devices_api().await;
    let body = json!({ "to": format!("+{JOHN}"), "text": "your order 17 has shipped" });
    let key = [("idempotency-key", "order-17-shipped")];
    let first = send(&linked, &token, body.clone(), &key).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let id = first.json["data"]["id"].as_str().expect("a message id").to_string();
    let retry = send(&linked, &token, body.clone(), &key).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.json["data"]["id"], id.as_str());
    assert_eq!(retry.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let other = send(&linked, &token, json!({ "to": JOHN, "text": "something else" }), &key).await;
    assert_eq!((other.status, &other.json["error"]["code"]), (422, &json!("IDEMPOTENCY_KEY_REUSED")), "{}", other.text);

    let linked = linked.crash_and_restart(async |_| {}).await;
    let after_crash = send(&linked, &token, body, &key).await;
    assert_eq!((after_crash.status, &after_crash.json["data"]["id"]), (200, &json!(id)), "{}", after_crash.text);
    // Two requests with a new key at once: one sends, the other waits for it and answers the
    // same message.
    let twin = [("idempotency-key", "order-18-shipped")];
    let body18 = json!({ "to": JOHN, "text": "your order 18 has shipped" });
    let (a, b) = tokio::join!(send(&linked, &token, body18.clone(), &twin), send(&linked, &token, body18, &twin));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 202], "{} {}", a.text, b.text);
    assert_eq!(a.json["data"]["id"], b.json["data"]["id"]);
    let id18 = a.json["data"]["id"].as_str().unwrap().to_string();
    // Without a key, the same body is a new message.
    let unkeyed = send(&linked, &token, json!({ "to": JOHN, "text": "hi" }), &[]).await;
    let twice = send(&linked, &token, json!({ "to": JOHN, "text": "hi" }), &[]).await;
    assert_eq!((unkeyed.status, twice.status), (202, 202));
    let got: Vec<_> = received_by_john(&linked, 4).await.into_iter().map(|r| (r.id, r.text)).collect();
    let ids = [&id, &id18, unkeyed.json["data"]["id"].as_str().unwrap(), twice.json["data"]["id"].as_str().unwrap()];
    let expected =
        [(ids[0], "your order 17 has shipped"), (ids[1], "your order 18 has shipped"), (ids[2], "hi"), (ids[3], "hi")];
    assert_eq!(got, expected.map(|(id, text)| (id.to_string(), text.to_string())), "each keyed one sent once");
    assert_ne!(ids[2], ids[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whatsapp_refuses_is_failed_with_its_code() {
    let (linked, token) = Linked::serving_devices_api().await;
    linked.sim.nack_next(JOHN, 463, 1);
    let sent = send(&linked, &token, json!({ "to": JOHN, "text": "refused" }), &[]).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let id = sent.json["data"]["id"].as_str().expect("a message id").to_string();
    let failed = wait_for_status(&linked, &token, &id, "failed", 10).await;
    assert_eq!(failed["error_code"], "463", "{failed}");
    received_by_john(&linked, 0).await;
    assert_eq!(statuses(&linked).await, [(id, "failed".to_string(), json!("463"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_quotes_the_message_it_answers() {
    let (linked, token) = Linked::serving_devices_api().await;
    let question = linked.sim.send_text(JOHN, SELF_PHONE, "is it in stock?").await.expect("John asks");
    linked.wait_for_events(1, 10).await;
    let body = json!({ "to": JOHN, "text": "yes, 3 left", "reply_to": question.id });
    let reply = send(&linked, &token, body, &[]).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let got = received_by_john(&linked, 1).await;
    assert_eq!((got[0].text.as_str(), got[0].reply_to.as_deref()), ("yes, 3 left", Some(question.id.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_to_a_group_reaches_its_members_and_a_reply_quotes_a_members_message() {
    let (linked, token) = Linked::serving_devices_api().await;
    let group = "120363406798553856@g.us";
    let sent = send(&linked, &token, json!({ "to": group, "text": "hello group" }), &[]).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let id = sent.json["data"]["id"].as_str().expect("a message id").to_string();
    assert_eq!(sent.json["data"]["to"], group);
    let got = received_by_john(&linked, 1).await;
    assert_eq!(
        (got[0].id.as_str(), got[0].text.as_str(), got[0].from_phone.as_str()),
        (&*id, "hello group", SELF_PHONE)
    );
    wait_for_status(&linked, &token, &id, "delivered", 10).await;

    // John writes in the group; the device answers him there.
    let his = linked.sim.send_group_text(JOHN, "120363406798553856", "who is there?").await.expect("John writes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !linked.events(100).await.iter().any(|e| e["data"]["message_id"] == his.id.as_str()) {
        assert!(Instant::now() < deadline, "John's group text is not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = send(&linked, &token, json!({ "to": group, "text": "we are", "reply_to": his.id }), &[]).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let got = received_by_john(&linked, 2).await;
    let quoted = (got[1].reply_to.as_deref(), got[1].quoted_author.as_deref());
    assert_eq!((got[1].text.as_str(), quoted), ("we are", (Some(his.id.as_str()), Some(JOHN_JID))), "John's, by him");
    // A group the device's account is not a member of: WhatsApp refuses it, and nothing is kept.
    let outside = send(&linked, &token, json!({ "to": "120363000000000001@g.us", "text": "hi" }), &[]).await;
    assert_eq!((outside.status, &outside.json["error"]["code"]), (403, &json!("FORBIDDEN")), "{}", outside.text);
}

/// The keyword auto-responder (`components/examples/auto-responder`), an event handler:
/// subscribed to acme's received messages, it answers the one carrying a keyword with the
/// tenant's reply for it, as a reply, once — and leaves the others alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_responder_answers_a_keyword_once() {
    let linked = Linked::start().await;
    let (waedge, admin) = (&linked.waedge, linked.admin_token.as_str());
    let responder = waedge_e2e::guests::get("auto-responder").to_vec();
    waedge.deploy(admin, "acme", "auto-responder", responder).await;
    let settings = json!({ "settings": { "auto-reply.hours": "We are open 9-17, Monday to Friday." } });
    waedge.admin_expect(reqwest::Method::PATCH, "/v1/tenants/acme", admin, settings, 200).await;
    let subscription = json!({ "url": "component:auto-responder", "events": ["message.received"] });
    let webhooks = "/v1/tenants/acme/webhooks";
    let created = waedge.admin_expect(reqwest::Method::POST, webhooks, admin, subscription, 201).await;

    linked.sim.send_text(JOHN, SELF_PHONE, "hello there").await.expect("John greets");
    let question = linked.sim.send_text(JOHN, SELF_PHONE, "What are your HOURS?").await.expect("John asks");
    let got = received_by_john(&linked, 1).await;
    assert_eq!(
        (got[0].text.as_str(), got[0].reply_to.as_deref()),
        ("We are open 9-17, Monday to Friday.", Some(question.id.as_str()))
    );
    // Both events were handled at their first attempt; the greeting got no answer.
    let path = format!("/v1/tenants/acme/webhooks/{}/deliveries", created["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let deliveries = loop {
        let deliveries = waedge.admin(reqwest::Method::GET, &path, admin, Value::Null).await.json["deliveries"].clone();
        if deliveries.as_array().is_some_and(|d| d.len() >= 2) || Instant::now() > deadline {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let outcomes: Vec<Value> =
        deliveries.as_array().unwrap().iter().map(|d| json!([d["attempt"], d["error"]])).collect();
    assert_eq!(outcomes, [json!([1, null]), json!([1, null])], "{deliveries:#}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(linked.sim.received(JOHN).len(), 1, "one answer, to the keyword only");
}

//! Verified LID ↔ phone links, against wa-sim and the real binary: a tenant's user asks the
//! devices API to send a one-time code to Lena's number (`POST /devices/{id}/lid-verifications`);
//! Lena writes by LID only, so WhatsApp never says which LID her number has. Only her LID
//! answering with the right code links the two — a wrong code, or the right code from an
//! account WhatsApp says has another number, links nothing — and the link shows in the
//! verification, in `GET /devices/{id}/lid-links`, in her profile and as one `contact.linked`
//! event, committed with her answer, also across a `kill -9`.
//!
//! Needs a test build (`wa-sim` feature); `cargo test --workspace` has it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::linked::Linked;
use support::{Reply, SELF_PHONE};

/// Lena, who writes by LID only.
const LENA: &str = "447700900123";
const LENA_JID: &str = "447700900123@s.whatsapp.net";
const LENA_LID: &str = "7700900000000123@lid";

/// John Doe, who writes with his number.
const JOHN: &str = "6281234567890";

/// Starts a verification of Lena's number; returns it as the API shows it and the code her
/// phone received.
async fn start_verification(linked: &Linked, token: &str) -> (Value, String) {
    let before = linked.sim.received(LENA).len();
    let body = json!({ "phone": format!("+{LENA}"), "text": "Acme here. Your code: {code}" });
    let started = linked.waedge.api_post("/devices/main/lid-verifications", token, &body, &[]).await;
    assert_eq!(started.status, 202, "{}", started.text);
    let verification = started.json["data"].clone();
    assert_eq!((&verification["phone_jid"], &verification["state"]), (&json!(LENA_JID), &json!("pending")));
    assert_eq!((&verification["lid"], &verification["linked_at"]), (&Value::Null, &Value::Null));
    assert!(!started.text.contains("Your code"), "the answer never shows the code: {}", started.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    while linked.sim.received(LENA).len() == before {
        assert!(Instant::now() < deadline, "Lena's phone got no code");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = linked.sim.received(LENA).pop().expect("the code's message");
    assert_eq!(got.id, verification["message_id"].as_str().unwrap(), "the message that carries the code");
    let code = got.text.strip_prefix("Acme here. Your code: ").expect("the text with the code in place").to_string();
    assert!(code.len() == 9 && code.as_bytes()[4] == b'-', "{code}");
    (verification, code)
}

async fn verification(linked: &Linked, token: &str, id: &str) -> Value {
    let reply = linked.waedge.api(&format!("/devices/main/lid-verifications/{id}"), token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["data"].clone()
}

async fn link_of(linked: &Linked, token: &str, jid: &str) -> Reply {
    linked.waedge.api(&format!("/devices/main/lid-links?jid={}", jid.replace('@', "%40")), token).await
}

/// Waits until `acme` has recorded `count` received messages; returns every event.
async fn after_received(linked: &Linked, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = linked.all_events(100).await;
        if events.iter().filter(|e| e["type"] == "message.received").count() >= count {
            return events;
        }
        assert!(Instant::now() < deadline, "{count} received messages are not recorded: {events:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn linked_events(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["type"] == "contact.linked").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lid_that_answers_the_right_code_is_linked_to_the_number() {
    let (linked, token) = Linked::serving_devices_api().await;
    let (started, code) = start_verification(&linked, &token).await;
    let id = started["id"].as_str().unwrap();

    // A wrong code from Lena, and the right one from John (a forwarded code): WhatsApp says
    // John has another number.
    linked.sim.send_text(LENA, SELF_PHONE, "is it ZZZZ-9999?").await.expect("Lena writes");
    linked.sim.send_text(JOHN, SELF_PHONE, &format!("Lena sent me {code}")).await.expect("John writes");
    let events = after_received(&linked, 2).await;
    let lena = events.iter().find(|e| e["data"]["message"]["text"] == "is it ZZZZ-9999?").expect("Lena's message");
    assert_eq!(lena["data"]["sender"], json!({ "jid": LENA_LID, "type": "user", "lid": LENA_LID, "phone_jid": null }));
    assert!(linked_events(&events).is_empty(), "{events:#?}");
    assert_eq!(verification(&linked, &token, id).await["state"], "pending");
    let none = link_of(&linked, &token, LENA_LID).await;
    assert_eq!((none.status, &none.json["error"]["code"]), (404, &json!("LINK_NOT_FOUND")), "{}", none.text);

    // Lena answers with the code as people do: in lower case, without the dash.
    let answer = format!("ok: {}", code.replace('-', "").to_lowercase());
    linked.sim.send_text(LENA, SELF_PHONE, &answer).await.expect("Lena answers");
    let events = after_received(&linked, 3).await;
    let linked_now = linked_events(&events);
    assert_eq!(linked_now.len(), 1, "{events:#?}");
    let event = linked_now[0];
    assert_eq!((&event["chat"], &event["device"]), (&json!(""), &json!("main")), "a device's own event");
    let answered = events.iter().find(|e| e["data"]["message"]["text"] == answer.as_str()).expect("the answer");
    assert_eq!(
        event["data"],
        json!({ "lid": LENA_LID, "phone_jid": LENA_JID, "verification_id": id,
                "code_message_id": started["message_id"], "answer_message_id": answered["data"]["message_id"],
                "previous_phone_jid": null, "confirmed_by_whatsapp": false })
    );
    let done = verification(&linked, &token, id).await;
    assert_eq!((&done["state"], &done["lid"]), (&json!("linked"), &json!(LENA_LID)), "{done}");

    for jid in [LENA_LID, LENA_JID, LENA] {
        let link = link_of(&linked, &token, jid).await;
        assert_eq!(link.status, 200, "{jid}: {}", link.text);
        let data = &link.json["data"];
        assert_eq!(
            (&data["lid"], &data["phone_jid"], &data["device"]),
            (&json!(LENA_LID), &json!(LENA_JID), &json!("main"))
        );
        assert_eq!(data["verification_id"], id);
    }
    let profile =
        linked.waedge.api(&format!("/devices/main/profile?jid={}", LENA_LID.replace('@', "%40")), &token).await;
    assert_eq!(profile.status, 200, "{}", profile.text);
    let shown = &profile.json["data"]["profile"];
    assert_eq!(shown["verified_link"]["phone_jid"], LENA_JID, "{shown}");
    assert_eq!(shown.get("phone_jid"), None, "WhatsApp still disclosed nothing: {shown}");

    // The code was good once: sent again, it links nothing new.
    linked.sim.send_text(LENA, SELF_PHONE, &code).await.expect("Lena repeats it");
    let events = after_received(&linked, 4).await;
    assert_eq!(linked_events(&events).len(), 1, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_delivered_again_after_a_crash_links_once() {
    let (linked, token) = Linked::serving_devices_api().await;
    let (started, code) = start_verification(&linked, &token).await;
    // Lena answers while the gateway is down: WhatsApp delivers the answer at its next login.
    let linked = linked
        .crash_and_restart(async |sim| {
            sim.send_text(LENA, SELF_PHONE, &code).await.expect("Lena answers");
        })
        .await;
    let events = after_received(&linked, 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut events = events;
    while linked_events(&events).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        events = linked.all_events(100).await;
    }
    let token = token.as_str();
    assert_eq!(linked_events(&events).len(), 1, "{events:#?}");
    assert_eq!(verification(&linked, token, started["id"].as_str().unwrap()).await["state"], "linked");
    // Once more after another crash: nothing new.
    let linked = linked.crash_and_restart(async |_| {}).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(linked_events(&linked.all_events(100).await).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_gets_three_codes_an_hour_and_a_code_goes_only_to_a_number() {
    let (linked, token) = Linked::serving_devices_api().await;
    for _ in 0..3 {
        start_verification(&linked, &token).await;
    }
    let body = json!({ "phone": LENA });
    let refused = linked.waedge.api_post("/devices/main/lid-verifications", &token, &body, &[]).await;
    assert_eq!((refused.status, &refused.json["error"]["code"]), (429, &json!("RATE_LIMITED")), "{}", refused.text);
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3_500..=3_600).contains(&wait), "{wait}");
    assert_eq!(linked.sim.received(LENA).len(), 3, "nothing was sent");

    for (body, code) in [
        (json!({ "phone": LENA_LID }), "VALIDATION_ERROR"),
        (json!({ "phone": JOHN, "text": "no placeholder" }), "VALIDATION_ERROR"),
        (json!({ "phone": JOHN, "ttl_seconds": 59 }), "VALIDATION_ERROR"),
        (json!({ "phone": JOHN, "code": "ABCD-1234" }), "VALIDATION_ERROR"),
    ] {
        let refused = linked.waedge.api_post("/devices/main/lid-verifications", &token, &body, &[]).await;
        assert_eq!((refused.status, &refused.json["error"]["code"]), (400, &json!(code)), "{body}: {}", refused.text);
    }
    let unknown = linked.waedge.api("/devices/main/lid-verifications/01JEV7K3X9Q2M4N5P6R7S8T9VW", &token).await;
    assert_eq!((unknown.status, &unknown.json["error"]["code"]), (404, &json!("VERIFICATION_NOT_FOUND")));
}

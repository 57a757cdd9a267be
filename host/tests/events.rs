//! Messages WhatsApp delivers to a device become its tenant's events, recorded before
//! WhatsApp is told they arrived: listed by the admin API in order, each with a stable id, a
//! number in its chat (a user's or a group's), and both the LID and the phone JID of its
//! sender when WhatsApp gave them; and a `kill -9` at any moment loses none and records none twice.
//!
//! Needs a test build (`wa-sim` feature); `cargo test --workspace` has it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::linked::{Linked, is_message_event};
use support::{SELF_PHONE, cli_ok, read_events};

/// John Doe in the world: his phone and his LID.
const JOHN: &str = "6281234567890";
const JOHN_LID: &str = "1234567890987654321@lid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_device_is_an_event_with_both_jids_of_its_sender() {
    let linked = Linked::start().await;
    let sent = linked.sim.send_text(JOHN, SELF_PHONE, "hi").await.expect("John Doe sends a text");

    let events = linked.wait_for_events(1, 10).await;
    let event = &events[0];
    let id = event["id"].as_str().expect("an event id");
    assert!(id.len() == 26 && id.chars().all(|c| c.is_ascii_alphanumeric()), "a ULID: {id}");
    assert!(event["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{event}");
    let john = json!({ "jid": "6281234567890@s.whatsapp.net", "type": "user", "lid": JOHN_LID,
                       "phone_jid": "6281234567890@s.whatsapp.net" });
    assert_eq!(
        event,
        &json!({
            "id": id,
            "type": "message.received",
            "tenant": "acme",
            "device": "main",
            "chat": "6281234567890@s.whatsapp.net",
            "seq": 1,
            "at": event["at"],
            "data": {
                "message_id": sent.id,
                "chat": john,
                "sender": john,
                "from_me": false,
                "push_name": "John Doe",
                "offline": false,
                "message": { "kind": "text", "text": "hi", "reply_to": null },
            },
        })
    );

    // The next message of the chat is number 2, and paging gives the same list.
    linked.sim.send_text(JOHN, SELF_PHONE, "are you there?").await.expect("a second text");
    let events = linked.wait_for_events(2, 10).await;
    assert_eq!((events[1]["seq"].as_u64(), &events[1]["data"]["message"]["text"]), (Some(2), &json!("are you there?")));
    assert_eq!(linked.events(1).await, events, "one page at a time, the same events");
    // The CLI lists the same.
    let admin = (linked.waedge.admin.as_str(), linked.admin_token.as_str());
    let listed: Value = serde_json::from_str(&cli_ok(&["event", "list", "acme", "--json"], Some(admin))).unwrap();
    let listed: Vec<Value> =
        listed["events"].as_array().unwrap().iter().filter(|e| is_message_event(e)).cloned().collect();
    assert_eq!(listed, events);
    let table = cli_ok(&["event", "list", "acme", "--after", id], Some(admin));
    assert!(table.contains("message.received") && table.contains(events[1]["id"].as_str().unwrap()), "{table}");
    assert!(!table.contains(id), "only the events after --after: {table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_text_is_an_event_of_the_group_with_both_jids_of_its_sender() {
    let linked = Linked::start().await;
    let group = "120363406798553856@g.us";
    let first = linked.sim.send_group_text(JOHN, "120363406798553856", "hello group").await.expect("John writes");
    let second = linked.sim.send_text(JOHN, SELF_PHONE, "and to you alone").await.expect("and directly");
    let third = linked.sim.send_group_text(JOHN, "120363406798553856", "again").await.expect("John again");

    let events = linked.wait_for_events(3, 10).await;
    let john = json!({ "jid": "6281234567890@s.whatsapp.net", "type": "user", "lid": JOHN_LID,
                       "phone_jid": "6281234567890@s.whatsapp.net" });
    // Chats are taken in concurrently: only the order within each chat is kept.
    let mut summary: Vec<(&Value, u64, &Value, &Value, &Value)> = events
        .iter()
        .map(|e| {
            (&e["chat"], e["seq"].as_u64().unwrap(), &e["data"]["message_id"], &e["data"]["chat"], &e["data"]["sender"])
        })
        .collect();
    summary.sort_by_key(|(chat, seq, ..)| (chat.to_string(), *seq));
    let group_chat = json!({ "jid": group, "type": "group" });
    let john_jid = json!("6281234567890@s.whatsapp.net");
    assert_eq!(
        summary,
        [
            (&json!(group), 1, &json!(first.id), &group_chat, &john),
            (&json!(group), 2, &json!(third.id), &group_chat, &john),
            (&john_jid, 1, &json!(second.id), &john, &john),
        ],
        "each chat numbered on its own"
    );
    let hello = events.iter().find(|e| e["data"]["message_id"] == first.id.as_str()).expect("the first group text");
    assert_eq!(hello["data"]["message"], json!({ "kind": "text", "text": "hello group", "reply_to": null }));
    assert_eq!(hello["data"]["push_name"], "John Doe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_renamed_is_an_event_of_the_group_once() {
    let linked = Linked::start().await;
    // A text of John's first: it gives the device his LID with his number.
    linked.sim.send_text(JOHN, SELF_PHONE, "I will rename our group").await.expect("John writes");
    linked.wait_for_events(1, 10).await;
    let group = "120363406798553856@g.us";
    let id = linked.sim.rename_group(JOHN, "120363406798553856", "Bikes & Friends").expect("John renames it");
    let deadline = Instant::now() + Duration::from_secs(10);
    let updates = loop {
        let events = linked.all_events(100).await;
        let updates: Vec<Value> = events.into_iter().filter(|e| e["type"] == "group.updated").collect();
        if !updates.is_empty() || Instant::now() > deadline {
            break updates;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(updates.len(), 1, "{updates:#?} ({id})");
    let john = json!({ "jid": "6281234567890@s.whatsapp.net", "type": "user", "lid": JOHN_LID,
                       "phone_jid": "6281234567890@s.whatsapp.net" });
    assert_eq!((&updates[0]["chat"], &updates[0]["seq"]), (&json!(group), &json!(1)));
    assert_eq!(
        updates[0]["data"],
        json!({ "group": { "jid": group, "type": "group" }, "by": john,
                "action": { "kind": "subject", "subject": "Bikes & Friends" } })
    );
    // Acknowledged: a restart does not bring it again.
    let linked = linked.crash_and_restart(async |_| {}).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = linked.all_events(100).await;
    assert_eq!(events.iter().filter(|e| e["type"] == "group.updated").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_push_name_is_an_event_once_and_profiles_show_it_after_a_restart() {
    let (linked, token) = Linked::serving_devices_api().await;
    let names = |events: &[Value]| -> Vec<Value> {
        events.iter().filter(|e| e["type"] == "contact.name").map(|e| json!([e["chat"], e["data"]])).collect()
    };
    for text in ["hi", "hello again"] {
        linked.sim.send_text(JOHN, SELF_PHONE, text).await.expect("John Doe writes");
    }
    linked.wait_for_events(2, 10).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while names(&linked.all_events(100).await).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let john = "6281234567890@s.whatsapp.net";
    let unknown = json!({ "push_name": null, "business_name": null, "full_name": null });
    let known = json!({ "push_name": "John Doe", "business_name": null, "full_name": null });
    // A device's own event (empty chat), numbered among them after its linking's.
    let once = vec![json!(["", { "jid": john, "names": known, "previous": unknown }])];
    assert_eq!(names(&linked.all_events(100).await), once, "after his first message, once");

    let linked = linked.crash_and_restart(async |_| {}).await;
    let profile = linked.waedge.api(&format!("/devices/main/profile?jid={JOHN}"), &token).await;
    assert_eq!(profile.status, 200, "{}", profile.text);
    assert_eq!(profile.json["data"]["profile"]["push_name"], "John Doe", "recorded, not heard again yet");
    linked.sim.send_text(JOHN, SELF_PHONE, "after the restart").await.expect("John writes again");
    // Maria writes after him: once her name is recorded, his would have been too.
    linked.sim.send_text("5511999999999", SELF_PHONE, "hola").await.expect("Maria writes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(&linked.all_events(100).await).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = names(&linked.all_events(100).await);
    assert_eq!(recorded.len(), 2, "John's once, then Maria's: {recorded:?}");
    assert_eq!((&recorded[0], &recorded[1][1]["jid"]), (&once[0], &json!("5511999999999@s.whatsapp.net")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_at_any_moment_loses_no_message_and_records_none_twice() {
    let mut linked = Linked::start().await;
    let mut sent = Vec::new();
    // Each round kills the gateway at another moment of taking in a burst of texts: before it
    // has them, while it commits them, after it committed but before WhatsApp heard so …; then
    // more texts arrive while it is down, and it starts again.
    for (round, pause) in [0, 3, 10, 30, 100].into_iter().enumerate() {
        for i in 0..4 {
            let text = format!("round {round}, text {i}");
            sent.push(linked.sim.send_text(JOHN, SELF_PHONE, &text).await.expect("John Doe sends a text").id);
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let text = format!("round {round}, while the gateway is down");
        linked = linked
            .crash_and_restart(async |sim| {
                sent.push(sim.send_text(JOHN, SELF_PHONE, &text).await.expect("a text for later").id);
            })
            .await;
    }

    let events = linked.wait_for_events(sent.len(), 30).await;
    let received: Vec<&str> = events.iter().map(|e| e["data"]["message_id"].as_str().unwrap()).collect();
    assert_eq!(received, sent, "every text once, in the order John sent them");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=sent.len() as u64).collect::<Vec<_>>(), "numbered without gaps");
    // WhatsApp has been told every one arrived: nothing waits to be delivered again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while linked.sim.unacknowledged(SELF_PHONE) > 0 {
        assert!(Instant::now() < deadline, "{} texts still wait for an ack", linked.sim.unacknowledged(SELF_PHONE));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_reports_its_changes_of_state_as_events() {
    let linked = Linked::start().await;
    let device_events =
        |events: Vec<Value>| -> Vec<Value> { events.into_iter().filter(|e| e["type"] == "device.status").collect() };
    let linking = device_events(linked.all_events(100).await);
    let last = linking.last().expect("linking is reported");
    let own = format!("{SELF_PHONE}@s.whatsapp.net");
    assert_eq!((&last["data"]["state"], &last["data"]["jid"]), (&json!("connected"), &json!(own)), "{linking:#?}");
    assert_eq!((&last["device"], &last["chat"]), (&json!("main"), &json!("")), "{last}");
    let seqs: Vec<u64> = linking.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=linking.len() as u64).collect::<Vec<_>>(), "numbered per device without gaps");
    // Each event's `previous` is the state of the one before it.
    for pair in linking.windows(2) {
        assert_eq!(pair[1]["data"]["previous"], pair[0]["data"]["state"], "{pair:#?}");
    }

    linked.sim.log_out(SELF_PHONE).await;
    let patience = Duration::from_secs(10);
    linked.waedge.wait_for_device(&linked.admin_token, "acme", "main", "logged-out", patience).await;
    let deadline = Instant::now() + patience;
    let logged_out = loop {
        let events = device_events(linked.all_events(100).await);
        if events.len() > linking.len() || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new: Vec<_> =
        logged_out[linking.len()..].iter().map(|e| (&e["data"]["previous"], &e["data"]["state"])).collect();
    assert_eq!(new, [(&json!("connected"), &json!("logged-out"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_follows_the_outbox_and_resumes_after_the_last_event_id() {
    let linked = Linked::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/tenants/acme/events/stream", linked.waedge.admin);
    let open = |query: &str, last: Option<String>| {
        let mut request = http.get(format!("{url}{query}")).bearer_auth(&linked.admin_token);
        if let Some(id) = last {
            request = request.header("last-event-id", id);
        }
        request.send()
    };
    let mut stream = open("", None).await.expect("the stream opens");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // What was recorded before (the device's linking), then what comes while it is open.
    let before = linked.all_events(100).await.len();
    let mut streamed = read_events(&mut stream, before).await;
    linked.sim.send_text(JOHN, SELF_PHONE, "streamed").await.expect("John sends a text");
    // His text, and his push name, which the device learns from it.
    streamed.extend(read_events(&mut stream, 2).await);
    let listed = linked.all_events(100).await;
    assert_eq!(streamed.len(), listed.len());
    for ((id, kind, data), event) in streamed.iter().zip(&listed) {
        assert_eq!(
            (id.as_str(), kind.as_str(), data),
            (event["id"].as_str().unwrap(), event["type"].as_str().unwrap(), event)
        );
    }
    let kinds: Vec<&str> = streamed[before..].iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["message.received", "contact.name"]);
    assert_eq!(streamed[before].2["data"]["message"]["text"], "streamed");
    drop(stream);

    // A client that reconnects with the last id it saw gets only what came after it, also when
    // it reconnects to the URL it started with (as a browser's `EventSource` does).
    let seen = streamed[before - 1].0.clone();
    let started = format!("?after={}", streamed[0].0);
    let mut resumed = open(&started, Some(seen)).await.expect("the stream opens again");
    let again = read_events(&mut resumed, 1).await;
    assert_eq!(again[0].0, streamed[before].0);
    let mut from_url = open(&started, None).await.expect("the stream opens from the URL's cursor");
    assert_eq!(read_events(&mut from_url, 1).await[0].0, streamed[1].0);
    // An unknown cursor is refused up front, as the list refuses it.
    let unknown = open("", Some("01ARZ3NDEKTSV4RRFFQ69G5FAV".into())).await.expect("an answer");
    assert_eq!(unknown.status(), 404);
}

//! Messages WhatsApp delivers to a device become its tenant's events, recorded before
//! WhatsApp is told they arrived: listed by the admin API in order, each with a stable id, a
//! number in its chat, and both the LID and the phone JID of its sender when WhatsApp gave
//! them; and a `kill -9` at any moment loses none and records none twice.
//!
//! Needs a test build (`wa-sim` feature); `cargo test --workspace` has it.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{SELF_PHONE, Waedge, admin_token, cli_ok, world, write_config};
use wa_sim::{SimConfig, WaSim};

/// John Doe in the world: his phone and his LID.
const JOHN: &str = "6281234567890";
const JOHN_LID: &str = "1234567890987654321@lid";

/// A gateway on `sim` with tenant `acme` and its device `main` linked to [`SELF_PHONE`].
struct Linked {
    sim: WaSim,
    _dir: tempfile::TempDir,
    config: PathBuf,
    waedge: Waedge,
    admin_token: String,
}

impl Linked {
    async fn start() -> Linked {
        let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = write_config(dir.path(), &format!("whatsapp_server = \"{}\"", sim.ws_url()));
        let admin_token = admin_token(&config);
        let waedge = Waedge::start(&config);
        waedge.admin_expect(reqwest::Method::POST, "/v1/tenants", &admin_token, json!({ "id": "acme" }), 201).await;
        waedge.link_new_device(&admin_token, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
        Linked { sim, _dir: dir, config, waedge, admin_token }
    }

    /// Kills the gateway with SIGKILL, as a crash would, runs `while_down`, and starts the
    /// gateway again; returns once `main` is connected again.
    async fn crash_and_restart(mut self, while_down: impl AsyncFnOnce(&WaSim)) -> Linked {
        self.waedge.kill();
        while_down(&self.sim).await;
        self.waedge = Waedge::start(&self.config);
        let patience = Duration::from_secs(30);
        self.waedge.wait_for_device(&self.admin_token, "acme", "main", "connected", patience).await;
        self
    }

    /// Every event of `acme`, oldest first, read a page of `page` at a time.
    async fn events(&self, page: usize) -> Vec<Value> {
        let (mut events, mut after) = (Vec::new(), None::<String>);
        loop {
            let cursor = after.as_ref().map(|id| format!("&after={id}")).unwrap_or_default();
            let path = format!("/v1/tenants/acme/events?limit={page}{cursor}");
            let answer =
                self.waedge.admin_expect(reqwest::Method::GET, &path, &self.admin_token, Value::Null, 200).await;
            let got = answer["events"].as_array().expect("a list of events").clone();
            if got.is_empty() {
                assert_eq!(answer["next"].as_str(), after.as_deref(), "an empty page points where it started");
                return events;
            }
            after = Some(answer["next"].as_str().expect("a next cursor").to_string());
            events.extend(got);
        }
    }

    /// Waits up to `seconds` until `acme` has `count` events; returns them.
    async fn wait_for_events(&self, count: usize, seconds: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let events = self.events(100).await;
            if events.len() >= count || Instant::now() > deadline {
                assert_eq!(events.len(), count, "events: {events:#?}");
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

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
    assert_eq!(listed["events"], json!(events));
    let table = cli_ok(&["event", "list", "acme", "--after", id], Some(admin));
    assert!(table.contains("message.received") && table.contains(events[1]["id"].as_str().unwrap()), "{table}");
    assert!(!table.contains(id), "only the events after --after: {table}");
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

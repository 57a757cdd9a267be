//! Event handlers: a tenant's component named as a webhook's `url` is handed the tenant's
//! events from the outbox, in order, under the tenant's sandbox limits — and a hostile one
//! (`tests/guests/event-probe`: loops, allocates, panics, fails on request) is contained like a
//! hostile HTTP handler: its attempt fails with the limit it hit, the event is retried, the
//! violation is counted, and the tenants' APIs keep answering.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::guests;
use waedge_e2e::log::HostLog;
use waedge_e2e::server::{TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, EVE, config};
use waedge_store::events::{MESSAGE_RECEIVED, NewEvent};

/// A gateway (acme and globex of the test configuration) with the event probe deployed as
/// globex's `component:event-probe` and subscribed to its `message.received` events, under
/// `limits`; the subscription's id and the probe's name in logs and metrics.
async fn globex_with_event_probe(limits: Value) -> (TestGateway, String, String) {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    let patched = gw.admin(Method::PATCH, "/v1/tenants/globex", json!({ "limits": limits })).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let deployed =
        gw.admin_upload("/v1/tenants/globex/components/event-probe", guests::get("event-probe").to_vec()).await;
    assert_eq!(deployed.status, 201, "{}", deployed.text);
    let subscription = json!({ "url": "component:event-probe", "events": [MESSAGE_RECEIVED] });
    let created = gw.admin(Method::POST, "/v1/tenants/globex/webhooks", subscription).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json.get("secret"), None, "an event handler has no secret to show: {}", created.text);
    let id = created.json["id"].as_str().expect("the webhook's id").to_string();
    let name = format!("globex/event-probe@{}", &deployed.json["sha256"].as_str().unwrap()[..12]);
    (gw, id, name)
}

/// Records a text `text` received by globex's device `main`, as the device would.
fn receive(gw: &TestGateway, message_id: &str, text: &str) -> String {
    let event = NewEvent {
        device: "main".into(),
        kind: MESSAGE_RECEIVED.into(),
        chat: "6281234567890@s.whatsapp.net".into(),
        dedup: Some(message_id.into()),
        at: "2026-12-05T15:00:00Z".into(),
        data: json!({
            "message_id": message_id,
            "chat": { "jid": "6281234567890@s.whatsapp.net", "type": "user" },
            "sender": { "jid": "6281234567890@s.whatsapp.net", "type": "user" },
            "from_me": false,
            "message": { "kind": "text", "text": text },
        }),
    };
    let appended = gw.store().append_events("globex", &[event]).expect("the outbox takes the event");
    appended[0].id.clone()
}

/// The subscription's delivery log, oldest attempt first, once `done` holds for it (up to
/// a minute: nothing wakes the worker here, it looks at the outbox every few seconds).
async fn deliveries_until(gw: &TestGateway, webhook: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("/v1/tenants/globex/webhooks/{webhook}/deliveries");
        let reply = gw.admin(Method::GET, &path, Value::Null).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let mut attempts = reply.json["deliveries"].as_array().cloned().unwrap_or_default();
        attempts.reverse();
        if done(&attempts) {
            return attempts;
        }
        assert!(Instant::now() < deadline, "the delivery log never got there: {attempts:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that the gateway's metrics count a violation of `limit` by globex's `component`.
async fn assert_violation_counted(gw: &TestGateway, component: &str, limit: &str) {
    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    let line =
        format!("waedge_sandbox_violations_total{{tenant=\"globex\",component=\"{component}\",limit=\"{limit}\"}}");
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_handler_is_handed_each_event_once_in_order() {
    let log = HostLog::install();
    let (gw, webhook, _) = globex_with_event_probe(json!({})).await;
    let ids: Vec<String> =
        ["one", "two", "three"].iter().map(|text| receive(&gw, &format!("M-{text}"), text)).collect();
    let attempts = deliveries_until(&gw, &webhook, |attempts| attempts.len() >= 3).await;
    let handled: Vec<Value> = attempts.iter().map(|a| json!([a["event_id"], a["error"], a["attempt"]])).collect();
    let expected: Vec<Value> = ids.iter().map(|id| json!([id, null, 1])).collect();
    assert_eq!(handled, expected, "each event once, in order, at the first attempt");
    // The component saw them: its log lines carry each event's type, id and text.
    let text = log.text();
    let at = |needle: String| text.find(&needle).unwrap_or_else(|| panic!("`{needle}` not logged:\n{text}"));
    let seen: Vec<usize> = ids
        .iter()
        .zip(["one", "two", "three"])
        .map(|(id, word)| at(format!("handled message.received {id} {word}")))
        .collect();
    assert!(seen.is_sorted(), "handled out of order: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_handler_is_stopped_at_the_deadline_and_the_tenants_apis_keep_answering() {
    let (gw, webhook, probe) = globex_with_event_probe(json!({ "request_timeout_ms": 500 })).await;
    let id = receive(&gw, "M-loop", "loop");
    let attempts = deliveries_until(&gw, &webhook, |attempts| !attempts.is_empty()).await;
    assert_eq!(attempts[0]["event_id"], json!(id));
    let error = attempts[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not answer within the request deadline"), "{:#}", attempts[0]);
    assert_violation_counted(&gw, &probe, "request_timeout_ms").await;
    // While the handler's event waits for its retry, both tenants' APIs answer.
    for token in [ALICE, EVE] {
        let groups = gw.get("/devices/main/groups", Some(token)).await;
        assert_eq!(groups.status, 200, "{}", groups.text);
    }
    // The event is retried, not dropped.
    deliveries_until(&gw, &webhook, |attempts| attempts.len() >= 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_allocates_without_end_is_stopped_at_its_memory_limit() {
    let (gw, webhook, probe) = globex_with_event_probe(json!({ "memory_mib": 16 })).await;
    receive(&gw, "M-grow", "grow");
    let attempts = deliveries_until(&gw, &webhook, |attempts| !attempts.is_empty()).await;
    let error = attempts[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("exceeded its memory limit"), "{:#}", attempts[0]);
    assert_violation_counted(&gw, &probe, "memory_mib").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_attempt_and_one_asking_again_is_retried() {
    let (gw, webhook, probe) = globex_with_event_probe(json!({})).await;
    receive(&gw, "M-panic", "panic");
    let attempts = deliveries_until(&gw, &webhook, |attempts| !attempts.is_empty()).await;
    let error = attempts[0]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("the component failed"), "{:#}", attempts[0]);
    assert_violation_counted(&gw, &probe, "trap").await;

    let (gw, webhook, _) = globex_with_event_probe(json!({})).await;
    receive(&gw, "M-fail", "fail");
    let attempts = deliveries_until(&gw, &webhook, |attempts| !attempts.is_empty()).await;
    assert_eq!(
        attempts[0]["error"],
        json!("the handler asked to be handed the event again: the probe asks for the event again")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_deployed_component_of_the_tenant_that_handles_events_can_be_subscribed() {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    let subscribe = async |tenant: &str, url: &str| {
        let path = format!("/v1/tenants/{tenant}/webhooks");
        gw.admin(Method::POST, &path, json!({ "url": url, "events": [MESSAGE_RECEIVED] })).await
    };
    let deploy = async |tenant: &str, name: &str, guest: &str| {
        let path = format!("/v1/tenants/{tenant}/components/{name}");
        let deployed = gw.admin_upload(&path, guests::get(guest).to_vec()).await;
        assert_eq!(deployed.status, 201, "{}", deployed.text);
    };
    let missing = subscribe("globex", "component:event-probe").await;
    assert_eq!((missing.status, &missing.json["error"]["code"]), (409, &json!("CONFLICT")), "{}", missing.text);
    assert!(missing.text.contains("no active component `event-probe`"), "{}", missing.text);
    // Another tenant's component is as unknown as one nobody deployed.
    deploy("acme", "event-probe", "event-probe").await;
    let foreign = subscribe("globex", "component:event-probe").await;
    assert_eq!(foreign.status, 409, "{}", foreign.text);
    assert!(foreign.text.contains("tenant `globex` has no active component `event-probe`"), "{}", foreign.text);
    // A component that only serves HTTP handles no events.
    deploy("globex", "hello", "hello").await;
    let http_only = subscribe("globex", "component:hello").await;
    assert_eq!(http_only.status, 409, "{}", http_only.text);
    assert!(http_only.text.contains("exports no `waedge:gateway/events`"), "{}", http_only.text);
    for invalid in ["component:", "component:a b", "builtin:devices-api"] {
        let refused = subscribe("globex", invalid).await;
        assert_eq!((refused.status, &refused.json["error"]["code"]), (400, &json!("INVALID")), "{}", refused.text);
    }
    let listed = gw.admin(Method::GET, "/v1/tenants/globex/webhooks", Value::Null).await;
    assert_eq!(listed.json, json!({ "webhooks": [] }), "nothing was stored");

    // A component that only handles events serves no route.
    deploy("globex", "event-probe", "event-probe").await;
    let route = json!({ "prefix": "/probe", "component": "component:event-probe" });
    let routed = gw.admin(Method::PUT, "/v1/tenants/globex/routes", route).await;
    assert_eq!(routed.status, 409, "{}", routed.text);
    assert!(routed.text.contains("exports no `wasi:http/incoming-handler`"), "{}", routed.text);
}

/// A new version deployed under the handler's name takes over at the next attempt: here the
/// CRM forwarder, missing its setting, fails the event; the probe deployed in its place
/// handles the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_takes_over_at_the_next_attempt() {
    let log = HostLog::install();
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    let deploy = async |guest: &str| {
        let deployed = gw.admin_upload("/v1/tenants/globex/components/handler", guests::get(guest).to_vec()).await;
        assert_eq!(deployed.status, 201, "{}", deployed.text);
    };
    deploy("crm-forwarder").await;
    let subscription = json!({ "url": "component:handler", "events": [MESSAGE_RECEIVED] });
    let created = gw.admin(Method::POST, "/v1/tenants/globex/webhooks", subscription).await;
    let webhook = created.json["id"].as_str().expect("the webhook's id").to_string();
    let id = receive(&gw, "M-swap", "hello");
    let attempts = deliveries_until(&gw, &webhook, |attempts| !attempts.is_empty()).await;
    assert!(attempts[0]["error"].as_str().unwrap_or_default().contains("crm.url"), "{:#}", attempts[0]);

    deploy("event-probe").await;
    let attempts = deliveries_until(&gw, &webhook, |attempts| attempts.last().unwrap()["error"].is_null()).await;
    assert_eq!(attempts.last().unwrap()["event_id"], json!(id));
    assert!(log.text().contains(&format!("handled message.received {id} hello")), "the new version handled it");
}

/// One component, both exports (the SDK's `export_handler!` and `export_event_handler!`): the
/// probe answers its route and handles the events it is subscribed to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_may_serve_a_route_and_handle_events() {
    let log = HostLog::install();
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    gw.deploy_probe().await;
    let subscription = json!({ "url": "component:probe", "events": [MESSAGE_RECEIVED] });
    let created = gw.admin(Method::POST, "/v1/tenants/globex/webhooks", subscription).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let webhook = created.json["id"].as_str().expect("the webhook's id").to_string();
    let id = receive(&gw, "M-both", "hello");
    let attempts = deliveries_until(&gw, &webhook, |attempts| !attempts.is_empty()).await;
    assert_eq!((&attempts[0]["event_id"], &attempts[0]["error"]), (&json!(id), &Value::Null), "{attempts:#?}");
    assert!(log.text().contains(&format!("probe handled message.received {id}")), "the probe handled it");
    let hello = gw.get("/probe/hello", Some(EVE)).await;
    assert_eq!((hello.status, &hello.json), (200, &json!({ "probe": "hello" })), "{}", hello.text);
}

/// A version that lacks what the component is used for cannot become active: not one without
/// `events` while a subscription names the component, nor one without the HTTP handler while a
/// route does. It can still be stored without activating it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_without_the_export_a_use_calls_is_not_activated() {
    let (gw, _, _) = globex_with_event_probe(json!({})).await;
    let hello = guests::get("hello").to_vec();
    let sha256 = |bytes: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    };
    let refused = gw.admin_upload("/v1/tenants/globex/components/event-probe", hello.clone()).await;
    assert_eq!((refused.status, &refused.json["error"]["code"]), (409, &json!("CONFLICT")), "{}", refused.text);
    let says =
        "of `component:event-probe` exports no `waedge:gateway/events`, which the webhooks naming the component call";
    assert!(refused.text.contains(says), "{}", refused.text);
    // A refused deploy stored nothing: its version cannot be activated either.
    let never_stored = format!("/v1/tenants/globex/components/event-probe/versions/{}/activate", sha256(&hello));
    let missing = gw.admin(Method::POST, &never_stored, Value::Null).await;
    assert_eq!((missing.status, &missing.json["error"]["code"]), (404, &json!("NOT_FOUND")), "{}", missing.text);
    let stored = gw.admin_upload("/v1/tenants/globex/components/event-probe?activate=false", hello).await;
    assert_eq!(stored.status, 201, "{}", stored.text);
    let sha = stored.json["sha256"].as_str().unwrap();
    let path = format!("/v1/tenants/globex/components/event-probe/versions/{sha}/activate");
    let activated = gw.admin(Method::POST, &path, Value::Null).await;
    assert_eq!(activated.status, 409, "{}", activated.text);
    assert!(activated.text.contains(says), "{}", activated.text);
    let versions = gw.admin(Method::GET, "/v1/tenants/globex/components", Value::Null).await;
    let active: Vec<&Value> =
        versions.json["components"].as_array().unwrap().iter().filter(|v| v["active"] == true).collect();
    assert_eq!(active.len(), 1, "{}", versions.text);
    assert_ne!(active[0]["sha256"], json!(sha), "the version in use stays active");

    gw.deploy_probe().await;
    let events_only = guests::get("event-probe").to_vec();
    let refused = gw.admin_upload("/v1/tenants/globex/components/probe", events_only).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    let says =
        "of `component:probe` exports no `wasi:http/incoming-handler`, which the routes naming the component call";
    assert!(refused.text.contains(says), "{}", refused.text);
}

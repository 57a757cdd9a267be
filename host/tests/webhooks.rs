//! Webhooks: a tenant's events POSTed to its endpoint from the outbox — signed as Standard
//! Webhooks says (checked here from the specification), retried when the endpoint fails,
//! made a dead letter when it refuses and replayed on request, through the same address rules
//! as components' outbound HTTP.
//!
//! Needs a test build (`wa-sim` feature); `cargo test --workspace` has it.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::{Value, json};
use support::linked::Linked;
use support::{SELF_PHONE, cli_ok};

/// John Doe in the world.
const JOHN: &str = "6281234567890";

/// The test's endpoints listen on loopback, which the gateway treats as public only for
/// 127.0.0.1 (a test setting); 127.0.0.2 stays internal.
const PUBLIC_LOOPBACK: &str = r#"public_test_addresses = ["127.0.0.1"]"#;

/// What an endpoint received.
#[derive(Debug, Clone)]
struct Received {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// An HTTP endpoint that records every request and answers with the statuses it is given, in
/// turn, then 200.
struct Endpoint {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    /// An endpoint listening on `address` (`IP:0` for any port).
    async fn start(address: &str, answers: &[u16]) -> Endpoint {
        let listener = tokio::net::TcpListener::bind(address).await.expect("a loopback port");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<u16>>()));
        let (log, script) = (received.clone(), answers);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, script) = (log.clone(), script.clone());
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (log, script) = (log.clone(), script.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes().to_vec();
                        log.lock().unwrap().push(Received { headers: parts.headers, body });
                        let status = script.lock().unwrap().pop_front().unwrap_or(200);
                        let response = http::Response::builder().status(status).body(Full::new(Bytes::new()));
                        Ok::<_, hyper::Error>(response.unwrap())
                    }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::spawn(connection);
            }
        });
        Endpoint { url, received }
    }

    /// Waits up to `seconds` until the endpoint has received `count` requests; returns them.
    async fn wait_for(&self, count: usize, seconds: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let received = self.received.lock().unwrap().clone();
            if received.len() >= count || Instant::now() > deadline {
                assert_eq!(received.len(), count, "requests: {received:#?}");
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Creates a webhook of `acme` for `url`; returns its id and secret.
async fn create_webhook(linked: &Linked, url: &str) -> (String, String) {
    let body = json!({ "url": url, "events": ["message.received"] });
    let created =
        linked.waedge.admin_expect(Method::POST, "/v1/tenants/acme/webhooks", &linked.admin_token, body, 201).await;
    let id = created["id"].as_str().expect("a webhook id").to_string();
    let secret = created["secret"].as_str().expect("the secret, shown once").to_string();
    (id, secret)
}

/// GETs `path` of the admin API, expecting 200.
async fn get(linked: &Linked, path: &str) -> Value {
    linked.waedge.admin_expect(Method::GET, path, &linked.admin_token, Value::Null, 200).await
}

/// The admin API's answer at `path` once its `list` is not empty (within 10 s; then as it is).
/// A delivery is recorded a moment after the endpoint answered it.
async fn once_listed(linked: &Linked, path: &str, list: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(linked, path).await;
        if !answer[list].as_array().expect("a list").is_empty() || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks a request's signature as the Standard Webhooks specification defines it.
fn signed_with(received: &Received, secret: &str) -> bool {
    let header = |name: &str| received.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(&received.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header("webhook-signature").split(' ').any(|signature| signature == format!("v1,{expected}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_message_is_posted_to_the_webhook_signed_and_as_the_events_api_lists_it() {
    let linked = Linked::start_with(PUBLIC_LOOPBACK).await;
    let endpoint = Endpoint::start("127.0.0.1:0", &[]).await;
    let (webhook, secret) = create_webhook(&linked, &endpoint.url).await;
    let listed = get(&linked, &format!("/v1/tenants/acme/webhooks/{webhook}")).await;
    assert_eq!(listed["url"], json!(endpoint.url));
    assert!(listed.get("secret").is_none(), "the secret is shown once: {listed}");

    linked.sim.send_text(JOHN, SELF_PHONE, "hi").await.expect("John Doe sends a text");
    let received = endpoint.wait_for(1, 10).await;
    let events = linked.wait_for_events(1, 5).await;
    let posted: Value = serde_json::from_slice(&received[0].body).expect("the body is JSON");
    assert_eq!(posted, events[0], "the webhook gets the event the events API lists");
    let headers = &received[0].headers;
    assert_eq!(headers["webhook-id"], events[0]["id"].as_str().unwrap(), "the event id, to deduplicate on");
    assert_eq!(headers["content-type"], "application/json");
    let sent_at: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().expect("seconds");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60, "signed now: {sent_at}");
    assert!(signed_with(&received[0], &secret), "signed with the secret: {headers:?}");
    assert!(!signed_with(&received[0], "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="), "by no other");

    let log = once_listed(&linked, &format!("/v1/tenants/acme/webhooks/{webhook}/deliveries"), "deliveries").await;
    let attempt = &log["deliveries"][0];
    assert_eq!(
        (&attempt["event_id"], &attempt["attempt"], &attempt["status"]),
        (&events[0]["id"], &json!(1), &json!(200))
    );

    // A deleted webhook gets nothing more.
    let path = format!("/v1/tenants/acme/webhooks/{webhook}");
    linked.waedge.admin_expect(Method::DELETE, &path, &linked.admin_token, Value::Null, 204).await;
    linked.sim.send_text(JOHN, SELF_PHONE, "anyone?").await.expect("another text");
    linked.wait_for_events(2, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(endpoint.received.lock().unwrap().len(), 1, "nothing after the deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_gets_the_event_again_and_a_refusing_one_makes_it_a_dead_letter_to_replay() {
    let linked = Linked::start_with(PUBLIC_LOOPBACK).await;
    // The first event: 503, then 200. The second: 400 — not worth another attempt. Both are
    // sent at once: the second waits for the first's retry, it never overtakes it.
    let endpoint = Endpoint::start("127.0.0.1:0", &[503, 200, 400]).await;
    let (webhook, _) = create_webhook(&linked, &endpoint.url).await;

    let first = linked.sim.send_text(JOHN, SELF_PHONE, "one").await.expect("a text").id;
    let second = linked.sim.send_text(JOHN, SELF_PHONE, "two").await.expect("a text").id;
    let received = endpoint.wait_for(3, 10).await;
    let message_id = |r: &Received| serde_json::from_slice::<Value>(&r.body).unwrap()["data"]["message_id"].clone();
    assert_eq!(received.iter().map(message_id).collect::<Vec<_>>(), [json!(first), json!(first), json!(second)]);

    let dead = once_listed(&linked, &format!("/v1/tenants/acme/webhooks/{webhook}/dead-letters"), "dead_letters").await;
    let letters = dead["dead_letters"].as_array().expect("a list");
    assert_eq!(letters.len(), 1, "{dead}");
    assert_eq!((&letters[0]["event"]["data"]["message_id"], &letters[0]["attempts"]), (&json!(second), &json!(1)));
    assert!(letters[0]["error"].as_str().unwrap().contains("400"), "{dead}");
    // The CLI shows the same.
    let admin = (linked.waedge.admin.as_str(), linked.admin_token.as_str());
    let table = cli_ok(&["webhook", "dead-letters", "acme", &webhook], Some(admin));
    let event_id = letters[0]["event"]["id"].as_str().unwrap();
    assert!(table.contains(event_id) && table.contains("message.received") && table.contains("400"), "{table}");
    let listed = cli_ok(&["webhook", "list", "acme"], Some(admin));
    assert!(listed.contains(&webhook) && listed.contains(&endpoint.url), "{listed}");
    let log = get(&linked, &format!("/v1/tenants/acme/webhooks/{webhook}/deliveries")).await;
    let statuses: Vec<&Value> = log["deliveries"].as_array().unwrap().iter().map(|a| &a["status"]).collect();
    assert_eq!(statuses, [&json!(400), &json!(200), &json!(503)], "newest first");

    // Replayed once the endpoint takes it (it answers 200 now): delivered, and no dead letter left.
    let event = letters[0]["event"]["id"].as_str().unwrap();
    let path = format!("/v1/tenants/acme/webhooks/{webhook}/dead-letters/{event}/replay");
    let replay = linked.waedge.admin_expect(Method::POST, &path, &linked.admin_token, Value::Null, 200).await;
    assert_eq!((&replay["delivered"], &replay["attempt"]["attempt"]), (&json!(true), &json!(2)), "{replay}");
    assert_eq!(endpoint.wait_for(4, 5).await[3].body, received[2].body, "the same event");
    let dead = get(&linked, &format!("/v1/tenants/acme/webhooks/{webhook}/dead-letters")).await;
    assert_eq!(dead, json!({ "dead_letters": [] }));
    let again = linked.waedge.admin(Method::POST, &path, &linked.admin_token, Value::Null).await;
    assert_eq!((again.status, &again.json["error"]["code"]), (404, &json!("NOT_FOUND")), "{}", again.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_an_internal_address_is_refused_unless_the_tenant_allows_its_host() {
    let linked = Linked::start_with(PUBLIC_LOOPBACK).await;
    let internal = Endpoint::start("127.0.0.2:0", &[]).await;
    let (webhook, _) = create_webhook(&linked, &internal.url).await;

    linked.sim.send_text(JOHN, SELF_PHONE, "hi").await.expect("a text");
    let dead_letters = format!("/v1/tenants/acme/webhooks/{webhook}/dead-letters");
    let dead = once_listed(&linked, &dead_letters, "dead_letters").await;
    let letters = dead["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "given up at once");
    assert!(letters[0]["error"].as_str().unwrap().contains("outbound_private_hosts"), "{letters:?}");
    assert!(internal.received.lock().unwrap().is_empty(), "nothing reached the internal address");

    let allow = json!({ "outbound_private_hosts": ["127.0.0.2"] });
    linked.waedge.admin_expect(Method::PATCH, "/v1/tenants/acme", &linked.admin_token, allow, 200).await;
    let event = letters[0]["event"]["id"].as_str().unwrap();
    let path = format!("{dead_letters}/{event}/replay");
    let replay = linked.waedge.admin_expect(Method::POST, &path, &linked.admin_token, Value::Null, 200).await;
    assert_eq!(replay["delivered"], true, "{replay}");
    internal.wait_for(1, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_not_delivered_before_a_crash_is_delivered_after_the_restart() {
    let linked = Linked::start_with(PUBLIC_LOOPBACK).await;
    // A port where nothing listens yet: every attempt fails until the endpoint is up.
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (webhook, _) = create_webhook(&linked, &format!("http://{address}/hook")).await;
    let sent = linked.sim.send_text(JOHN, SELF_PHONE, "are you up?").await.expect("a text").id;
    let log = format!("/v1/tenants/acme/webhooks/{webhook}/deliveries");
    let attempts = once_listed(&linked, &log, "deliveries").await;
    assert!(!attempts["deliveries"].as_array().unwrap().is_empty(), "no attempt in time");

    let endpoint = Arc::new(Mutex::new(None));
    let started = endpoint.clone();
    let linked = linked
        .crash_and_restart(async move |_| {
            *started.lock().unwrap() = Some(Endpoint::start(&address.to_string(), &[]).await);
        })
        .await;
    let endpoint = endpoint.lock().unwrap().take().expect("the endpoint started");
    let received = endpoint.wait_for(1, 15).await;
    let posted: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(posted["data"]["message_id"], json!(sent), "the pending event, from the outbox");
    let dead = get(&linked, &format!("/v1/tenants/acme/webhooks/{webhook}/dead-letters")).await;
    assert_eq!(dead, json!({ "dead_letters": [] }));
}

/// The CRM forwarder (`components/examples/crm-forwarder`), an event handler: each text John
/// sends becomes an activity POSTed to the CRM in the CRM's shape, through the tenant's
/// outbound allow-list, with the event's id as its idempotency key — and a CRM answering 503
/// gets the same activity again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crm_forwarder_posts_each_received_text_to_the_crm_and_retries_a_failing_one() {
    let linked = Linked::start_with(PUBLIC_LOOPBACK).await;
    let crm = Endpoint::start("127.0.0.1:0", &[503]).await;
    let (waedge, admin) = (&linked.waedge, linked.admin_token.as_str());
    let forwarder = waedge_e2e::guests::get("crm-forwarder").to_vec();
    waedge.deploy(admin, "acme", "crm-forwarder", forwarder).await;
    let tenant = json!({
        "outbound_hosts": ["127.0.0.1"],
        "settings": { "crm.url": crm.url, "crm.token": "crm-secret" },
    });
    waedge.admin_expect(Method::PATCH, "/v1/tenants/acme", admin, tenant, 200).await;
    create_webhook_for_component(&linked, "component:crm-forwarder").await;

    linked.sim.send_text(JOHN, SELF_PHONE, "Do you ship to Bandung?").await.expect("John asks");
    // The first attempt met the 503; the retry (backoff of at most a second) met a 200.
    let received = crm.wait_for(2, 30).await;
    let events = linked.wait_for_events(1, 10).await;
    for request in &received {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(header("idempotency-key"), events[0]["id"], "the event's id, on every attempt");
        assert_eq!(header("authorization"), "Bearer crm-secret");
        let activity: Value = serde_json::from_slice(&request.body).expect("JSON");
        assert_eq!(
            activity,
            json!({
                "type": "whatsapp_message",
                "contact": { "whatsapp": "6281234567890@s.whatsapp.net", "phone": JOHN, "name": "John Doe" },
                "body": "Do you ship to Bandung?",
                "channel": "main",
                "occurred_at": events[0]["at"],
                "external_id": events[0]["data"]["message_id"],
            })
        );
    }
}

/// Creates an event handler of `acme`: a webhook whose url names `component`; no secret.
async fn create_webhook_for_component(linked: &Linked, component: &str) {
    let body = json!({ "url": component, "events": ["message.received"] });
    let created =
        linked.waedge.admin_expect(Method::POST, "/v1/tenants/acme/webhooks", &linked.admin_token, body, 201).await;
    assert_eq!(created.get("secret"), None, "an event handler has no secret: {created}");
}

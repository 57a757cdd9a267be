//! The messages endpoints of the built-in devices API — `POST /devices/{device_id}/messages`
//! and `GET /devices/{device_id}/messages/{message_id}` — served by the real component over
//! HTTP on loopback, against the fixture world, whose devices send nothing (a send that
//! reaches a connected one is `502 UPSTREAM_ERROR`; `host/tests/sending.rs` sends through
//! wa-sim): every refusal a client can meet, with its exact status, error code and headers —
//! each validation error, a missing token, a device the token may not use, an unknown or a
//! disconnected device, a wrong method, an unknown message — and the per-device send rate
//! (the tenant's `sends_per_minute` and `send_burst`), charged by the host before it calls the
//! device, so that a send over it is `429 RATE_LIMITED` with `Retry-After`.

use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, CAROL, EVE, config};

/// A recipient the fixture devices know (John Doe).
const JOHN: &str = "6281234567890";

async fn gateway() -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start(&config(Some("acme")), &world).await
}

/// `method path` on the API listener with a bearer token, an `Idempotency-Key` header (raw
/// bytes, so that a test can send what a careless client would) and a body, each if given.
async fn call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    token: Option<&str>,
    key: Option<&[u8]>,
    body: Vec<u8>,
) -> Reply {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", gw.base())).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        let value = HeaderValue::from_bytes(key).expect("a header value HTTP can carry");
        request = request.header("idempotency-key", value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, json, text }
}

/// A send of `body` (JSON) from `device`, as `token`.
async fn send(gw: &TestGateway, device: &str, token: &str, body: &Value) -> Reply {
    let path = format!("/devices/{device}/messages");
    call(gw, Method::POST, &path, Some(token), None, body.to_string().into_bytes()).await
}

/// Asserts a devices-API error: status and code, a message saying what is wrong, as JSON.
fn assert_error(reply: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!((reply.status, reply.json["error"]["code"].as_str()), (status, Some(code)), "{what}: {}", reply.text);
    assert!(reply.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/json", "{what}");
}

/// The fixture device's answer to a send that reached it: proof the request was valid.
fn assert_reached_the_device(reply: &Reply, what: &str) {
    assert_error(reply, 502, "UPSTREAM_ERROR", what);
    assert!(reply.json["error"]["message"].as_str().unwrap().contains("fixture world sends no messages"), "{what}");
}

/// An invalid send: what it is, its `Idempotency-Key`, its body, and the words of the error
/// message that say what to fix.
type Invalid = (&'static str, Option<Vec<u8>>, Vec<u8>, &'static str);

#[tokio::test]
async fn every_invalid_send_is_refused_with_400_before_it_reaches_the_device() {
    let gw = gateway().await;
    let text = |to: &str| json!({"to": to, "text": "hi"});
    let key_of = |n: usize| "k".repeat(n).into_bytes();
    let cases: Vec<Invalid> = vec![
        ("no body", None, Vec::new(), "JSON"),
        ("a form, not JSON", None, b"to=6281234567890&text=hi".to_vec(), "JSON"),
        ("a JSON array", None, b"[]".to_vec(), "JSON"),
        (
            "an unknown field",
            None,
            json!({"to": JOHN, "text": "hi", "priority": "high"}).to_string().into(),
            "unknown field `priority`",
        ),
        ("no text", None, json!({"to": JOHN}).to_string().into(), "missing field `text`"),
        ("no recipient", None, json!({"text": "hi"}).to_string().into(), "missing field `to`"),
        ("a number as text", None, json!({"to": JOHN, "text": 7}).to_string().into(), "invalid type: integer"),
        ("an empty text", None, json!({"to": JOHN, "text": ""}).to_string().into(), "`text`"),
        ("an empty recipient", None, text("").to_string().into(), "`to`"),
        ("a recipient that is no identifier", None, text("hello").to_string().into(), "`to`"),
        ("a broadcast list", None, text("123@broadcast").to_string().into(), "`to`"),
        ("an empty reply_to", None, json!({"to": JOHN, "text": "hi", "reply_to": ""}).to_string().into(), "`reply_to`"),
        (
            "a reply_to of 129 characters",
            None,
            json!({"to": JOHN, "text": "hi", "reply_to": "3".repeat(129)}).to_string().into(),
            "`reply_to`",
        ),
        ("a key of 256 characters", Some(key_of(256)), text(JOHN).to_string().into(), "Idempotency-Key"),
        ("an empty key", Some(Vec::new()), text(JOHN).to_string().into(), "Idempotency-Key"),
        (
            "a key of Cyrillic letters",
            Some("ключ".as_bytes().to_vec()),
            text(JOHN).to_string().into(),
            "Idempotency-Key",
        ),
        ("a key with a tab", Some(b"order\t1".to_vec()), text(JOHN).to_string().into(), "Idempotency-Key"),
    ];
    for (what, key, body, hint) in cases {
        for device in ["main", "offline"] {
            let path = format!("/devices/{device}/messages");
            let reply = call(&gw, Method::POST, &path, Some(ALICE), key.as_deref(), body.clone()).await;
            // On a disconnected device too: what is wrong with the request comes first.
            assert_error(&reply, 400, "VALIDATION_ERROR", &format!("{what} to {device}"));
            let message = reply.json["error"]["message"].as_str().unwrap();
            assert!(message.contains(hint), "{what}: the message names {hint:?}: {message}");
        }
    }
    // Their neighbours that are valid reach the device (whose fixture refuses every send).
    let valid: Vec<(&str, Option<Vec<u8>>, Value)> = vec![
        ("a phone number as people write it", None, text("+62 812-3456-7890")),
        ("a phone JID", None, text("6281234567890@s.whatsapp.net")),
        ("a device JID", None, text("6281234567890:3@s.whatsapp.net")),
        ("a LID", None, text("1234567890987654321@lid")),
        ("a group", None, text("120363406798553856@g.us")),
        ("a null reply_to", None, json!({"to": JOHN, "text": "hi", "reply_to": null})),
        ("a reply_to of 128 characters", None, json!({"to": JOHN, "text": "hi", "reply_to": "3".repeat(128)})),
        ("a key of 255 characters", Some(key_of(255)), text(JOHN)),
        ("a key with spaces and punctuation", Some(b"order 4711/confirm?#1".to_vec()), text(JOHN)),
    ];
    for (what, key, body) in valid {
        let reply =
            call(&gw, Method::POST, "/devices/main/messages", Some(ALICE), key.as_deref(), body.to_string().into())
                .await;
        assert_reached_the_device(&reply, what);
    }
}

/// A key HTTP can carry but that is no text (ISO-8859-1 `café`, as some clients encode header
/// values) is refused like any other bad key: a key the server ignored would let a retry send
/// the message twice.
#[tokio::test]
async fn a_key_that_is_not_utf8_is_refused_not_ignored() {
    let gw = gateway().await;
    let body = json!({"to": JOHN, "text": "hi"}).to_string().into_bytes();
    for key in [&b"caf\xe9"[..], b"\x80\x81"] {
        let reply = call(&gw, Method::POST, "/devices/main/messages", Some(ALICE), Some(key), body.clone()).await;
        assert_error(&reply, 400, "VALIDATION_ERROR", &format!("the key {key:?}"));
    }
}

/// The text's limit is 65,536 bytes of UTF-8, not characters. On globex, whose requests may
/// have the default 1 MiB of body (acme's are capped at 64 KiB, which the host answers 413).
#[tokio::test]
async fn the_text_is_limited_to_65536_bytes() {
    let gw = gateway().await;
    let with_text = |text: String| json!({"to": JOHN, "text": text});
    for (what, text) in [("65,536 ASCII bytes", "a".repeat(65_536)), ("32,768 two-byte letters", "é".repeat(32_768))] {
        assert_reached_the_device(&send(&gw, "main", EVE, &with_text(text)).await, what);
    }
    for (what, text) in [("65,537 ASCII bytes", "a".repeat(65_537)), ("32,769 two-byte letters", "é".repeat(32_769))] {
        let reply = send(&gw, "main", EVE, &with_text(text)).await;
        assert_error(&reply, 400, "VALIDATION_ERROR", what);
        assert!(reply.json["error"]["message"].as_str().unwrap().contains("65536 bytes"), "{}", reply.text);
    }
    // A body over the tenant's `max_request_body_bytes` never reaches the component.
    let reply = send(&gw, "main", ALICE, &with_text("a".repeat(65_536))).await;
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE", "a body over acme's 64 KiB");
}

#[tokio::test]
async fn refusals_of_who_asks_for_which_device_and_path() {
    let gw = gateway().await;
    let body = json!({"to": JOHN, "text": "hi"}).to_string().into_bytes();
    let post = |path: &'static str, token: Option<&'static str>| {
        let body = body.clone();
        let gw = &gw;
        async move { call(gw, Method::POST, path, token, None, body).await }
    };
    // No token, and a token that is no one's: 401 with the RFC 6750 challenge.
    let anonymous = post("/devices/main/messages", None).await;
    assert_error(&anonymous, 401, "UNAUTHORIZED", "no token");
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    let unknown = post("/devices/main/messages", Some("9f9f9f9f-0000-4000-8000-000000000000")).await;
    assert_error(&unknown, 401, "UNAUTHORIZED", "an unknown token");
    let reading = call(&gw, Method::GET, "/devices/main/messages/3EB0AA", None, None, Vec::new()).await;
    assert_error(&reading, 401, "UNAUTHORIZED", "a read without a token");
    // carol may use only the offline device: not main, whether she sends or reads.
    assert_error(&post("/devices/main/messages", Some(CAROL)).await, 403, "FORBIDDEN", "carol sends from main");
    let read = call(&gw, Method::GET, "/devices/main/messages/3EB0AA", Some(CAROL), None, Vec::new()).await;
    assert_error(&read, 403, "FORBIDDEN", "carol reads main's message");
    // A device the tenant does not have (globex's has the id `main`, acme's the others).
    assert_error(&post("/devices/nope/messages", Some(ALICE)).await, 404, "DEVICE_NOT_FOUND", "an unknown device");
    let elsewhere = call(&gw, Method::POST, "/devices/stranger/messages", Some(EVE), None, body.clone()).await;
    assert_error(&elsewhere, 404, "DEVICE_NOT_FOUND", "another tenant's device");
    let read = call(&gw, Method::GET, "/devices/nope/messages/3EB0AA", Some(ALICE), None, Vec::new()).await;
    assert_error(&read, 404, "DEVICE_NOT_FOUND", "a message of an unknown device");
    // A message the device never sent.
    for (token, device) in [(ALICE, "main"), (ALICE, "offline"), (EVE, "main")] {
        let path = format!("/devices/{device}/messages/3EB0C431D2E5A1F0B9E2D7A4");
        let reply = call(&gw, Method::GET, &path, Some(token), None, Vec::new()).await;
        assert_error(&reply, 404, "MESSAGE_NOT_FOUND", &path);
        assert!(
            reply.json["error"]["message"].as_str().unwrap().contains("3EB0C431D2E5A1F0B9E2D7A4"),
            "{}",
            reply.text
        );
    }
    // A valid send from a device that is not connected: linked but offline, or never linked.
    for device in ["offline", "fresh"] {
        let path = format!("/devices/{device}/messages");
        let reply = call(&gw, Method::POST, &path, Some(ALICE), None, body.clone()).await;
        assert_error(&reply, 503, "DEVICE_NOT_CONNECTED", &path);
    }
    // Wrong methods, with or without a token: 405 and the one method the path takes.
    for (method, path, allowed) in [
        (Method::PUT, "/devices/main/messages", "POST"),
        (Method::GET, "/devices/main/messages", "POST"),
        (Method::DELETE, "/devices/main/messages", "POST"),
        (Method::POST, "/devices/main/messages/3EB0AA", "GET"),
        (Method::DELETE, "/devices/main/messages/3EB0AA", "GET"),
    ] {
        for token in [Some(ALICE), None] {
            let reply = call(&gw, method.clone(), path, token, None, body.clone()).await;
            assert_error(&reply, 405, "METHOD_NOT_ALLOWED", &format!("{method} {path}"));
            assert_eq!(reply.headers["allow"], allowed, "{method} {path}: RFC 9110 §15.5.6");
        }
    }
    // Deeper paths are no endpoint.
    let deeper = call(&gw, Method::GET, "/devices/main/messages/3EB0AA/status", Some(ALICE), None, Vec::new()).await;
    assert_error(&deeper, 404, "NOT_FOUND", "a path below a message");
}

/// A limit set through the admin API, as an operator would.
async fn set_limits(gw: &TestGateway, tenant: &str, limits: Value) {
    let reply = gw.admin(Method::PATCH, &format!("/v1/tenants/{tenant}"), json!({ "limits": limits })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// The seconds of a 429's `Retry-After`.
fn retry_after(reply: &Reply) -> u64 {
    let header = reply.headers.get("retry-after").unwrap_or_else(|| panic!("a 429 says when to retry: {reply:?}"));
    header.to_str().unwrap().parse().unwrap_or_else(|_| panic!("whole seconds: {header:?}"))
}

#[tokio::test]
async fn a_device_sends_at_most_its_tenants_rate() {
    let gw = gateway().await;
    set_limits(&gw, "acme", json!({"sends_per_minute": 1, "send_burst": 1})).await;
    let message = json!({"to": JOHN, "text": "hi"});
    // What never reaches the host costs nothing: an invalid send, or one from a device that
    // is not connected.
    let invalid = send(&gw, "main", ALICE, &json!({"to": JOHN, "text": ""})).await;
    assert_error(&invalid, 400, "VALIDATION_ERROR", "an invalid send");
    assert_error(&send(&gw, "offline", ALICE, &message).await, 503, "DEVICE_NOT_CONNECTED", "offline");
    // The one send of the minute reaches the device (which refuses it: it still counts).
    assert_reached_the_device(&send(&gw, "main", ALICE, &message).await, "the first send");
    for attempt in ["the second send", "the third send"] {
        let refused = send(&gw, "main", ALICE, &message).await;
        assert_error(&refused, 429, "RATE_LIMITED", attempt);
        let seconds = retry_after(&refused);
        assert!((50..=60).contains(&seconds), "{attempt}: one send a minute: retry in {seconds} s");
        let text = refused.json["error"]["message"].as_str().unwrap();
        assert!(text.contains(&format!("retry in {seconds} s")), "the message agrees with the header: {text}");
    }
    // A bucket per device: another device of the tenant has its own send.
    assert_reached_the_device(&send(&gw, "stranger", ALICE, &message).await, "another device");
    assert_error(&send(&gw, "stranger", ALICE, &message).await, 429, "RATE_LIMITED", "its second");
    // Reading is not sending; another tenant's device has its own limits.
    let read = call(&gw, Method::GET, "/devices/main/messages/3EB0AA", Some(ALICE), None, Vec::new()).await;
    assert_error(&read, 404, "MESSAGE_NOT_FOUND", "a read");
    assert_reached_the_device(&send(&gw, "main", EVE, &message).await, "globex's main");
    // 0 lifts the limit, at once.
    set_limits(&gw, "acme", json!({"sends_per_minute": 0, "send_burst": 1})).await;
    for attempt in 0..5 {
        assert_reached_the_device(&send(&gw, "main", ALICE, &message).await, &format!("unlimited send {attempt}"));
    }
}

#[tokio::test]
async fn by_default_a_device_sends_bursts_of_20_then_one_a_second() {
    let gw = gateway().await;
    let message = json!({"to": JOHN, "text": "hi"});
    for attempt in 1..=20 {
        assert_reached_the_device(&send(&gw, "main", EVE, &message).await, &format!("send {attempt} of the burst"));
    }
    let refused = send(&gw, "main", EVE, &message).await;
    assert_error(&refused, 429, "RATE_LIMITED", "the 21st send");
    assert_eq!(retry_after(&refused), 1, "60 a minute: one more a second");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_reached_the_device(&send(&gw, "main", EVE, &message).await, "a send after Retry-After");
}

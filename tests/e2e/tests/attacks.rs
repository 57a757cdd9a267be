//! Strangers cannot stop a tenant: slow headers, idle connections, connection floods, slow
//! uploads and anonymous floods are contained by the listener and by admission, while the
//! tenant's users — who come from another address — keep being served.
//!
//! The attacker's sockets come from 127.0.0.2 and the users' from 127.0.0.1 (both loopback),
//! so per-client caps see two clients, as they would on the internet.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use waedge_e2e::fixture::World;
use waedge_e2e::server::{Neighbour, TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, EVE, config};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A gateway for the two test tenants with `connections` as its `[connections]` table and
/// `acme_limits` as acme's limits.
async fn gateway(connections: &str, acme_limits: &str) -> Arc<TestGateway> {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let config = config(None).replace(
        "limits = { max_request_body_bytes = 65536 }",
        &format!("limits = {{ max_request_body_bytes = 65536, {acme_limits} }}"),
    );
    Arc::new(TestGateway::start(&format!("[connections]\n{connections}\n{config}"), &world).await)
}

/// alice's requests, from 127.0.0.1, every 20 ms until stopped: every one must succeed.
fn users_keep_working(gw: &Arc<TestGateway>) -> Neighbour {
    Neighbour::start(gw, "/devices/main/groups", ALICE, Duration::from_millis(20))
}

/// A connection to the gateway from the attacker's address.
async fn attacker_connection(gw: &TestGateway) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ATTACKER, 0)).expect("binding 127.0.0.2");
    let address: SocketAddr = gw.base().trim_start_matches("http://").parse().unwrap();
    socket.connect(address).await.expect("the gateway accepts")
}

/// Reads until the server closes the connection; what it sent. Fails after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open for {limit:?}");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_and_idle_connections_are_closed() {
    // Only the header timeout can close these: the idle timeout is a minute.
    let gw = gateway("header_read_timeout_ms = 400\nidle_timeout_ms = 60000", "").await;
    let users = users_keep_working(&gw);
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut stream = attacker_connection(&gw).await;
        stream.write_all(b"GET /devices/main/groups HTTP/1.1\r\nHost: acme.test\r\nX-Slow: ").await.unwrap();
        slow.push(stream);
    }
    let mut silent = attacker_connection(&gw).await;
    let mut half_preface = attacker_connection(&gw).await;
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut idle = attacker_connection(&gw).await;
    idle.write_all(b"GET /devices/main/groups HTTP/1.1\r\nHost: acme.test\r\n\r\n").await.unwrap();
    for stream in slow.iter_mut().chain([&mut silent, &mut half_preface]) {
        read_until_closed(stream, Duration::from_secs(5)).await;
    }
    // A kept-alive connection waiting for its next request is closed too, after its answer.
    let answer = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(users.stop().await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_flood_from_one_client_is_refused_early() {
    let gw = gateway("max_connections_per_client = 16", "").await;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(attacker_connection(&gw).await);
    }
    // The 17th is closed at once, before it sends anything.
    let mut refused = attacker_connection(&gw).await;
    let started = Instant::now();
    assert_eq!(read_until_closed(&mut refused, Duration::from_secs(2)).await, "");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Another client is served meanwhile.
    assert_eq!(gw.get("/devices/main/groups", Some(ALICE)).await.status, 200);
    // A closed connection frees its place.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = attacker_connection(&gw).await;
    again
        .write_all(b"GET /devices/main/groups HTTP/1.1\r\nHost: acme.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut again, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_uploads_without_a_token_take_no_slot_of_the_tenant() {
    // Four concurrent requests in all, one second per request.
    let gw =
        gateway("", "max_concurrent_requests = 4, anonymous_concurrent_requests = 4, request_timeout_ms = 1000").await;
    let mut slow = Vec::new();
    for _ in 0..32 {
        let mut stream = attacker_connection(&gw).await;
        let head = "POST /devices/main/groups HTTP/1.1\r\nHost: acme.test\r\nContent-Length: 100\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    let users = users_keep_working(&gw);
    // The uploads that got a reading place end with 408 at the request's deadline; the rest
    // were refused at once.
    let mut timed_out = 0;
    for stream in &mut slow {
        let answer = read_until_closed(stream, Duration::from_secs(5)).await;
        if answer.starts_with("HTTP/1.1 408") {
            assert!(answer.contains("\"REQUEST_TIMEOUT\""), "{answer}");
            timed_out += 1;
        } else {
            assert!(answer.starts_with("HTTP/1.1 429") && answer.contains("without a valid API token"), "{answer}");
        }
    }
    assert_eq!(timed_out, 4, "the anonymous reading places");
    assert!(users.stop().await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_upload_gets_its_413_not_a_reset() {
    // acme takes bodies of up to 64 KiB; each upload here is 2 MiB. Refused at the limit with
    // the rest unread, the connection was reset and the client lost its answer (a few times
    // in a hundred); the rest is now read and dropped before the 413.
    let gw = gateway("", "").await;
    let address: SocketAddr = gw.base().trim_start_matches("http://").parse().unwrap();
    let body = vec![b'x'; 2 << 20];
    for _ in 0..50 {
        let mut stream = TcpStream::connect(address).await.expect("the gateway accepts");
        let head = format!(
            "POST /devices/main/groups HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {ALICE}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.expect("the whole upload is taken");
        let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("\"PAYLOAD_TOO_LARGE\""), "{answer:?}");
    }
}

#[tokio::test]
async fn above_its_memory_watermark_the_gateway_sheds_requests_but_not_the_operator() {
    // A watermark far below what any process holds: every API request is shed.
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&format!("memory_watermark_mib = 1\n{}", config(None)), &world).await;
    let shed = gw.get("/devices/main/groups", Some(ALICE)).await;
    assert_eq!((shed.status, shed.json["error"]["code"].as_str()), (503, Some("CAPACITY")), "{}", shed.text);
    assert!(shed.json["error"]["message"].as_str().unwrap().contains("memory watermark (1 MiB)"), "{}", shed.text);
    assert_eq!(shed.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    let contacts = gw.get("/contacts/profile?number=5511999999999", Some(ALICE)).await;
    assert_eq!((contacts.status, &contacts.json["error_code"]), (503, &json!("CAPACITY")), "{}", contacts.text);
    // The operator still gets through.
    assert_eq!(gw.admin(reqwest::Method::GET, "/v1/tenants", serde_json::Value::Null).await.status, 200);
}

#[tokio::test]
async fn an_anonymous_flood_cannot_drain_the_users_rate() {
    let gw = gateway("", "requests_per_second = 1, burst = 2, anonymous_requests_per_second = 1").await;
    let mut refused = 0;
    for _ in 0..20 {
        let reply = gw.request(reqwest::Method::GET, "/devices/main/groups", None, Some("acme.test"), Vec::new()).await;
        match reply.status {
            // Served: the component asks for a token.
            401 => assert_eq!(reply.json["error"]["code"], "UNAUTHORIZED"),
            429 => {
                assert!(reply.text.contains("without a valid API token"), "{}", reply.text);
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert!(refused >= 17, "the anonymous rate held only {refused} of 20");
    for _ in 0..2 {
        let reply =
            gw.request(reqwest::Method::GET, "/devices/main/groups", Some(ALICE), Some("acme.test"), Vec::new()).await;
        assert_eq!(reply.status, 200, "the users' rate was drained by strangers: {}", reply.text);
    }
}

#[tokio::test]
async fn a_request_without_a_host_is_a_bad_request_not_a_component_failure() {
    let gw = gateway("", "").await;
    let mut stream = attacker_connection(&gw).await;
    let request = format!("GET /devices/main/groups HTTP/1.0\r\nAuthorization: Bearer {EVE}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"BAD_REQUEST\""), "{answer}");
    let metrics = reqwest::get(format!("{}/metrics", gw.admin_base())).await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("limit=\"trap\""), "a missing Host was blamed on a component:\n{metrics}");
}

#[tokio::test]
async fn http2_is_served_with_the_same_answers() {
    let gw = gateway("", "").await;
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let response = client
        .get(format!("{}/devices/main/groups", gw.base()))
        .bearer_auth(ALICE)
        .send()
        .await
        .expect("an HTTP/2 answer");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let over_h2: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(over_h2, gw.get("/devices/main/groups", Some(ALICE)).await.json);
    // HTTP/2 names the host in `:authority`, not `Host`: it selects the tenant all the same
    // (here the request has no token, so only the host name can).
    let address: SocketAddr = gw.base().trim_start_matches("http://").parse().unwrap();
    let client = reqwest::Client::builder().http2_prior_knowledge().resolve("acme.test", address).build().unwrap();
    let url = format!("http://acme.test:{}/devices/main/groups", address.port());
    let response = client.get(url).send().await.expect("an HTTP/2 answer");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let served_by = response.headers().get("x-waedge-component").map(|v| v.to_str().unwrap().to_string());
    assert_eq!((response.status().as_u16(), served_by.as_deref()), (401, Some("builtin:devices-api")));
}

#[tokio::test]
async fn the_admin_api_answers_only_requests_for_this_machine() {
    let gw = gateway("", "").await;
    let client = reqwest::Client::new();
    let metrics = format!("{}/metrics", gw.admin_base());
    // A page the operator's browser loads from rebind.example, now resolving to 127.0.0.1.
    let rebound = client.get(&metrics).header("host", "rebind.example:8081").send().await.unwrap();
    assert_eq!(rebound.status(), 421);
    let body: serde_json::Value = serde_json::from_str(&rebound.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], json!("MISDIRECTED_REQUEST"));
    let local = client.get(&metrics).header("host", "localhost:8081").send().await.unwrap();
    assert_eq!(local.status(), 200);
}

#[tokio::test]
async fn a_route_whose_component_cannot_load_is_refused_not_served_by_a_shorter_one() {
    let gw = gateway("", "").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secure.wasm");
    std::fs::write(&file, waedge_e2e::guests::get("probe")).unwrap();
    for (prefix, component) in [("/", "builtin:devices-api".to_string()), ("/secure", file.display().to_string())] {
        let route = json!({"prefix": prefix, "component": component});
        let put = gw.admin(reqwest::Method::PUT, "/v1/tenants/globex/routes", route).await;
        assert_eq!(put.status, 200, "{}", put.text);
    }
    let served = gw.get("/secure/hello", Some(EVE)).await;
    assert_eq!(served.json, json!({"probe": "hello"}));
    // The response says which component served it, never where it lies on the server.
    assert_eq!(served.headers["x-waedge-component"], "file:secure.wasm");
    // The file is damaged; the next reload cannot load it.
    std::fs::write(&file, b"not a component").unwrap();
    let reload = gw.admin(reqwest::Method::PATCH, "/v1/tenants/globex", json!({"settings": {"touched": "1"}})).await;
    assert_eq!(reload.status, 200, "{}", reload.text);
    let refused = gw.get("/secure/hello", Some(EVE)).await;
    assert_eq!(
        (refused.status, &refused.json["error"]["code"]),
        (503, &json!("COMPONENT_UNAVAILABLE")),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains(dir.path().to_str().unwrap()), "a server path in an answer: {}", refused.text);
    // The rest of the tenant is served as before.
    assert_eq!(gw.get("/devices/main/groups", Some(EVE)).await.status, 200);
}

#[tokio::test]
async fn a_revocation_whose_client_hangs_up_still_takes_effect() {
    let gw = gateway("", "").await;
    let user = "a11ce000-0000-4000-8000-000000000001";
    let listed = gw.admin(reqwest::Method::GET, &format!("/v1/tenants/acme/users/{user}/tokens"), json!(null)).await;
    let token_id = listed.json["tokens"][0]["id"].as_str().expect("alice's token").to_string();
    assert_eq!(gw.get("/devices/main/groups", Some(ALICE)).await.status, 200);
    // The operator's script sends the revocation and is killed before any answer.
    let address: SocketAddr = gw.admin_base().trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "DELETE /v1/tenants/acme/users/{user}/tokens/{token_id} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        gw.admin_token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let reply = gw.get("/devices/main/groups", Some(ALICE)).await;
        if reply.status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked token still works: {} {}", reply.status, reply.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Hostile components are contained: a real component (`tests/guests/probe`) that loops,
//! allocates without end, recurses without end, panics, answers too much, calls forbidden
//! addresses and floods outbound calls — each stopped with a clean JSON error, a log line and
//! a metric naming the limit, while another tenant's requests keep succeeding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::guests;
use waedge_e2e::log::HostLog;
use waedge_e2e::server::{Neighbour, Reply, TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, EVE, config};

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!((reply.status, reply.json["error"]["code"].as_str()), (status, Some(code)), "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_components_are_contained_and_other_tenants_keep_working() {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = Arc::new(TestGateway::start(&config(None), &world).await);
    let probe = gw.deploy_probe().await;
    let limits = json!({"limits": {
        "request_timeout_ms": 1500, "memory_mib": 16, "max_response_body_bytes": 4096, "max_outbound_requests": 3,
    }, "outbound_hosts": ["127.0.0.1", "localhost", "api.example.com"]});
    assert_eq!(gw.admin(Method::PATCH, "/v1/tenants/globex", limits).await.status, 200);

    // acme's traffic runs all along and must never notice.
    let neighbour = Neighbour::start(&gw, "/devices/main/groups", ALICE, Duration::ZERO);

    // A deploy can smoke-test the new version first: a 5xx refuses it, and nothing changes.
    let smoked =
        gw.admin_upload("/v1/tenants/globex/components/probe?smoke=/probe/panic", guests::get("probe").to_vec()).await;
    assert_eq!((smoked.status, &smoked.json["error"]["code"]), (400, &json!("SMOKE_FAILED")), "{}", smoked.text);
    let smoked =
        gw.admin_upload("/v1/tenants/globex/components/probe?smoke=/probe/hello", guests::get("probe").to_vec()).await;
    assert_eq!(smoked.status, 201, "{}", smoked.text);

    let hello = gw.get("/probe/hello", Some(EVE)).await;
    assert_eq!((hello.status, hello.json.clone()), (200, json!({"probe": "hello"})));

    let started = Instant::now();
    assert_error(&gw.get("/probe/loop", Some(EVE)).await, 504, "COMPONENT_TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped near its 1.5 s deadline: {:?}", started.elapsed());
    assert_error(&gw.get("/probe/bomb", Some(EVE)).await, 500, "COMPONENT_MEMORY_LIMIT");
    assert_error(&gw.get("/probe/recurse", Some(EVE)).await, 500, "COMPONENT_FAILED");
    assert_error(&gw.get("/probe/panic", Some(EVE)).await, 500, "COMPONENT_FAILED");
    assert_error(&gw.get("/probe/big?bytes=5000", Some(EVE)).await, 500, "COMPONENT_RESPONSE_TOO_LARGE");
    let small = gw.get("/probe/big?bytes=4000", Some(EVE)).await;
    assert_eq!((small.status, small.text.len()), (200, 4000));

    // Outbound: the allow-list, internal addresses, the per-request cap.
    let port = waedge_e2e::stub::serve("ok").await;
    let loopback = format!("http://127.0.0.1:{port}/");
    let denied = gw.get("/probe/fetch?url=http://example.org/", Some(EVE)).await;
    assert_eq!(denied.status, 502, "{}", denied.text);
    assert!(denied.json["error"].as_str().unwrap().contains("HttpRequestDenied"), "{}", denied.text);
    let internal = gw.get(&format!("/probe/fetch?url={loopback}"), Some(EVE)).await;
    assert_eq!(internal.status, 502, "{}", internal.text);
    assert!(internal.json["error"].as_str().unwrap().contains("DestinationIpProhibited"), "{}", internal.text);
    let allowed = gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"outbound_private_hosts": ["127.0.0.1"]})).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    let fetched = gw.get(&format!("/probe/fetch?url={loopback}"), Some(EVE)).await;
    assert_eq!((fetched.status, fetched.json.clone()), (200, json!({"status": 200, "bytes": 2})), "{}", fetched.text);
    let flood = gw.get(&format!("/probe/flood?n=10&url={loopback}"), Some(EVE)).await;
    assert_eq!((&flood.json["ok"], &flood.json["refused"]), (&json!(3), &json!(7)), "{}", flood.text);

    // Instance and table caps: a tenant allowing fewer than the component needs gets a clean
    // error naming the cap.
    let tight = gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"limits": {"max_instances": 1}})).await;
    assert_eq!(tight.status, 200, "{}", tight.text);
    assert_error(&gw.get("/probe/hello", Some(EVE)).await, 500, "COMPONENT_INSTANCE_LIMIT");
    let tight = gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"limits": {"max_tables": 1}})).await;
    assert_eq!(tight.status, 200, "{}", tight.text);
    assert_error(&gw.get("/probe/hello", Some(EVE)).await, 500, "COMPONENT_TABLE_LIMIT");
    let relaxed = gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"limits": {}})).await;
    assert_eq!(relaxed.status, 200, "{}", relaxed.text);
    assert_eq!(gw.get("/probe/hello", Some(EVE)).await.status, 200);

    assert!(neighbour.stop().await > 10, "acme was served throughout");

    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    for limit in [
        "request_timeout_ms",
        "memory_mib",
        "trap",
        "max_response_body_bytes",
        "outbound_hosts",
        "outbound_address",
        "max_outbound_requests",
        "max_instances",
        "max_tables",
    ] {
        let line =
            format!("waedge_sandbox_violations_total{{tenant=\"globex\",component=\"{probe}\",limit=\"{limit}\"}}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_forge_or_flood_the_log() {
    use waedge::capability::logging::MAX_LINES_PER_REQUEST;

    let log = HostLog::install();
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    let probe = gw.deploy_probe().await;

    let flood = gw.get("/probe/log?n=10000", Some(EVE)).await;
    assert_eq!((flood.status, flood.json.clone()), (200, json!({"logged": 10000})), "{}", flood.text);

    let text = log.text();
    let component_lines: Vec<&str> = text.lines().filter(|line| line.contains("waedge::component")).collect();
    assert_eq!(component_lines.len(), MAX_LINES_PER_REQUEST as usize, "at most the cap is logged");
    for line in &component_lines {
        assert!(line.contains(r"\nFORGED waedge::access") && line.contains("tenant=\"globex\""), "{line}");
    }
    assert!(!text.lines().any(|line| line.starts_with("FORGED")), "a component forged a log line:\n{text}");
    let violations = text.lines().filter(|line| line.contains("limit=\"log\"")).count();
    assert_eq!(violations, 1, "one violation per request, not one per dropped line:\n{text}");

    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    let line = format!("waedge_sandbox_violations_total{{tenant=\"globex\",component=\"{probe}\",limit=\"log\"}} 1");
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
}

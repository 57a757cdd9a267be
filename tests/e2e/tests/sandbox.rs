//! Hostile components are contained: a real component (`tests/guests/probe`) that loops,
//! allocates without end, recurses without end, panics, answers too much, calls forbidden
//! addresses and floods outbound calls — each stopped with a clean JSON error, a log line and
//! a metric naming the limit, while another tenant's requests keep succeeding.
//!
//! Each test starts its own gateway with globex serving the probe under only the limits the
//! behaviour needs ([`globex_with_probe`]), so one failure names one behaviour.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::guests;
use waedge_e2e::log::HostLog;
use waedge_e2e::server::{Neighbour, Reply, TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, EVE, config};

/// The hosts globex's probe may call: loopback by name and address, and one public name.
const OUTBOUND_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "api.example.com"];

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!((reply.status, reply.json["error"]["code"].as_str()), (status, Some(code)), "{}", reply.text);
}

/// A gateway (acme and globex of the test configuration) whose tenant globex serves the probe
/// component on `/probe`, then patched with `settings` (limits, outbound hosts; nothing if
/// `Null`); and the probe's name in logs and metrics.
async fn globex_with_probe(settings: Value) -> (Arc<TestGateway>, String) {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = Arc::new(TestGateway::start(&config(None), &world).await);
    let probe = gw.deploy_probe().await;
    if !settings.is_null() {
        patch_globex(&gw, settings).await;
    }
    (gw, probe)
}

/// `PATCH /v1/tenants/globex` with `patch`, which must be accepted.
async fn patch_globex(gw: &TestGateway, patch: Value) {
    let patched = gw.admin(Method::PATCH, "/v1/tenants/globex", patch).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
}

/// Asserts that the gateway's metrics count a violation of `limit` by globex's `probe`.
async fn assert_violation_counted(gw: &TestGateway, probe: &str, limit: &str) {
    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    let line = format!("waedge_sandbox_violations_total{{tenant=\"globex\",component=\"{probe}\",limit=\"{limit}\"}}");
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
}

/// A loopback URL of a stub answering `ok`: an internal address for the outbound rules.
async fn loopback_stub() -> String {
    let port = waedge_e2e::stub::serve("ok").await;
    format!("http://127.0.0.1:{port}/")
}

// A deploy can smoke-test the new version first: a 5xx refuses it, and nothing changes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_smoke_test_answers_5xx_is_refused_with_smoke_failed() {
    let (gw, _) = globex_with_probe(Value::Null).await;
    let smoked =
        gw.admin_upload("/v1/tenants/globex/components/probe?smoke=/probe/panic", guests::get("probe").to_vec()).await;
    assert_eq!((smoked.status, &smoked.json["error"]["code"]), (400, &json!("SMOKE_FAILED")), "{}", smoked.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_smoke_test_passes_is_accepted() {
    let (gw, _) = globex_with_probe(Value::Null).await;
    let smoked =
        gw.admin_upload("/v1/tenants/globex/components/probe?smoke=/probe/hello", guests::get("probe").to_vec()).await;
    assert_eq!(smoked.status, 201, "{}", smoked.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_within_the_limits_is_answered_by_the_component() {
    let (gw, _) = globex_with_probe(Value::Null).await;
    let hello = gw.get("/probe/hello", Some(EVE)).await;
    assert_eq!((hello.status, hello.json.clone()), (200, json!({"probe": "hello"})));
}

// The limits of one request: its deadline, its memory, a trap, the size of its response.

/// The answer is the proof that the loop was stopped at its deadline: `COMPONENT_TIMEOUT` is
/// only answered when the request's deadline has passed (the epoch callback interrupts the
/// guest at the first tick past it), and a guest that were never stopped would never answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_looping_past_its_deadline_answers_component_timeout() {
    let (gw, probe) = globex_with_probe(json!({"limits": {"request_timeout_ms": 1500}})).await;
    assert_error(&gw.get("/probe/loop", Some(EVE)).await, 504, "COMPONENT_TIMEOUT");
    assert_violation_counted(&gw, &probe, "request_timeout_ms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_beyond_the_limit_answers_component_memory_limit() {
    let (gw, probe) = globex_with_probe(json!({"limits": {"memory_mib": 16}})).await;
    assert_error(&gw.get("/probe/bomb", Some(EVE)).await, 500, "COMPONENT_MEMORY_LIMIT");
    assert_violation_counted(&gw, &probe, "memory_mib").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_answers_component_failed() {
    let (gw, probe) = globex_with_probe(Value::Null).await;
    assert_error(&gw.get("/probe/recurse", Some(EVE)).await, 500, "COMPONENT_FAILED");
    assert_violation_counted(&gw, &probe, "trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_answers_component_failed() {
    let (gw, probe) = globex_with_probe(Value::Null).await;
    assert_error(&gw.get("/probe/panic", Some(EVE)).await, 500, "COMPONENT_FAILED");
    assert_violation_counted(&gw, &probe, "trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_beyond_the_limit_answers_component_response_too_large() {
    let (gw, probe) = globex_with_probe(json!({"limits": {"max_response_body_bytes": 4096}})).await;
    assert_error(&gw.get("/probe/big?bytes=5000", Some(EVE)).await, 500, "COMPONENT_RESPONSE_TOO_LARGE");
    assert_violation_counted(&gw, &probe, "max_response_body_bytes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_within_the_limit_is_served_whole() {
    let (gw, _) = globex_with_probe(json!({"limits": {"max_response_body_bytes": 4096}})).await;
    let small = gw.get("/probe/big?bytes=4000", Some(EVE)).await;
    assert_eq!((small.status, small.text.len()), (200, 4000));
}

// Outbound: the allow-list, internal addresses, the per-request cap.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_host_off_the_allow_list_is_denied() {
    let (gw, probe) = globex_with_probe(json!({"outbound_hosts": OUTBOUND_HOSTS})).await;
    let denied = gw.get("/probe/fetch?url=http://example.org/", Some(EVE)).await;
    assert_eq!(denied.status, 502, "{}", denied.text);
    assert!(denied.json["error"].as_str().unwrap().contains("HttpRequestDenied"), "{}", denied.text);
    assert_violation_counted(&gw, &probe, "outbound_hosts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_an_internal_address_is_prohibited_though_its_host_is_allowed() {
    let (gw, probe) = globex_with_probe(json!({"outbound_hosts": OUTBOUND_HOSTS})).await;
    let loopback = loopback_stub().await;
    let internal = gw.get(&format!("/probe/fetch?url={loopback}"), Some(EVE)).await;
    assert_eq!(internal.status, 502, "{}", internal.text);
    assert!(internal.json["error"].as_str().unwrap().contains("DestinationIpProhibited"), "{}", internal.text);
    assert_violation_counted(&gw, &probe, "outbound_address").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_made_a_private_host_may_be_called_at_its_internal_address() {
    let (gw, _) = globex_with_probe(json!({"outbound_hosts": OUTBOUND_HOSTS})).await;
    let loopback = loopback_stub().await;
    patch_globex(&gw, json!({"outbound_private_hosts": ["127.0.0.1"]})).await;
    let fetched = gw.get(&format!("/probe/fetch?url={loopback}"), Some(EVE)).await;
    assert_eq!((fetched.status, fetched.json.clone()), (200, json!({"status": 200, "bytes": 2})), "{}", fetched.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_max_outbound_requests_are_refused() {
    let settings = json!({
        "limits": {"max_outbound_requests": 3},
        "outbound_hosts": OUTBOUND_HOSTS,
        "outbound_private_hosts": ["127.0.0.1"],
    });
    let (gw, probe) = globex_with_probe(settings).await;
    let loopback = loopback_stub().await;
    let flood = gw.get(&format!("/probe/flood?n=10&url={loopback}"), Some(EVE)).await;
    assert_eq!((&flood.json["ok"], &flood.json["refused"]), (&json!(3), &json!(7)), "{}", flood.text);
    assert_violation_counted(&gw, &probe, "max_outbound_requests").await;
}

// Instance and table caps: a tenant allowing fewer than the component needs gets a clean
// error naming the cap.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_needing_more_instances_than_max_instances_answers_component_instance_limit() {
    let (gw, probe) = globex_with_probe(json!({"limits": {"max_instances": 1}})).await;
    assert_error(&gw.get("/probe/hello", Some(EVE)).await, 500, "COMPONENT_INSTANCE_LIMIT");
    assert_violation_counted(&gw, &probe, "max_instances").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_needing_more_tables_than_max_tables_answers_component_table_limit() {
    let (gw, probe) = globex_with_probe(json!({"limits": {"max_tables": 1}})).await;
    assert_error(&gw.get("/probe/hello", Some(EVE)).await, 500, "COMPONENT_TABLE_LIMIT");
    assert_violation_counted(&gw, &probe, "max_tables").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifting_the_caps_serves_the_component_again() {
    let (gw, _) = globex_with_probe(json!({"limits": {"max_instances": 1, "max_tables": 1}})).await;
    assert_eq!(gw.get("/probe/hello", Some(EVE)).await.status, 500);
    patch_globex(&gw, json!({"limits": {}})).await;
    assert_eq!(gw.get("/probe/hello", Some(EVE)).await.status, 200);
}

// Another tenant's traffic runs all along and must never notice.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_tenant_is_served_throughout_while_the_probe_hits_every_limit() {
    let settings = json!({"limits": {
        "request_timeout_ms": 1500, "memory_mib": 16, "max_response_body_bytes": 4096, "max_outbound_requests": 3,
    }, "outbound_hosts": OUTBOUND_HOSTS, "outbound_private_hosts": ["127.0.0.1"]});
    let (gw, _) = globex_with_probe(settings).await;
    let loopback = loopback_stub().await;
    let neighbour = Neighbour::start(&gw, "/devices/main/groups", ALICE, Duration::ZERO);
    assert_error(&gw.get("/probe/loop", Some(EVE)).await, 504, "COMPONENT_TIMEOUT");
    assert_error(&gw.get("/probe/bomb", Some(EVE)).await, 500, "COMPONENT_MEMORY_LIMIT");
    assert_error(&gw.get("/probe/recurse", Some(EVE)).await, 500, "COMPONENT_FAILED");
    assert_error(&gw.get("/probe/panic", Some(EVE)).await, 500, "COMPONENT_FAILED");
    assert_error(&gw.get("/probe/big?bytes=5000", Some(EVE)).await, 500, "COMPONENT_RESPONSE_TOO_LARGE");
    let flood = gw.get(&format!("/probe/flood?n=10&url={loopback}"), Some(EVE)).await;
    assert_eq!((&flood.json["ok"], &flood.json["refused"]), (&json!(3), &json!(7)), "{}", flood.text);
    assert!(neighbour.stop().await > 10, "acme was served throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_forge_or_flood_the_log() {
    use waedge::capability::logging::MAX_LINES_PER_REQUEST;

    let log = HostLog::install();
    let (gw, probe) = globex_with_probe(Value::Null).await;

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

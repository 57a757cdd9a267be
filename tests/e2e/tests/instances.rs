//! Warm instances: an instance that answered cleanly serves the next requests of its tenant,
//! up to `requests_per_instance`, and never another tenant's; a trap or a change of limits
//! retires it. Observed through the probe component's `count` endpoint, which answers how many
//! requests its instance has served. And what an instance's memory does under the SDK's
//! allocator, through its `heap` endpoint.

use reqwest::Method;
use serde_json::json;
use waedge_e2e::fixture::World;
use waedge_e2e::guests;
use waedge_e2e::server::{TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, EVE, config};

/// Deploys the probe as `tenant`'s component on `/probe` with `requests_per_instance`.
async fn deploy_probe(gw: &TestGateway, tenant: &str, requests_per_instance: u32) {
    let deployed =
        gw.admin_upload(&format!("/v1/tenants/{tenant}/components/probe"), guests::get("probe").to_vec()).await;
    assert_eq!(deployed.status, 201, "{}", deployed.text);
    let route = json!({"prefix": "/probe", "component": "component:probe"});
    assert_eq!(gw.admin(Method::PUT, &format!("/v1/tenants/{tenant}/routes"), route).await.status, 200);
    let limits = json!({"limits": {"requests_per_instance": requests_per_instance}});
    assert_eq!(gw.admin(Method::PATCH, &format!("/v1/tenants/{tenant}"), limits).await.status, 200);
}

/// What the probe instance serving this request has served, this request included.
async fn served(gw: &TestGateway, token: &str) -> u64 {
    let reply = gw.get("/probe/count", Some(token)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["served"].as_u64().expect("a count")
}

#[tokio::test]
async fn instances_serve_their_tenant_in_turn_and_are_retired_by_traps_and_limits() {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    deploy_probe(&gw, "acme", 3).await;
    deploy_probe(&gw, "globex", 1).await;

    // acme's instance serves three requests, then a new one takes over; globex's requests,
    // interleaved, each get a fresh instance and never see acme's.
    let mut acme = Vec::new();
    for _ in 0..7 {
        acme.push(served(&gw, ALICE).await);
        assert_eq!(served(&gw, EVE).await, 1);
    }
    assert_eq!(acme, [1, 2, 3, 1, 2, 3, 1]);

    // A trap retires the instance: the next request starts on a fresh one.
    assert_eq!(served(&gw, ALICE).await, 2);
    let panicked = gw.get("/probe/panic", Some(ALICE)).await;
    assert_eq!(
        (panicked.status, &panicked.json["error"]["code"]),
        (500, &json!("COMPONENT_FAILED")),
        "{}",
        panicked.text
    );
    assert_eq!(served(&gw, ALICE).await, 1);

    // New limits mean new instances.
    assert_eq!(served(&gw, ALICE).await, 2);
    let limits = json!({"limits": {"requests_per_instance": 100}});
    assert_eq!(gw.admin(Method::PATCH, "/v1/tenants/acme", limits).await.status, 200);
    let counts =
        [served(&gw, ALICE).await, served(&gw, ALICE).await, served(&gw, ALICE).await, served(&gw, ALICE).await];
    assert_eq!(counts, [1, 2, 3, 4]);
}

/// The probe's `heap` answer for `query`: which instance request it was, whether its
/// allocation was zeroed, and how many pages its instance's memory has grown by.
async fn heap(gw: &TestGateway, query: &str) -> (u64, bool, u64) {
    let reply = gw.get(&format!("/probe/heap?{query}"), Some(ALICE)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let field = |name: &str| reply.json[name].clone();
    (field("served").as_u64().unwrap(), field("zeroed").as_bool().unwrap(), field("grown_pages").as_u64().unwrap())
}

#[tokio::test]
async fn the_sdks_allocator_serves_a_request_from_the_initial_memory_and_grows_it_only_past_that() {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    deploy_probe(&gw, "acme", 1).await;

    // A fresh instance whose request allocates 64 KiB (and parses the request, and writes the
    // answer) keeps the memory it started with: growing it costs the host system calls.
    assert_eq!(heap(&gw, "kb=64").await, (1, true, 0));
    // Past the initial heap the memory grows, and the allocation is still served.
    let (served, zeroed, grown) = heap(&gw, "kb=4096").await;
    assert_eq!((served, zeroed), (1, true));
    assert!(grown >= 64, "4 MiB is at least 64 pages more: {grown}");

    // On a reused instance, memory the last request filled is handed out zeroed when asked so
    // (dlmalloc 0.2 clears whatever `calloc` reuses; this holds the SDK to it, whatever its
    // allocator becomes).
    let limits = json!({"limits": {"requests_per_instance": 3}});
    assert_eq!(gw.admin(Method::PATCH, "/v1/tenants/acme", limits).await.status, 200);
    assert_eq!(heap(&gw, "kb=128&fill=255").await, (1, true, 0));
    assert_eq!(heap(&gw, "kb=128").await, (2, true, 0));
    let (served, zeroed, _) = heap(&gw, "kb=1024&fill=255").await;
    assert_eq!((served, zeroed), (3, true));
}

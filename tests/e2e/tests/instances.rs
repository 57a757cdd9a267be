//! Warm instances: an instance that answered cleanly serves the next requests of its tenant,
//! up to `requests_per_instance`, and never another tenant's; a trap or a change of limits
//! retires it. Observed through the probe component's `count` endpoint, which answers how many
//! requests its instance has served.

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

//! Tenant components over the admin API: deploy, versions, rollback, refusals with the
//! reason, and a hot swap under load with no failed request and a clean switch point.
//!
//! The versions are the built-in components' own bytes: `devices-api`, and the same bytes
//! with a custom section added (another hash, the same behaviour). The `x-waedge-component`
//! response header says which version served each request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use waedge::runtime::builtin;
use waedge_e2e::fixture::World;
use waedge_e2e::guests::with_note;
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::signing::signed_get;
use waedge_e2e::tenants::{EVE, config};

async fn gateway() -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start(&config(None), &world).await
}

fn devices_api() -> Vec<u8> {
    builtin::get("devices-api").expect("the built-in devices API").to_vec()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Which version served: the `x-waedge-component` header.
fn served_by(reply: &Reply) -> String {
    reply.headers.get("x-waedge-component").and_then(|v| v.to_str().ok()).unwrap_or("none").to_string()
}

async fn route_to_api(gw: &TestGateway) {
    let route = gw
        .admin(Method::PUT, "/v1/tenants/globex/routes", json!({"prefix": "/devices", "component": "component:api"}))
        .await;
    assert_eq!(route.status, 200, "{}", route.text);
}

#[tokio::test]
async fn a_component_is_deployed_rolled_back_and_its_versions_kept() {
    let gw = gateway().await;
    let (v1, v2) = (devices_api(), with_note(&devices_api(), "v2"));
    let first = gw.admin_upload("/v1/tenants/globex/components/api", v1.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(
        (&first.json["name"], &first.json["sha256"], &first.json["active"]),
        (&json!("api"), &json!(sha256(&v1)), &json!(true))
    );
    assert_eq!(first.json["size"], v1.len());
    let author = gw.store().admin_tokens().unwrap()[0].id.clone();
    assert_eq!(first.json["created_by"], author, "the deploying admin token is recorded");
    route_to_api(&gw).await;
    let reply = gw.get("/devices/main/groups", Some(EVE)).await;
    assert_eq!(
        (reply.status, served_by(&reply)),
        (200, format!("globex/api@{}", &sha256(&v1)[..12])),
        "{}",
        reply.text
    );
    assert_eq!(reply.json["data"], json!({"groups": [], "count": 0}), "globex's device is in no group");

    let second = gw.admin_upload("/v1/tenants/globex/components/api", v2.clone()).await;
    assert_eq!(second.status, 201, "{}", second.text);
    let reply = gw.get("/devices/main/groups", Some(EVE)).await;
    assert_eq!(served_by(&reply), format!("globex/api@{}", &sha256(&v2)[..12]));

    let listed = gw.admin(Method::GET, "/v1/tenants/globex/components", Value::Null).await;
    let versions = listed.json["components"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let active: Vec<&Value> = versions.iter().filter(|v| v["active"] == true).collect();
    assert_eq!((active.len(), &active[0]["sha256"]), (1, &json!(sha256(&v2))));

    // Rollback is a swap like any other.
    let back = gw
        .admin(
            Method::POST,
            &format!("/v1/tenants/globex/components/api/versions/{}/activate", sha256(&v1)),
            Value::Null,
        )
        .await;
    assert_eq!((back.status, &back.json["active"]), (200, &json!(true)), "{}", back.text);
    assert_eq!(
        served_by(&gw.get("/devices/main/groups", Some(EVE)).await),
        format!("globex/api@{}", &sha256(&v1)[..12])
    );

    let delete_active = gw
        .admin(Method::DELETE, &format!("/v1/tenants/globex/components/api/versions/{}", sha256(&v1)), Value::Null)
        .await;
    assert_eq!(
        (delete_active.status, &delete_active.json["error"]["code"]),
        (409, &json!("CONFLICT")),
        "{}",
        delete_active.text
    );
    let delete = gw
        .admin(Method::DELETE, &format!("/v1/tenants/globex/components/api/versions/{}", sha256(&v2)), Value::Null)
        .await;
    assert_eq!(delete.status, 204, "{}", delete.text);

    // A version can be stored without being served yet.
    let staged = gw.admin_upload("/v1/tenants/globex/components/api?activate=false", with_note(&v1, "v3")).await;
    assert_eq!((staged.status, &staged.json["active"]), (201, &json!(false)), "{}", staged.text);
    assert_eq!(
        served_by(&gw.get("/devices/main/groups", Some(EVE)).await),
        format!("globex/api@{}", &sha256(&v1)[..12])
    );
    // Another tenant sees none of it.
    let acme = gw.admin(Method::GET, "/v1/tenants/acme/components", Value::Null).await;
    assert_eq!(acme.json, json!({"components": []}));
}

#[tokio::test]
async fn what_is_not_a_handler_component_is_refused_with_the_reason() {
    let gw = gateway().await;
    let cases: [(&[u8], &str); 3] =
        [(b"not wasm at all", "magic"), (b"\0asm\x01\0\0\0", "component"), (b"\0asm\x0d\0\x01\0", "incoming-handler")];
    for (bytes, reason) in cases {
        let reply = gw.admin_upload("/v1/tenants/globex/components/bad", bytes.to_vec()).await;
        assert_eq!((reply.status, &reply.json["error"]["code"]), (400, &json!("INVALID_COMPONENT")), "{}", reply.text);
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message:?} should mention {reason:?}");
    }
    let empty = gw.admin_upload("/v1/tenants/globex/components/bad", Vec::new()).await;
    assert_eq!((empty.status, &empty.json["error"]["code"]), (400, &json!("INVALID")));
    assert_eq!(
        gw.admin(Method::GET, "/v1/tenants/globex/components", Value::Null).await.json,
        json!({"components": []})
    );
    let route =
        gw.admin(Method::PUT, "/v1/tenants/globex/routes", json!({"prefix": "/x", "component": "component:bad"})).await;
    assert_eq!((route.status, &route.json["error"]["code"]), (409, &json!("CONFLICT")), "{}", route.text);
    let unknown = gw.admin_upload("/v1/tenants/nope/components/api", devices_api()).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_swap_under_load_fails_no_request_and_switches_cleanly() {
    let gw = Arc::new(gateway().await);
    let (v1, v2) = (devices_api(), with_note(&devices_api(), "v2"));
    let served = [v1.clone(), v2.clone()].map(|v| format!("globex/api@{}", &sha256(&v)[..12]));
    assert_eq!(gw.admin_upload("/v1/tenants/globex/components/api", v2.clone()).await.status, 201);
    assert_eq!(gw.admin_upload("/v1/tenants/globex/components/api", v1.clone()).await.status, 201);
    route_to_api(&gw).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (gw, stop, served) = (gw.clone(), stop.clone(), served.clone());
            tokio::spawn(async move {
                let mut seen = [0usize; 2];
                while !stop.load(Ordering::Relaxed) {
                    let reply = gw.get("/devices/main/groups", Some(EVE)).await;
                    assert_eq!(
                        (reply.status, &reply.json["data"]["count"]),
                        (200, &json!(0)),
                        "a request failed: {}",
                        reply.text
                    );
                    let version = served.iter().position(|s| *s == served_by(&reply));
                    seen[version.unwrap_or_else(|| panic!("served by {}", served_by(&reply)))] += 1;
                }
                seen
            })
        })
        .collect();
    for swap in 0..20 {
        let next = swap % 2 + 1; // v2, v1, v2, …
        let sha = sha256(if next == 1 { &v1 } else { &v2 });
        let activated = gw
            .admin(Method::POST, &format!("/v1/tenants/globex/components/api/versions/{sha}/activate"), Value::Null)
            .await;
        assert_eq!(activated.status, 200, "{}", activated.text);
        // The switch point is clean: once the swap is acknowledged, new requests get it.
        let after = gw.get("/devices/main/groups", Some(EVE)).await;
        assert_eq!(served_by(&after), served[next - 1], "swap {swap}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = [0usize; 2];
    for client in clients {
        let seen = client.await.expect("no client saw a failure");
        total = [total[0] + seen[0], total[1] + seen[1]];
    }
    assert!(total[0] > 0 && total[1] > 0, "both versions served under load: {total:?}");
}

#[tokio::test]
async fn the_sdk_readme_example_is_a_working_plugin() {
    let gw = gateway().await;
    let hello = waedge_e2e::guests::get("hello").to_vec();
    assert_eq!(gw.admin_upload("/v1/tenants/globex/components/hello", hello).await.status, 201);
    let route = gw
        .admin(Method::PUT, "/v1/tenants/globex/routes", json!({"prefix": "/hello", "component": "component:hello"}))
        .await;
    assert_eq!(route.status, 200, "{}", route.text);
    let reply = gw.get("/hello?device=main", Some(EVE)).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (200, json!({"user": "e7e00000-0000-4000-8000-000000000004", "groups": 0}))
    );
    let anonymous = gw.request(Method::GET, "/hello", None, Some("globex.test"), Vec::new()).await;
    assert_eq!(
        (anonymous.status, &anonymous.json["error"]["code"]),
        (401, &json!("UNAUTHORIZED")),
        "{}",
        anonymous.text
    );
    let stranger = gw.get("/hello?device=stranger", Some(EVE)).await;
    assert_eq!((stranger.status, &stranger.json["error"]["code"]), (403, &json!("FORBIDDEN")), "{}", stranger.text);
}

/// `componentize-py`, as `scripts/setup --test-tools` installs it, or from `PATH`.
fn componentize_py() -> Option<std::path::PathBuf> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let installed = workspace.join("target/tools/py/bin/componentize-py");
    if installed.is_file() {
        return Some(installed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("componentize-py")).find(|tool| tool.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs componentize-py: scripts/test runs it where scripts/setup --test-tools installed it"]
async fn a_python_plugin_built_with_componentize_py_is_served_unchanged() {
    let tool = componentize_py().expect("componentize-py is needed: scripts/setup --test-tools installs it");
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let component = out.path().join("python-groups.wasm");
    let built = tokio::process::Command::new(tool)
        .arg("-d")
        .arg(workspace.join("wit"))
        .args(["-w", "handler", "componentize", "app", "-o"])
        .arg(&component)
        .current_dir(workspace.join("components/examples/python-groups"))
        .output()
        .await
        .expect("componentize-py runs");
    assert!(built.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&built.stderr));

    let gw = gateway().await;
    let deployed = gw.admin_upload("/v1/tenants/acme/components/py", std::fs::read(&component).unwrap()).await;
    assert_eq!(deployed.status, 201, "{}", deployed.text);
    let route =
        gw.admin(Method::PUT, "/v1/tenants/acme/routes", json!({"prefix": "/py", "component": "component:py"})).await;
    assert_eq!(route.status, 200, "{}", route.text);
    let reply = gw.get("/py/main/groups", Some(waedge_e2e::tenants::ALICE)).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            200,
            json!({
                "language": "python",
                "device": "main",
                "user": "a11ce000-0000-4000-8000-000000000001",
                "groups": ["My Group Chat", "Family"],
            })
        ),
        "{}",
        reply.text
    );
    let refused = gw.get("/py/main/groups", Some("0d6f5c1e-0000-4000-8000-000000000000")).await;
    assert_eq!((refused.status, &refused.json["error"]["code"]), (401, &json!("UNAUTHORIZED")), "{}", refused.text);
    let forbidden = gw.get("/py/nope/groups", Some(waedge_e2e::tenants::ALICE)).await;
    assert_eq!((forbidden.status, &forbidden.json["error"]["code"]), (403, &json!("FORBIDDEN")), "{}", forbidden.text);
}

async fn deploy_example(gw: &TestGateway, name: &str, prefix: &str) {
    let deployed =
        gw.admin_upload(&format!("/v1/tenants/acme/components/{name}"), waedge_e2e::guests::get(name).to_vec()).await;
    assert_eq!(deployed.status, 201, "{}", deployed.text);
    let route = gw
        .admin(
            Method::PUT,
            "/v1/tenants/acme/routes",
            json!({"prefix": prefix, "component": format!("component:{name}")}),
        )
        .await;
    assert_eq!(route.status, 200, "{}", route.text);
}

#[tokio::test]
async fn the_example_plugins_sign_mask_and_enrich() {
    let gw = gateway().await;
    let crm = waedge_e2e::stub::serve(r#"{"customer":"John Doe","tier":"gold"}"#).await;
    let settings = json!({
        "settings": {"hmac_secret": "s3cret", "hmac_devices": "main", "crm_url": format!("http://127.0.0.1:{crm}/crm")},
        "outbound_hosts": ["127.0.0.1"],
        "outbound_private_hosts": ["127.0.0.1"],
    });
    assert_eq!(gw.admin(Method::PATCH, "/v1/tenants/acme", settings).await.status, 200);
    deploy_example(&gw, "hmac-auth", "/signed").await;
    deploy_example(&gw, "mask-phones", "/masked").await;
    deploy_example(&gw, "enrich", "/enriched").await;

    // (a) HMAC-signed requests instead of a bearer token.
    let call = |path: &str, timestamp: u64, secret: &str| {
        let headers = signed_get(path, timestamp, secret);
        let gw = &gw;
        let path = path.to_string();
        async move {
            let reply = gw.get_with_headers(&path, "acme.test", &headers).await;
            (reply.status, reply.json)
        }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (status, body) = call("/signed/main/groups", now, "s3cret").await;
    assert_eq!((status, &body["data"]["count"]), (200, &json!(2)), "{body}");
    assert_eq!(
        body["data"]["groups"][0],
        json!({"jid": "120363406798553856@g.us", "subject": "My Group Chat", "participant_count": 3})
    );
    let (status, body) = call("/signed/main/groups", now, "wrong").await;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("UNAUTHORIZED")), "{body}");
    let (status, body) = call("/signed/main/groups", now - 3600, "s3cret").await;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("UNAUTHORIZED")), "a replayed old request: {body}");
    let (status, body) = call("/signed/stranger/groups", now, "s3cret").await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("FORBIDDEN")), "{body}");

    // (b) Phone numbers masked in the response.
    let masked = gw.get("/masked/main/profile?jid=+62 812-3456-7890", Some(waedge_e2e::tenants::ALICE)).await;
    assert_eq!(
        (masked.status, masked.json.clone()),
        (
            200,
            json!({"data": {
                "jid": "6281*****7890@s.whatsapp.net",
                "lid": "1234567890987654321@lid",
                "status": "Available",
                "devices": ["6281*****7890@s.whatsapp.net", "6281*****7890:1@s.whatsapp.net"],
            }})
        ),
        "{}",
        masked.text
    );

    // (c) The profile enriched from the tenant's CRM over outbound HTTP.
    let enriched = gw.get("/enriched/main/profile?jid=6281234567890", Some(waedge_e2e::tenants::ALICE)).await;
    assert_eq!(
        (enriched.status, enriched.json.clone()),
        (
            200,
            json!({"data": {
                "jid": "6281234567890@s.whatsapp.net",
                "status": "Available",
                "crm": {"customer": "John Doe", "tier": "gold"},
                "crm_error": null,
            }})
        ),
        "{}",
        enriched.text
    );
}

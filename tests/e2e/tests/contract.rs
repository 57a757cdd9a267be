//! The contract between host and components, version by version.
//!
//! - Components built against earlier contracts (0.1.0 and 0.2.0), kept byte for byte as they
//!   were built in `fixtures/contract-<version>`, are deployed on today's host and answer what
//!   the current components answer: a host upgrade never breaks a deployed plugin.
//! - The host links exactly the `platform` world: a component importing all of it (and of
//!   0.1.0's world) is accepted, one importing anything else is refused with the import's name.
//! - The request context: the id in `x-request-id` is the one the host's log lines and the
//!   component see, and the component sees the prefix of the route it was reached by.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};
use waedge::runtime::Runtime;
use waedge_e2e::fixture::World;
use waedge_e2e::log::HostLog;
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::signing::signed_get;
use waedge_e2e::tenants::{ALICE, EVE, config};

async fn gateway() -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start(&config(None), &world).await
}

/// The earlier contract versions whose components are kept as fixtures.
const EARLIER_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];

/// Every contract version published before the current one, whose WIT `wit/compat/` keeps
/// (0.2.1 added only to 0.2.0: no component is kept built against it).
const PUBLISHED_BEFORE: [&str; 4] = ["0.1.0", "0.2.0", "0.2.1", "0.2.2"];

/// A component built against contract `version`, as it was built.
fn built_against(version: &str, name: &str) -> Vec<u8> {
    let path = fixtures().join(format!("contract-{version}")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("the fixture {}: {e}", path.display()))
}

/// Deploys `bytes` as `tenant`'s component `name`, routed at `prefix`.
async fn deploy(gw: &TestGateway, tenant: &str, name: &str, bytes: Vec<u8>, prefix: &str) {
    let deployed = gw.admin_upload(&format!("/v1/tenants/{tenant}/components/{name}"), bytes).await;
    assert_eq!(deployed.status, 201, "{}", deployed.text);
    let route = json!({"prefix": prefix, "component": format!("component:{name}")});
    let routed = gw.admin(Method::PUT, &format!("/v1/tenants/{tenant}/routes"), route).await;
    assert_eq!(routed.status, 200, "{}", routed.text);
}

fn served_by(reply: &Reply) -> &str {
    reply.headers.get("x-waedge-component").and_then(|v| v.to_str().ok()).unwrap_or("none")
}

/// A reply's status and JSON, without the time it was made (the contacts API's errors carry
/// a `timestamp`).
fn answer(reply: Reply) -> (u16, Value) {
    let mut json = reply.json;
    if let Some(object) = json.as_object_mut() {
        object.remove("timestamp");
    }
    (reply.status, json)
}

/// Asks `paths` of acme's built-in `builtin` (routed at `prefix`), then of the same
/// component built against each earlier contract version routed there instead, and asserts
/// the same answers.
async fn answers_as_the_current_one(builtin: &str, prefix: &str, paths: &[&str]) -> Vec<(u16, Value)> {
    let gw = gateway().await;
    let mut current = Vec::new();
    for path in paths {
        let reply = gw.get(path, Some(ALICE)).await;
        assert_eq!(served_by(&reply), format!("builtin:{builtin}"));
        current.push(answer(reply));
    }
    for version in EARLIER_VERSIONS {
        let name = format!("legacy-{}", version.replace('.', "-"));
        deploy(&gw, "acme", &name, built_against(version, builtin), prefix).await;
        for (path, current) in paths.iter().zip(&current) {
            let legacy = gw.get(path, Some(ALICE)).await;
            let by = served_by(&legacy).to_string();
            assert!(by.starts_with(&format!("acme/{name}@")), "{version} {path}: served by {by}");
            assert_eq!(&answer(legacy), current, "{version} {path}");
        }
    }
    current
}

#[tokio::test]
async fn a_devices_api_built_against_an_earlier_contract_answers_as_the_current_one() {
    // Every kind of answer: contacts (by LID, by number with a preview, a business, one
    // hidden by privacy), groups, and the errors whose payload changed type in 0.2.0 (a
    // device that is not connected) or that the host raises (unknown device, bad JID).
    let paths = [
        "/devices/main/profile?jid=1234567890987654321@lid",
        "/devices/main/profile?jid=6281234567890&preview=true",
        "/devices/main/profile?jid=14155550123",
        "/devices/main/profile?jid=5511999999999",
        "/devices/main/profile?jid=120363406798553856@g.us",
        "/devices/main/groups",
        "/devices/offline/groups",
        "/devices/offline/profile?jid=6281234567890",
        "/devices/nope/groups",
        "/devices/main/profile?jid=not-a-number",
    ];
    let answers = answers_as_the_current_one("devices-api", "/devices", &paths).await;
    assert_eq!(answers[0].0, 200);
    assert_eq!(
        (answers[6].0, &answers[6].1["error"]["code"]),
        (503, &json!("DEVICE_NOT_CONNECTED")),
        "the offline device's groups: {}",
        answers[6].1
    );
}

#[tokio::test]
async fn a_contacts_api_built_against_an_earlier_contract_answers_as_the_current_one() {
    // A business profile with its opening hours (typed in 0.2.0, text in 0.1.0), a plain
    // profile, pictures, and refusals.
    let paths = [
        "/contacts/profile?number=14155550123",
        "/contacts/profile?number=6281234567890",
        "/contacts/profile?jid=1234567890987654321@lid",
        "/contacts/profile-picture?number=6281234567890&preview=true",
        "/contacts/profile-picture?number=5511999999999",
        "/contacts/profile",
        "/contacts/profile?number=12",
    ];
    let answers = answers_as_the_current_one("contacts-api", "/contacts", &paths).await;
    let hours = &answers[0].1["data"]["business_profile"]["BusinessHours"];
    assert_eq!(hours[0]["DayOfWeek"], "mon", "{}", answers[0].1);
    assert_eq!(hours[0]["Mode"], "specific_hours", "{}", answers[0].1);
}

#[tokio::test]
async fn a_plugin_built_against_an_earlier_contract_reads_its_settings() {
    // 0.1.0 read settings through the contract's own `config`, 0.2.0 through `wasi:config`.
    let gw = gateway().await;
    let settings = json!({"settings": {"hmac_secret": "s3cret", "hmac_devices": "main"}});
    assert_eq!(gw.admin(Method::PATCH, "/v1/tenants/acme", settings).await.status, 200);
    for version in EARLIER_VERSIONS {
        deploy(&gw, "acme", "signed", built_against(version, "hmac-auth"), "/signed").await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let signed = |secret: &str| {
            let headers = signed_get("/signed/main/groups", now, secret);
            let gw = &gw;
            async move { gw.get_with_headers("/signed/main/groups", "acme.test", &headers).await }
        };
        let reply = signed("s3cret").await;
        assert_eq!((reply.status, &reply.json["data"]["count"]), (200, &json!(2)), "{version}: {}", reply.text);
        let wrong = signed("wrong").await;
        let refused = (wrong.status, &wrong.json["error"]["code"]);
        assert_eq!(refused, (401, &json!("UNAUTHORIZED")), "{version}: {}", wrong.text);
    }
}

#[tokio::test]
async fn a_plugin_built_against_0_1_0_logs_into_the_hosts_log_with_the_request_id() {
    let log = HostLog::install();
    let gw = gateway().await;
    deploy(&gw, "globex", "old-probe", built_against("0.1.0", "probe"), "/old-probe").await;
    let reply = gw.get("/old-probe/log?n=2", Some(EVE)).await;
    assert_eq!((reply.status, reply.json.clone()), (200, json!({"logged": 2})), "{}", reply.text);
    let id = request_id(&reply);
    let text = log.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("waedge::component") && l.contains(&id)).collect();
    assert_eq!(lines.len(), 2, "two component lines carry the request id {id}:\n{text}");
    assert!(lines.iter().all(|l| l.contains("probe line") && l.contains("tenant=\"globex\"")), "{lines:#?}");
}

/// The request id of `reply`, checked to be what the host promises: 32 hex digits.
fn request_id(reply: &Reply) -> String {
    let id = reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("an x-request-id header");
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
    id.to_string()
}

#[tokio::test]
async fn a_component_sees_its_route_prefix_and_the_request_id_the_log_carries() {
    let log = HostLog::install();
    let gw = gateway().await;
    gw.deploy_probe().await;
    let reply = gw.get("/probe/context", Some(EVE)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = request_id(&reply);
    assert_eq!(reply.json, json!({"route_prefix": "/probe", "request_id": id}));
    let text = log.text();
    let access = text.lines().find(|l| l.contains("waedge::access") && l.contains(&id));
    assert!(access.is_some_and(|l| l.contains("path=\"/probe/context\"")), "the access line carries {id}:\n{text}");

    // Every answer carries an id, the host's own errors too, and no two are the same.
    let unrouted = gw.get("/nowhere", Some(EVE)).await;
    assert_eq!(unrouted.status, 404);
    assert_ne!(request_id(&unrouted), id);
}

#[tokio::test]
async fn a_component_may_answer_with_a_request_id_of_its_own() {
    let gw = gateway().await;
    gw.deploy_probe().await;
    let reply = gw.get("/probe/context?own=upstream-7", Some(EVE)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("upstream-7"));
}

#[tokio::test]
async fn a_component_that_opens_devices_without_end_hits_the_resource_limit() {
    let gw = gateway().await;
    let probe = gw.deploy_probe().await;
    let few = gw.get("/probe/devices?n=10", Some(EVE)).await;
    assert_eq!((few.status, few.json.clone()), (200, json!({"opened": 10})), "{}", few.text);
    let endless = gw.get("/probe/devices?n=100000", Some(EVE)).await;
    assert_eq!(
        (endless.status, &endless.json["error"]["code"]),
        (500, &json!("COMPONENT_RESOURCE_LIMIT")),
        "{}",
        endless.text
    );
    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    let line = format!(
        "waedge_sandbox_violations_total{{tenant=\"globex\",component=\"{probe}\",limit=\"host_resources\"}} 1"
    );
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    // The instance that failed is gone; the next request is served by a fresh one.
    let after = gw.get("/probe/devices?n=1", Some(EVE)).await;
    assert_eq!((after.status, after.json), (200, json!({"opened": 1})));
}

/// The workspace's `wit/` directory.
fn wit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
}

/// A component that imports everything `world` (of the package at `main`, with extra WIT
/// text `extra` pushed after it) imports and exports what it exports, doing nothing: the
/// most any toolchain targeting the world can ask of the host.
fn importing_all_of(main: &Path, extra: Option<&str>, world: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let (mut package, _) = resolve.push_dir(main).expect("the WIT parses");
    if let Some(text) = extra {
        package = resolve.push_str("extra.wit", text).expect("the extra WIT parses");
    }
    let world = resolve.select_world(&[package], Some(world)).expect("the world exists");
    let abi = wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync);
    let mut module = wit_component::dummy_module(&resolve, world, abi);
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
        .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .expect("the component encodes")
}

#[test]
fn the_host_links_the_whole_platform_world_of_every_contract_version() {
    let runtime = Runtime::new().unwrap();
    let earlier = PUBLISHED_BEFORE.map(|version| (wit().join("compat").join(version), version));
    for (dir, version) in [(wit(), "0.2.3")].into_iter().chain(earlier) {
        let component = importing_all_of(&dir, None, "handler");
        if let Err(e) = runtime.compile(&format!("handler@{version}"), &component) {
            panic!("a component importing all of handler@{version} is refused: {e}");
        }
    }
}

#[test]
fn an_event_handler_importing_the_whole_platform_is_accepted_for_events_only() {
    let component = importing_all_of(&wit(), None, "event-handler");
    let compiled = Runtime::new().unwrap().compile("event-handler@0.2.3", &component).expect("the host links it");
    assert!(compiled.handles_events() && !compiled.serves_http());
}

/// A plugin's world: the handler world and one interface the host does not offer.
const PLUGIN_WITH_AN_UNKNOWN_IMPORT: &str = "package test:extra;\n\
     interface storage { get: func(key: string) -> option<string>; }\n\
     world plugin { include waedge:gateway/handler@0.2.3; import storage; }";

#[test]
fn an_import_outside_the_platform_world_is_refused_with_its_name() {
    let component = importing_all_of(&wit(), Some(PLUGIN_WITH_AN_UNKNOWN_IMPORT), "plugin");
    let refused = Runtime::new().unwrap().compile("plugin", &component).err().expect("the import is refused");
    let message = format!("{refused:#}");
    assert!(message.contains("test:extra/storage"), "the refusal names the import: {message}");
}

#[tokio::test]
async fn the_refusal_of_an_unknown_import_reaches_the_operator() {
    let gw = gateway().await;
    let component = importing_all_of(&wit(), Some(PLUGIN_WITH_AN_UNKNOWN_IMPORT), "plugin");
    let reply = gw.admin_upload("/v1/tenants/globex/components/plugin", component).await;
    assert_eq!((reply.status, &reply.json["error"]["code"]), (400, &json!("INVALID_COMPONENT")), "{}", reply.text);
    let message = reply.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("test:extra/storage"), "{message}");
    assert_eq!(
        gw.admin(Method::GET, "/v1/tenants/globex/components", Value::Null).await.json,
        json!({"components": []})
    );
}

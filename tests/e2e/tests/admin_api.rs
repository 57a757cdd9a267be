//! The admin API over HTTP: tenants, users, tokens, devices and routes change what the
//! gateway serves at once; every bad input gets a JSON error; no tenant reaches another's
//! users, tokens, devices or routes.

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, EVE, config};

const ALICE_ID: &str = "a11ce000-0000-4000-8000-000000000001";
const EVE_ID: &str = "e7e00000-0000-4000-8000-000000000004";

async fn gateway() -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start(&config(None), &world).await
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!((reply.status, reply.json["error"]["code"].as_str()), (status, Some(code)), "body: {}", reply.text);
    let message = reply.json["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "an error says what is wrong: {}", reply.text);
}

#[tokio::test]
async fn the_admin_api_needs_an_admin_token() {
    let gw = gateway().await;
    assert_error(&gw.admin_as(Method::GET, "/v1/tenants", None, Value::Null).await, 401, "UNAUTHORIZED");
    assert_error(&gw.admin_as(Method::GET, "/v1/tenants", Some(ALICE), Value::Null).await, 401, "UNAUTHORIZED");
    let revoked = gw.store().create_admin_token(None, Default::default()).unwrap();
    gw.store().revoke_admin_token(&revoked.0.id).unwrap();
    assert_error(&gw.admin_as(Method::GET, "/v1/tenants", Some(&revoked.1), Value::Null).await, 401, "UNAUTHORIZED");
    // A token made to expire works until then, and is refused with the reason afterwards.
    let (_, lasting) =
        gw.store().create_admin_token(Some(std::time::Duration::from_secs(3_600)), Default::default()).unwrap();
    assert_eq!(gw.admin_as(Method::GET, "/v1/tenants", Some(&lasting), Value::Null).await.status, 200);
    let (expired, token) = gw.store().create_admin_token(Some(std::time::Duration::ZERO), Default::default()).unwrap();
    let refused = gw.admin_as(Method::GET, "/v1/tenants", Some(&token), Value::Null).await;
    assert_error(&refused, 401, "UNAUTHORIZED");
    let at = expired.expires_at.expect("an expiry");
    assert!(
        refused.json["error"]["message"].as_str().unwrap().contains(&format!("expired at {at}")),
        "{}",
        refused.text
    );
    // Health, readiness and metrics are open.
    let health = gw.admin_as(Method::GET, "/healthz", None, Value::Null).await;
    assert_eq!((health.status, health.json.clone()), (200, json!({"status": "ok"})));
    let ready = gw.admin_as(Method::GET, "/readyz", None, Value::Null).await;
    assert_eq!((ready.status, &ready.json["status"], &ready.json["tenants"]), (200, &json!("ready"), &json!(2)));
    assert_eq!(ready.json["devices"]["connected"], 3, "{}", ready.text);
}

#[tokio::test]
async fn an_admin_token_of_one_tenant_reaches_that_tenant_only() {
    let gw = gateway().await;
    let scope = |read_only| waedge_store::admin::AdminScope { tenant: Some("acme".into()), read_only };
    let (_, acme) = gw.store().create_admin_token(None, scope(false)).unwrap();
    let (_, reader) = gw.store().create_admin_token(None, scope(true)).unwrap();
    let get = async |path: &str, token: &str| gw.admin_as(Method::GET, path, Some(token), Value::Null).await;
    assert_eq!(get("/v1/tenants/acme", &acme).await.status, 200);
    assert_eq!(get("/v1/tenants/acme/devices", &acme).await.status, 200);
    for elsewhere in ["/v1/tenants/globex", "/v1/tenants/globex/devices", "/v1/tenants", "/v1/tenants/acmex/users"] {
        assert_error(&get(elsewhere, &acme).await, 403, "FORBIDDEN");
    }
    // Its own users, devices, routes and components, but not its limits.
    let raise = json!({"limits": {"requests_per_second": 100_000}});
    assert_error(&gw.admin_as(Method::PATCH, "/v1/tenants/acme", Some(&acme), raise).await, 403, "FORBIDDEN");
    assert_error(&gw.admin_as(Method::DELETE, "/v1/tenants/acme", Some(&acme), Value::Null).await, 403, "FORBIDDEN");
    let user = json!({"name": "Zed", "devices": ["main"]});
    let created = gw.admin_as(Method::POST, "/v1/tenants/acme/users", Some(&acme), user.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    // Not to a component file on the server, which only the operator's tokens name.
    let file = json!({"prefix": "/x", "component": "/etc/hostname"});
    assert_error(&gw.admin_as(Method::PUT, "/v1/tenants/acme/routes", Some(&acme), file).await, 403, "FORBIDDEN");
    // A read-only token reads, and changes nothing; following a linking or its QR code is a change.
    for linking in ["/v1/tenants/acme/devices/main/link", "/v1/tenants/acme/devices/main/link/events"] {
        assert_error(&get(linking, &reader).await, 403, "FORBIDDEN");
    }
    assert_error(&gw.admin_as(Method::POST, "/v1/tenants/acme/users", Some(&reader), user).await, 403, "FORBIDDEN");
    assert_eq!(get("/v1/tenants/acme/users", &reader).await.status, 200);
    // Deleting the tenant takes its tokens with it.
    assert_eq!(gw.admin(Method::DELETE, "/v1/tenants/acme", Value::Null).await.status, 204);
    assert_error(&get("/v1/tenants/acme/users", &acme).await, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn tenants_are_created_changed_and_deleted() {
    let gw = gateway().await;
    let created = gw
        .admin(Method::POST, "/v1/tenants", json!({"id": "initech", "name": "Initech", "hosts": ["Initech.Test"], "limits": {"requests_per_second": 5}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        (&created.json["id"], &created.json["name"], &created.json["hosts"], &created.json["limits"]),
        (&json!("initech"), &json!("Initech"), &json!(["initech.test"]), &json!({"requests_per_second": 5}))
    );
    assert!(created.json["created_at"].as_str().unwrap().ends_with('Z'));
    // A new tenant has no device; a tenant that does not exist has no device list.
    let devices = gw.admin(Method::GET, "/v1/tenants/initech/devices", Value::Null).await;
    assert_eq!((devices.status, &devices.json), (200, &json!({"devices": []})), "{}", devices.text);
    assert_error(&gw.admin(Method::GET, "/v1/tenants/nobody/devices", Value::Null).await, 404, "NOT_FOUND");
    let listed = gw.admin(Method::GET, "/v1/tenants", Value::Null).await;
    let ids: Vec<&str> = listed.json["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "globex", "initech"]);

    let patched = gw.admin(Method::PATCH, "/v1/tenants/initech", json!({"hosts": ["initech.example"]})).await;
    assert_eq!(
        (patched.status, &patched.json["hosts"], &patched.json["name"]),
        (200, &json!(["initech.example"]), &json!("Initech"))
    );

    assert_error(&gw.admin(Method::POST, "/v1/tenants", json!({"id": "initech"})).await, 409, "CONFLICT");
    // Ids name directories: on a case-insensitive file system `Initech` would share `initech`'s
    // device stores.
    let twin = gw.admin(Method::POST, "/v1/tenants", json!({"id": "Initech"})).await;
    assert_error(&twin, 409, "CONFLICT");
    assert!(twin.text.contains("differ only in case"), "{}", twin.text);
    assert_error(
        &gw.admin(Method::POST, "/v1/tenants", json!({"id": "x", "hosts": ["acme.test"]})).await,
        409,
        "CONFLICT",
    );
    assert_error(&gw.admin(Method::POST, "/v1/tenants", json!({"id": "a b"})).await, 400, "INVALID");
    assert_error(&gw.admin(Method::POST, "/v1/tenants", json!({"id": "y", "colour": "red"})).await, 400, "INVALID");
    assert_error(
        &gw.admin(Method::POST, "/v1/tenants", json!({"id": "z", "limits": {"memory_mib": 0}})).await,
        400,
        "INVALID",
    );
    assert_error(
        &gw.admin(Method::POST, "/v1/tenants", json!({"id": "w", "hosts": ["http://w.test:80"]})).await,
        400,
        "INVALID",
    );
    assert_error(&gw.admin(Method::GET, "/v1/tenants/nope", Value::Null).await, 404, "NOT_FOUND");
    let not_allowed = gw.admin(Method::PUT, "/v1/tenants/initech", json!({})).await;
    assert_error(&not_allowed, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(not_allowed.headers["allow"], "GET, PATCH, DELETE");
    let not_json = gw.admin_as(Method::GET, "/v1/nothing", Some(gw.admin_token()), Value::Null).await;
    assert_error(&not_json, 404, "NO_ENDPOINT");

    assert_eq!(gw.admin(Method::DELETE, "/v1/tenants/initech", Value::Null).await.status, 204);
    assert_error(&gw.admin(Method::GET, "/v1/tenants/initech", Value::Null).await, 404, "NOT_FOUND");
}

/// JSON Schema 2020-12 counts `72.0` as the integer 72: the document's integer limits are
/// taken so written, and a fraction is refused, naming the number.
#[tokio::test]
async fn a_limit_written_as_a_whole_float_is_that_number() {
    let gw = gateway().await;
    let limits = json!({"memory_mib": 72.0, "cache_ttl_seconds": 0.0, "max_request_body_bytes": 1024.0});
    let created = gw.admin(Method::POST, "/v1/tenants", json!({"id": "initech", "limits": limits})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let stored = json!({"memory_mib": 72, "cache_ttl_seconds": 0, "max_request_body_bytes": 1024});
    assert_eq!(created.json["limits"], stored);
    let patched = gw.admin(Method::PATCH, "/v1/tenants/initech", json!({"limits": {"burst": 5.0}})).await;
    assert_eq!((patched.status, &patched.json["limits"]), (200, &json!({"burst": 5})), "{}", patched.text);
    for refused in [json!(72.5), json!(-1.0), json!(1e30), json!("72"), Value::Null] {
        let reply = gw.admin(Method::PATCH, "/v1/tenants/initech", json!({"limits": {"memory_mib": refused}})).await;
        assert_error(&reply, 400, "INVALID");
        assert!(reply.text.contains("expected a whole number"), "{refused}: {}", reply.text);
    }
    let kept = gw.admin(Method::GET, "/v1/tenants/initech", Value::Null).await;
    assert_eq!(kept.json["limits"], json!({"burst": 5}));
}

/// A user's id is a UUID or left out: `null` is no id, as the document types it a string.
#[tokio::test]
async fn a_null_user_id_is_refused() {
    let gw = gateway().await;
    let null_id = json!({"id": null, "name": "Bob", "devices": ["main"]});
    let created = gw.admin(Method::POST, "/v1/tenants/acme/users", null_id.clone()).await;
    assert_error(&created, 400, "INVALID");
    assert!(created.text.contains("invalid type: null"), "{}", created.text);
    let replaced = gw.admin(Method::PUT, &format!("/v1/tenants/acme/users/{ALICE_ID}"), null_id).await;
    assert_error(&replaced, 400, "INVALID");
    let users = gw.admin(Method::GET, "/v1/tenants/acme/users", Value::Null).await;
    let names: Vec<&str> =
        users.json["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"Bob"), "nothing was created or replaced: {}", users.text);
}

/// A field of a tenant patch is left out to keep it; `null` (which would read as "remove" in a
/// JSON merge patch) is refused, as the document types every field without it.
#[tokio::test]
async fn a_null_field_in_a_tenant_patch_is_refused() {
    let gw = gateway().await;
    let before = gw.admin(Method::GET, "/v1/tenants/globex", Value::Null).await;
    for field in ["name", "hosts", "limits", "outbound_hosts", "outbound_private_hosts", "settings"] {
        let reply = gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"name": "Globex Corp", field: null})).await;
        assert_error(&reply, 400, "INVALID");
        assert!(reply.text.contains("invalid type: null"), "{field}: {}", reply.text);
    }
    assert_error(&gw.admin(Method::POST, "/v1/tenants", json!({"id": "initech", "name": null})).await, 400, "INVALID");
    assert_eq!(gw.admin(Method::GET, "/v1/tenants/globex", Value::Null).await.json, before.json);
}

#[tokio::test]
async fn a_new_users_token_works_at_once_and_stops_when_revoked() {
    let gw = gateway().await;
    let user = gw.admin(Method::POST, "/v1/tenants/acme/users", json!({"name": "Bob", "devices": ["main"]})).await;
    assert_eq!(user.status, 201, "{}", user.text);
    let user_id = user.json["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&user_id).unwrap().get_version_num(), 4);
    assert_eq!((&user.json["tenant"], &user.json["devices"]), (&json!("acme"), &json!(["main"])));

    let created = gw.admin(Method::POST, &format!("/v1/tenants/acme/users/{user_id}/tokens"), Value::Null).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let token = created.json["token"].as_str().unwrap().to_string();
    let token_id = created.json["id"].as_str().unwrap().to_string();
    assert_ne!(token, token_id);
    let reply = gw.get("/devices/main/groups", Some(&token)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let listed = gw.admin(Method::GET, &format!("/v1/tenants/acme/users/{user_id}/tokens"), Value::Null).await;
    assert_eq!(listed.json["tokens"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&token), "a token is never shown again");
    assert!(listed.json["tokens"][0].get("token").is_none());
    assert_eq!(listed.json["tokens"][0]["revoked_at"], Value::Null);

    let revoked =
        gw.admin(Method::DELETE, &format!("/v1/tenants/acme/users/{user_id}/tokens/{token_id}"), Value::Null).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(revoked.json["revoked_at"].is_string());
    // Refused by the very next request: with no default tenant, no tenant knows the token.
    let refused = gw.get("/devices/main/groups", Some(&token)).await;
    assert_eq!(
        (refused.status, &refused.json["error"]["code"]),
        (401, &Value::from("UNAUTHORIZED")),
        "{}",
        refused.text
    );
    // And refused by the tenant's components when the tenant is chosen by host name.
    let by_host = gw.request(Method::GET, "/devices/main/groups", Some(&token), Some("acme.test"), Vec::new()).await;
    assert_eq!(by_host.status, 401, "{}", by_host.text);

    // A device the tenant does not have is a conflict with what it has, not a malformed body.
    let unknown_device = gw.admin(Method::POST, "/v1/tenants/acme/users", json!({"devices": ["nope"]})).await;
    assert_error(&unknown_device, 409, "CONFLICT");
    let replaced = json!({"devices": ["main", "nope"]});
    let unknown_device = gw.admin(Method::PUT, &format!("/v1/tenants/acme/users/{user_id}"), replaced).await;
    assert_error(&unknown_device, 409, "CONFLICT");
    assert_error(&gw.admin(Method::POST, "/v1/tenants/acme/users", json!({"id": "bob"})).await, 400, "INVALID");
    // The id in a replacement is ignored, but a body that is not a user is refused.
    let not_a_uuid = json!({"id": "", "devices": ["main"]});
    let replaced = gw.admin(Method::PUT, &format!("/v1/tenants/acme/users/{user_id}"), not_a_uuid).await;
    assert_error(&replaced, 400, "INVALID");
    // Replacing a user needs its new state: an empty body does not wipe it.
    assert_error(
        &gw.admin(Method::PUT, &format!("/v1/tenants/acme/users/{user_id}"), Value::Null).await,
        400,
        "INVALID",
    );
    // Another tenant's user id cannot be taken, and the answer does not say whose it is.
    let taken = gw.admin(Method::POST, "/v1/tenants/acme/users", json!({"id": EVE_ID})).await;
    assert_error(&taken, 409, "CONFLICT");
    assert!(!taken.text.contains("globex") && !taken.text.contains("exists"), "{}", taken.text);
    assert_eq!(gw.admin(Method::DELETE, &format!("/v1/tenants/acme/users/{user_id}"), Value::Null).await.status, 204);
}

#[tokio::test]
async fn no_tenant_reaches_anothers_users_tokens_devices_or_routes() {
    let gw = gateway().await;
    // Admin paths are scoped by tenant: globex's user is not acme's.
    for (method, path) in [
        (Method::GET, format!("/v1/tenants/acme/users/{EVE_ID}")),
        (Method::PUT, format!("/v1/tenants/acme/users/{EVE_ID}")),
        (Method::DELETE, format!("/v1/tenants/acme/users/{EVE_ID}")),
        (Method::GET, format!("/v1/tenants/acme/users/{EVE_ID}/tokens")),
        (Method::POST, format!("/v1/tenants/acme/users/{EVE_ID}/tokens")),
        (Method::GET, format!("/v1/tenants/globex/users/{ALICE_ID}")),
        (Method::GET, "/v1/tenants/globex/devices/stranger".to_string()),
        (Method::DELETE, "/v1/tenants/globex/devices/offline".to_string()),
        (Method::POST, "/v1/tenants/globex/devices/fresh/link".to_string()),
    ] {
        let reply = gw.admin(method.clone(), &path, json!({})).await;
        assert_error(&reply, 404, "NOT_FOUND");
    }
    let eve_tokens = gw.store().tokens("globex", EVE_ID).unwrap();
    let reply = gw
        .admin(Method::DELETE, &format!("/v1/tenants/acme/users/{ALICE_ID}/tokens/{}", eve_tokens[0].id), Value::Null)
        .await;
    assert_error(&reply, 404, "NOT_FOUND");
    assert_error(
        &gw.admin(Method::POST, "/v1/tenants/acme/users", json!({"devices": ["main", "nope"]})).await,
        409,
        "CONFLICT",
    );
    // A globex user cannot be given an acme-only device.
    let reply =
        gw.admin(Method::PUT, &format!("/v1/tenants/globex/users/{EVE_ID}"), json!({"devices": ["stranger"]})).await;
    assert_error(&reply, 409, "CONFLICT");

    // On the API: a tenant's token, device and route are its own.
    let on_globex = gw.request(Method::GET, "/devices/main/groups", Some(ALICE), Some("globex.test"), Vec::new()).await;
    assert_eq!(on_globex.status, 401, "acme's token on globex: {}", on_globex.text);
    let stranger = gw.get("/devices/stranger/groups", Some(EVE)).await;
    assert!(matches!(stranger.status, 403 | 404), "globex has no device `stranger`: {}", stranger.text);
    let route = gw
        .admin(
            Method::PUT,
            "/v1/tenants/acme/routes",
            json!({"prefix": "/acme-only", "component": "builtin:devices-api"}),
        )
        .await;
    assert_eq!(route.status, 200, "{}", route.text);
    let elsewhere = gw.get("/acme-only/main/groups", Some(EVE)).await;
    assert_error(&elsewhere, 404, "NO_ROUTE");
    // Deleting a tenant leaves the other serving.
    assert_eq!(gw.admin(Method::DELETE, "/v1/tenants/acme", Value::Null).await.status, 204);
    assert_eq!(gw.get("/devices/main/groups", Some(ALICE)).await.json["error"]["code"], "UNAUTHORIZED");
    assert_eq!(gw.get("/devices/main/groups", Some(EVE)).await.status, 200);
}

#[tokio::test]
async fn devices_and_routes_change_what_is_served() {
    let gw = gateway().await;
    let created = gw.admin(Method::POST, "/v1/tenants/globex/devices", json!({"id": "second"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        (&created.json["state"], &created.json["linking"], &created.json["jid"]),
        (&json!("unlinked"), &json!(false), &Value::Null)
    );
    assert_error(&gw.admin(Method::POST, "/v1/tenants/globex/devices", json!({"id": "second"})).await, 409, "CONFLICT");
    assert_error(&gw.admin(Method::POST, "/v1/tenants/globex/devices", json!({"id": "SECOND"})).await, 409, "CONFLICT");
    assert_error(
        &gw.admin(Method::POST, "/v1/tenants/globex/devices", json!({"id": "no/slash"})).await,
        400,
        "INVALID",
    );
    let main = gw.admin(Method::GET, "/v1/tenants/globex/devices/main", Value::Null).await;
    assert_eq!(main.json["state"], "connected", "{}", main.text);
    // The list is each device as it is shown alone (live state, linking), in id order.
    let second = gw.admin(Method::GET, "/v1/tenants/globex/devices/second", Value::Null).await;
    let listed = gw.admin(Method::GET, "/v1/tenants/globex/devices", Value::Null).await;
    assert_eq!(listed.json, json!({ "devices": [main.json, second.json] }), "{}", listed.text);
    // Fixture devices are linked by their world file; a connected device is not linked again.
    assert_error(&gw.admin(Method::POST, "/v1/tenants/globex/devices/main/link", Value::Null).await, 409, "CONFLICT");
    assert_error(
        &gw.admin(Method::GET, "/v1/tenants/globex/devices/main/link/qr.png", Value::Null).await,
        404,
        "NOT_LINKING",
    );
    let pair =
        gw.admin(Method::POST, "/v1/tenants/globex/devices/second/pair-code", json!({"phone_number": "12"})).await;
    assert_error(&pair, 400, "INVALID");

    let bad =
        gw.admin(Method::PUT, "/v1/tenants/globex/routes", json!({"prefix": "/x", "component": "builtin:nope"})).await;
    assert_error(&bad, 409, "CONFLICT");
    assert!(
        bad.json["error"]["message"].as_str().unwrap().contains("builtin:devices-api"),
        "names the built-ins: {}",
        bad.text
    );
    assert_error(
        &gw.admin(Method::PUT, "/v1/tenants/globex/routes", json!({"prefix": "x", "component": "builtin:devices-api"}))
            .await,
        400,
        "INVALID",
    );
    // What names no component is invalid; what names no component this build or tenant has
    // conflicts with what it has.
    for (component, status, code) in [
        ("", 400, "INVALID"),
        ("builtin:", 400, "INVALID"),
        ("component: ", 400, "INVALID"),
        ("builtin: devices-api", 409, "CONFLICT"),
        ("native:devices-profile-x", 409, "CONFLICT"),
        ("component:undeployed", 409, "CONFLICT"),
        ("/nowhere/x.wasm", 409, "CONFLICT"),
    ] {
        let refused =
            gw.admin(Method::PUT, "/v1/tenants/globex/routes", json!({"prefix": "/x", "component": component})).await;
        assert_error(&refused, status, code);
        let message = refused.json["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("route component: "), "{component:?}: {message}");
    }
    let moved = gw
        .admin(
            Method::PUT,
            "/v1/tenants/globex/routes",
            json!({"prefix": "/v2/devices/", "component": "builtin:devices-api"}),
        )
        .await;
    assert_eq!((moved.status, &moved.json["prefix"]), (200, &json!("/v2/devices")));
    assert_eq!(gw.admin(Method::DELETE, "/v1/tenants/globex/routes?prefix=%2Fdevices", Value::Null).await.status, 204);
    assert_error(&gw.get("/devices/main/groups", Some(EVE)).await, 404, "NO_ROUTE");
    assert_error(
        &gw.admin(Method::DELETE, "/v1/tenants/globex/routes?prefix=/devices", Value::Null).await,
        404,
        "NOT_FOUND",
    );
    assert_error(&gw.admin(Method::DELETE, "/v1/tenants/globex/routes", Value::Null).await, 400, "INVALID");
    let routes = gw.admin(Method::GET, "/v1/tenants/globex/routes", Value::Null).await;
    assert_eq!(
        routes.json,
        json!({"routes": [
            {"prefix": "/contacts", "component": "builtin:contacts-api"},
            {"prefix": "/v2/devices", "component": "builtin:devices-api"},
        ]})
    );
    assert_eq!(gw.admin(Method::DELETE, "/v1/tenants/globex/devices/second", Value::Null).await.status, 204);
    assert_error(&gw.admin(Method::GET, "/v1/tenants/globex/devices/second", Value::Null).await, 404, "NOT_FOUND");
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after() {
    let gw = gateway().await;
    let limited =
        gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"limits": {"requests_per_second": 1, "burst": 2}})).await;
    assert_eq!(limited.status, 200, "{}", limited.text);
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(gw.get("/devices/main/groups", Some(EVE)).await.status);
        }
        statuses
    };
    assert_eq!(statuses, [200, 200, 429]);
    let refused = gw.get("/devices/main/groups", Some(EVE)).await;
    assert_error(&refused, 429, "TOO_MANY_REQUESTS");
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Other tenants are not affected.
    assert_eq!(gw.get("/devices/main/groups", Some(ALICE)).await.status, 200);

    let capped = gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"limits": {"max_request_body_bytes": 10}})).await;
    assert_eq!(capped.status, 200);
    let big = gw.request(Method::POST, "/devices/main/groups", Some(EVE), None, vec![b'x'; 11]).await;
    assert_error(&big, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn metrics_count_requests_by_tenant_route_component_and_status() {
    let gw = gateway().await;
    assert_eq!(gw.get("/devices/main/groups", Some(EVE)).await.status, 200);
    assert_eq!(gw.get("/devices/main/groups", Some(EVE)).await.status, 200);
    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = &metrics.text;
    let labels = r#"tenant="globex",route="/devices",component="builtin:devices-api""#;
    assert!(text.contains(&format!("waedge_requests_total{{{labels},status=\"200\"}} 2\n")), "{text}");
    assert!(text.contains(&format!("waedge_request_duration_seconds_count{{{labels}}} 2\n")), "{text}");
    // The second request was served by the instance the first one made.
    assert!(
        text.contains("waedge_component_instantiation_seconds_count{component=\"builtin:devices-api\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("waedge_cache_lookups_total{result=\"hit\"} 1\n"), "the second call hit the cache: {text}");
    assert!(text.contains("waedge_device_state{tenant=\"globex\",device=\"main\",state=\"connected\"} 1\n"), "{text}");
    // A deleted tenant's series go with it.
    assert_eq!(gw.admin(Method::DELETE, "/v1/tenants/globex", Value::Null).await.status, 204);
    let after = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    assert!(!after.contains("tenant=\"globex\""), "{after}");
}

#[tokio::test]
async fn a_method_a_path_does_not_take_is_405_with_allow() {
    let gw = gateway().await;
    for (method, path, allow) in [
        ("TRACE", "/v1/tenants", "GET, POST"),
        ("DELETE", "/v1/tenants/", "GET, POST"),
        ("PUT", "/healthz", "GET"),
        ("POST", "/openapi.json", "GET"),
        ("PATCH", "/v1/tenants/acme/users/a11ce000-0000-4000-8000-000000000001", "GET, PUT, DELETE"),
        ("GET", "/v1/tenants/acme/devices/main/pair-code", "POST"),
        ("POST", "/v1/tenants/acme/routes", "GET, PUT, DELETE"),
    ] {
        let reply = gw.admin(method.parse().unwrap(), path, Value::Null).await;
        assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(reply.headers.get("allow").map(|v| v.to_str().unwrap()), Some(allow), "{method} {path}");
        assert_eq!(reply.headers["content-type"], "application/json");
    }
    // The admin token is still checked first, and a path the API does not have stays 404.
    let anonymous = gw.admin_as(Method::PUT, "/v1/tenants", None, Value::Null).await;
    assert_error(&anonymous, 401, "UNAUTHORIZED");
    for path in ["/v1/tenants/acme/nothing", "/v1/tenants/acme/devices/main/%6Cink", "/v2/tenants"] {
        let reply = gw.admin(Method::TRACE, path, Value::Null).await;
        assert_error(&reply, 404, "NO_ENDPOINT");
        assert!(reply.headers.get("allow").is_none(), "{path}");
    }
}

#[tokio::test]
async fn a_tenants_events_are_listed_a_page_at_a_time_to_that_tenant_only() {
    let gw = gateway().await;
    let message = |device: &str, id: &str| waedge_store::events::NewEvent {
        device: device.into(),
        kind: "message.received".into(),
        chat: "6281234567890@s.whatsapp.net".into(),
        dedup: Some(format!("6281234567890@s.whatsapp.net|6281234567890@s.whatsapp.net|{id}")),
        at: "2026-12-05T15:00:00Z".into(),
        data: json!({ "message_id": id }),
    };
    let acme = gw.store().append_events("acme", &[message("main", "A"), message("main", "B"), message("fresh", "C")]);
    let ids: Vec<String> = acme.unwrap().into_iter().map(|event| event.id).collect();
    gw.store().append_events("globex", &[message("main", "G")]).unwrap();

    let list = async |query: &str| gw.admin(Method::GET, &format!("/v1/tenants/acme/events{query}"), Value::Null).await;
    let all = list("").await;
    assert_eq!(all.status, 200, "{}", all.text);
    let events = all.json["events"].as_array().unwrap();
    let seen: Vec<(&str, &str, u64)> = events
        .iter()
        .map(|e| (e["data"]["message_id"].as_str().unwrap(), e["device"].as_str().unwrap(), e["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, [("A", "main", 1), ("B", "main", 2), ("C", "fresh", 1)], "numbered per device and chat");
    assert_eq!(events[0]["tenant"], "acme");
    assert_eq!(all.json["next"], json!(ids[2]));

    let page = list("?limit=2").await;
    assert_eq!(page.json["events"].as_array().unwrap().len(), 2);
    assert_eq!(page.json["next"], json!(ids[1]));
    let rest = list(&format!("?after={}", ids[1])).await;
    assert_eq!(rest.json["events"][0]["id"], json!(ids[2]));
    let done = list(&format!("?after={}", ids[2])).await;
    assert_eq!(done.json, json!({ "events": [], "next": ids[2] }), "an empty page points where it started");

    assert_error(&list("?limit=0").await, 400, "INVALID");
    assert_error(&list("?limit=1001").await, 400, "INVALID");
    assert_error(&list("?limit=ten").await, 400, "INVALID");
    // An id of another tenant's event is not a place in this tenant's list.
    let globex = gw.admin(Method::GET, "/v1/tenants/globex/events", Value::Null).await;
    let theirs = globex.json["events"][0]["id"].as_str().unwrap().to_string();
    assert_error(&list(&format!("?after={theirs}")).await, 404, "NOT_FOUND");
    assert_error(&gw.admin(Method::GET, "/v1/tenants/nobody/events", Value::Null).await, 404, "NOT_FOUND");

    let scope = waedge_store::admin::AdminScope { tenant: Some("globex".into()), read_only: true };
    let (_, reader) = gw.store().create_admin_token(None, scope).unwrap();
    let refused = gw.admin_as(Method::GET, "/v1/tenants/acme/events", Some(&reader), Value::Null).await;
    assert_error(&refused, 403, "FORBIDDEN");
    let own = gw.admin_as(Method::GET, "/v1/tenants/globex/events", Some(&reader), Value::Null).await;
    assert_eq!((own.status, own.json["events"].as_array().map(Vec::len)), (200, Some(1)), "{}", own.text);
}

#[tokio::test]
async fn webhooks_take_only_what_they_can_deliver_and_stay_with_their_tenant() {
    let gw = gateway().await;
    let create =
        async |tenant: &str, body: Value| gw.admin(Method::POST, &format!("/v1/tenants/{tenant}/webhooks"), body).await;
    let created = create("acme", json!({"url": "https://crm.example/in", "device": "main"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_string();
    assert!(created.json["secret"].as_str().unwrap().starts_with("whsec_"), "{}", created.text);
    assert_eq!((&created.json["device"], &created.json["events"]), (&json!("main"), &json!([])));

    for (body, status, code) in [
        (json!({"url": "ftp://crm.example/in"}), 400, "INVALID"),
        (json!({"url": "https://user:pass@crm.example/in"}), 400, "INVALID"),
        (json!({"url": "https://crm.example/in", "events": ["message.sent"]}), 400, "INVALID"),
        (json!({"url": "https://crm.example/in", "secret": "chosen-by-the-caller"}), 400, "INVALID"),
        (json!({"url": "https://crm.example/in", "device": null}), 400, "INVALID"),
        (json!({"url": "https://crm.example/in", "device": "nowhere"}), 404, "NOT_FOUND"),
    ] {
        assert_error(&create("acme", body.clone()).await, status, code);
    }

    // Another tenant's id names nothing here, and its token reaches nothing there.
    for path in [format!("/v1/tenants/globex/webhooks/{id}"), format!("/v1/tenants/globex/webhooks/{id}/deliveries")] {
        assert_error(&gw.admin(Method::GET, &path, Value::Null).await, 404, "NOT_FOUND");
    }
    let scope = waedge_store::admin::AdminScope { tenant: Some("globex".into()), read_only: false };
    let (_, globex) = gw.store().create_admin_token(None, scope).unwrap();
    let theirs = gw.admin_as(Method::GET, "/v1/tenants/acme/webhooks", Some(&globex), Value::Null).await;
    assert_error(&theirs, 403, "FORBIDDEN");
    let listed = gw.admin(Method::GET, "/v1/tenants/acme/webhooks", Value::Null).await;
    assert_eq!(listed.json["webhooks"].as_array().map(Vec::len), Some(1), "{}", listed.text);
    assert!(listed.json["webhooks"][0].get("secret").is_none(), "{}", listed.text);

    // A webhook of one device goes with the device.
    assert_eq!(gw.admin(Method::DELETE, "/v1/tenants/acme/devices/main", Value::Null).await.status, 204);
    assert_error(
        &gw.admin(Method::GET, &format!("/v1/tenants/acme/webhooks/{id}"), Value::Null).await,
        404,
        "NOT_FOUND",
    );
}

/// An event stream lasts only as long as the token that opened it: revoked, the stream ends
/// (within the stream's 5 s look at the outbox), instead of following the tenant's events for
/// whoever still holds the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_token_is_revoked() {
    let gw = gateway().await;
    let scope = waedge_store::admin::AdminScope { tenant: Some("globex".into()), read_only: true };
    let (record, token) = gw.store().create_admin_token(None, scope).unwrap();
    let url = format!("{}/v1/tenants/globex/events/stream", gw.admin_base());
    let mut stream = reqwest::Client::new().get(url).bearer_auth(&token).send().await.expect("the stream opens");
    assert_eq!(stream.status(), 200);

    gw.store().revoke_admin_token(&record.id).unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(chunk) = stream.chunk().await.expect("the stream reads") {
            let text = String::from_utf8_lossy(&chunk).into_owned();
            assert!(text.starts_with(": idle") || text.starts_with("id: "), "{text}");
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of a revoked token is still open after 20 s");
}

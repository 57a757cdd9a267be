//! The OpenAPI document (`host/openapi.json`, served at `/openapi.json`) against the
//! implementation: every documented admin operation exists and succeeds on its happy path (those
//! on a device's WhatsApp session on the real device layer, against wa-sim), answering only with
//! documented status codes, content types and fixed headers, and its JSON bodies match the
//! documented schemas, checked by a JSON Schema 2020-12 validator (the `jsonschema` crate); so
//! do the built-in APIs', the messages endpoints' successes on fixture devices that take every
//! send (the fixture world's own send nothing) and their refusals on the fixture world.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;
use waedge_contract::types::{
    BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, LidVerification,
    LidVerificationState, MessageStatus, OnWhatsapp, ProfilePicture, SendOutcome, SentMessage, UserInfo, VerifiedLink,
};
use waedge_device::link::LinkState;
use waedge_device::whatsapp::WhatsappDevices;
use waedge_device::{DeviceManager, DeviceSession, TextMessage, VerificationRequest};
use waedge_e2e::fixture::{FixtureDevices, World};
use waedge_e2e::live::{Live, SELF_PHONE};
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::tenants::{EVE, config};
use waedge_jid::Jid;
use waedge_store::{LeaseEpoch, StatusReport};

const EVE_ID: &str = "e7e00000-0000-4000-8000-000000000004";

fn document() -> Value {
    serde_json::from_str(waedge::admin::ops::OPENAPI).expect("the OpenAPI document is JSON")
}

async fn gateway() -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start(&config(None), &world).await
}

/// Resolves a local `$ref` of the document (a response, a parameter).
fn resolve<'a>(doc: &'a Value, object: &'a Value) -> &'a Value {
    match object.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local references only");
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("{reference} resolves")))
        }
        None => object,
    }
}

/// What in `value` contradicts `schema` (a schema of the document), as the `jsonschema` crate
/// finds it: OpenAPI 3.1's schemas are JSON Schema 2020-12, formats (`date-time`, `uuid`)
/// included. The schema is checked as a definition of the whole document, so its
/// `#/components/schemas/…` references resolve against the document.
fn mismatches(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut root = doc.clone();
    root["$defs"] = json!({ "checked": schema });
    root["$ref"] = json!("#/$defs/checked");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the document's schema {schema} compiles: {e}"));
    validator.iter_errors(value).map(|error| format!("{}: {error}", error.instance_path())).collect()
}

/// Asserts `reply` is a documented answer of `operation`: its status is documented; its
/// `Content-Type` is one the document gives for that status (none, and no body, where it gives
/// no content); a JSON body fits its schema; a header the document fixes (`const`) has that value.
fn check(doc: &Value, operation: &Value, what: &str, reply: &Reply) {
    let responses = &operation["responses"];
    let documented = resolve(doc, &responses[reply.status.to_string()]);
    assert!(!documented.is_null(), "{what}: status {} is not documented: {}", reply.status, reply.text);
    let content_type = reply.headers.get(reqwest::header::CONTENT_TYPE).map(|value| {
        let value = value.to_str().unwrap_or_else(|_| panic!("{what}: Content-Type {value:?} is not text"));
        value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
    });
    match documented.get("content").and_then(Value::as_object) {
        Some(content) => {
            let media = content_type.unwrap_or_else(|| panic!("{what}: no Content-Type; {content:?} is documented"));
            let keys: Vec<&String> = content.keys().collect();
            let described = content.get(&media).unwrap_or_else(|| panic!("{what}: {media} is not one of {keys:?}"));
            if media == "application/json" {
                let schema = described.get("schema").unwrap_or_else(|| panic!("{what}: a JSON answer has a schema"));
                let problems = mismatches(doc, schema, &reply.json);
                assert!(problems.is_empty(), "{what} answered {}: {problems:#?}", reply.text);
            }
        }
        None => assert!(
            content_type.is_none() && reply.text.is_empty(),
            "{what}: {} is documented without a body, but came as {content_type:?}: {}",
            reply.status,
            reply.text
        ),
    }
    for (name, header) in documented.get("headers").and_then(Value::as_object).into_iter().flatten() {
        if let Some(fixed) = header.pointer("/schema/const").and_then(Value::as_str) {
            let sent = reply.headers.get(name).and_then(|value| value.to_str().ok());
            assert_eq!(sent, Some(fixed), "{what}: header {name}");
        }
    }
}

/// Every `(method, path template, operation)` of the document with `tag`.
fn operations(doc: &Value, tag: &str) -> Vec<(Method, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            if operation["tags"][0] == tag {
                found.push((method, path.clone(), operation.clone()));
            }
        }
    }
    found
}

#[test]
fn the_validator_refuses_what_the_schemas_forbid() {
    let doc = document();
    let listed = json!({"$ref": "#/components/schemas/TokenList"});
    let token = |user: &str, created_at: &str| json!({"tokens": [{"id": EVE_ID, "user": user, "created_at": created_at, "revoked_at": null}]});
    assert_eq!(mismatches(&doc, &listed, &token(EVE_ID, "2026-12-05T10:00:00Z")), Vec::<String>::new());
    // Through the list's reference to `Token`: formats, types and required properties.
    let problems = mismatches(&doc, &listed, &token("not-a-uuid", "yesterday"));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("/tokens/0/") && problems[1].starts_with("/tokens/0/"), "{problems:#?}");
    assert_eq!(mismatches(&doc, &listed, &json!({"tokens": [1]})).len(), 1);
    assert_eq!(mismatches(&doc, &listed, &json!({})).len(), 1);
    // Patterns too (the hand-written checker ignored them).
    let version = json!({"$ref": "#/components/schemas/ComponentVersion"});
    let mut good = json!({
        "name": "api", "tenant": "globex", "sha256": "0".repeat(64), "size": 8,
        "created_at": "2026-12-05T10:00:00Z", "created_by": "test", "active": true,
    });
    assert_eq!(mismatches(&doc, &version, &good), Vec::<String>::new(), "{good}");
    good["sha256"] = json!("not hex");
    assert_eq!(mismatches(&doc, &version, &good).len(), 1, "{good}");
    // An event is one of the types, told apart by `type`; a `message.status` event's status is
    // never `pending` (the send's answer says that).
    let event = json!({"$ref": "#/components/schemas/Event"});
    let mut status = json!({
        "id": "01JEZ8K7Q3V5W6X7Y8Z9A0B1C2", "type": "message.status", "tenant": "globex", "device": "main",
        "chat": "6281234567890@s.whatsapp.net", "seq": 1, "at": "2026-12-05T15:01:00Z",
        "data": {"message_id": "3EB0AA", "to": "6281234567890@s.whatsapp.net", "status": "sent", "error_code": null},
    });
    assert_eq!(mismatches(&doc, &event, &status), Vec::<String>::new(), "{status}");
    status["data"]["status"] = json!("pending");
    assert!(!mismatches(&doc, &event, &status).is_empty(), "{status}");
    status["data"]["status"] = json!("failed");
    status["type"] = json!("message.received");
    assert!(!mismatches(&doc, &event, &status).is_empty(), "{status}");
    // A sent message has exactly its documented fields.
    let message = json!({"$ref": "#/components/schemas/DevicesApiMessage"});
    let mut sent = json!({
        "id": "3EB0AA", "to": "6281234567890@s.whatsapp.net", "status": "pending", "error_code": null,
        "created_at": "2026-12-05T15:00:00Z", "updated_at": "2026-12-05T15:00:00Z",
    });
    assert_eq!(mismatches(&doc, &message, &sent), Vec::<String>::new(), "{sent}");
    sent["priority"] = json!("high");
    assert_eq!(mismatches(&doc, &message, &sent).len(), 1, "{sent}");
}

/// The request bodies schemathesis found the document and the server disagreeing on (and their
/// neighbours): what the document's request schema refuses, the server refuses with 400; what
/// it takes, the server does not refuse as malformed (it may still conflict with what exists).
#[tokio::test]
async fn the_request_schemas_refuse_what_the_server_refuses() {
    let doc = document();
    let gw = gateway().await;
    let route = |component: &str| json!({"prefix": "/x", "component": component});
    let prefix = |prefix: &str| json!({"prefix": prefix, "component": "builtin:devices-api"});
    let cases = [
        ("POST", "/v1/tenants", "/v1/tenants", json!({"id": "h1", "hosts": [""]})),
        ("POST", "/v1/tenants", "/v1/tenants", json!({"id": "h2", "hosts": ["http://h2.test:80"]})),
        ("POST", "/v1/tenants", "/v1/tenants", json!({"id": "h3", "hosts": ["H3.test"]})),
        ("PATCH", "/v1/tenants/{tenant}", "/v1/tenants/globex", json!({"hosts": [""]})),
        ("PATCH", "/v1/tenants/{tenant}", "/v1/tenants/globex", json!({"hosts": ["globex.test", "x-1.test"]})),
        (
            "POST",
            "/v1/tenants/{tenant}/devices/{device}/pair-code",
            "/v1/tenants/globex/devices/main/pair-code",
            json!({"phone_number": ""}),
        ),
        (
            "POST",
            "/v1/tenants/{tenant}/devices/{device}/pair-code",
            "/v1/tenants/globex/devices/main/pair-code",
            json!({"phone_number": "+62 812"}),
        ),
        (
            "POST",
            "/v1/tenants/{tenant}/devices/{device}/pair-code",
            "/v1/tenants/globex/devices/main/pair-code",
            json!({"phone_number": "+62 812-3456-7890"}),
        ),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", route("")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", route("builtin:")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", route("component:  ")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", route("builtin:nope")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", route("component:nope")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", route("nope.wasm")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", prefix("/a?b")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", prefix("/a#b")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", prefix("/a b")),
        ("PUT", "/v1/tenants/{tenant}/routes", "/v1/tenants/globex/routes", prefix("/ä/b/")),
        ("POST", "/v1/tenants/{tenant}/users", "/v1/tenants/globex/users", json!({"devices": ["nope"]})),
        (
            "PUT",
            "/v1/tenants/{tenant}/users/{user}",
            &format!("/v1/tenants/globex/users/{EVE_ID}"),
            json!({"devices": ["main", "x"]}),
        ),
    ];
    for (method, template, path, body) in cases {
        let operation = &doc["paths"][template][method.to_lowercase()];
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{method} {template} takes a JSON body");
        let problems = mismatches(&doc, schema, &body);
        let reply = gw.admin(method.parse().unwrap(), path, body.clone()).await;
        let what = format!("{method} {path} {body}");
        check(&doc, operation, &what, &reply);
        assert_eq!(
            reply.status == 400,
            !problems.is_empty(),
            "{what}: {problems:?} but {}: {}",
            reply.status,
            reply.text
        );
    }
    // A body the server reads as `{}` when it is left out is documented as one that may be.
    for (method, template, path) in [
        ("PATCH", "/v1/tenants/{tenant}", "/v1/tenants/globex"),
        ("POST", "/v1/tenants/{tenant}/users", "/v1/tenants/globex/users"),
    ] {
        let required = doc["paths"][template][method.to_lowercase()]["requestBody"]["required"] == true;
        let reply = gw.admin(method.parse().unwrap(), path, Value::Null).await;
        assert_eq!(reply.status == 400, required, "{method} {path} without a body: {}", reply.text);
    }
}

#[tokio::test]
async fn the_served_document_is_openapi_3_1_with_both_apis() {
    let gw = gateway().await;
    let served = gw.admin_as(Method::GET, "/openapi.json", None, Value::Null).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json, document());
    assert_eq!(served.json["openapi"], "3.1.0");
    for tag in ["admin", "devices-api", "contacts-api"] {
        assert!(!operations(&served.json, tag).is_empty(), "{tag} is documented");
    }
}

/// A route's prefix is written the same when it is set (the body of `PUT …/routes`) and when
/// it is deleted (the query of `DELETE …/routes`), and the server reads both the same way.
#[test]
fn a_route_prefix_has_one_pattern() {
    let doc = document();
    let path = &doc["paths"]["/v1/tenants/{tenant}/routes"];
    let set = &doc["components"]["schemas"]["Route"]["properties"]["prefix"];
    let deleted = &path["delete"]["parameters"][0];
    assert_eq!(deleted["name"], "prefix");
    assert_eq!(deleted["schema"]["pattern"], set["pattern"]);
}

/// The event types the outbox records are the ones `Event` describes, and the ones a webhook
/// may choose.
#[test]
fn the_documented_event_types_are_the_outbox_types() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let mapped: Vec<&str> =
        schemas["Event"]["discriminator"]["mapping"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(mapped, waedge_store::events::EVENT_TYPES, "Event's discriminator");
    assert_eq!(schemas["Event"]["oneOf"].as_array().unwrap().len(), mapped.len(), "one schema per type");
    for name in ["Webhook", "NewWebhookCreated", "NewWebhook"] {
        let listed = &schemas[name]["properties"]["events"]["items"]["enum"];
        assert_eq!(listed, &json!(waedge_store::events::EVENT_TYPES), "{name}'s event types");
    }
}

#[test]
fn the_documented_limits_are_the_limits_with_their_ranges() {
    let doc = document();
    let properties = doc["components"]["schemas"]["Limits"]["properties"].as_object().expect("Limits' properties");
    let mut documented: Vec<&str> = properties.keys().map(String::as_str).collect();
    let every = serde_json::to_value(waedge::limits::Limits::default().as_overrides()).unwrap();
    let mut limits: Vec<&str> = every.as_object().unwrap().keys().map(String::as_str).collect();
    documented.sort_unstable();
    limits.sort_unstable();
    assert_eq!(documented, limits, "every limit documented, and only those");
    // Each documented minimum is the least value the server takes, each maximum the largest.
    for name in limits {
        let minimum = properties[name]["minimum"].as_u64().unwrap_or_else(|| panic!("{name} has a minimum"));
        let maximum = properties[name]["maximum"].as_u64().unwrap_or_else(|| panic!("{name} has a maximum"));
        let parse = |value: u64| {
            serde_json::from_value::<waedge_store::limits::LimitOverrides>(json!({ name: value }))
                .ok()
                .filter(|l| l.check().is_ok())
        };
        assert!(parse(minimum).is_some(), "{name} = {minimum} is accepted");
        assert!(minimum == 0 || parse(minimum - 1).is_none(), "{name} = {} is refused", minimum - 1);
        assert!(parse(maximum).is_some(), "{name} = {maximum} is accepted");
        assert!(parse(maximum + 1).is_none(), "{name} = {} is refused", maximum + 1);
    }
}

/// The admin operations on a device's WhatsApp session, which fixture devices refuse:
/// `every_admin_operation_answers_as_documented` skips them, and
/// `every_device_session_operation_answers_as_documented` calls them on the real device layer
/// against wa-sim, in this order, each finding what it needs.
const DEVICE_SESSION_OPERATIONS: [(&str, &str); 8] = [
    ("POST", "/v1/tenants/{tenant}/devices/{device}/link"),
    ("GET", "/v1/tenants/{tenant}/devices/{device}/link"),
    ("GET", "/v1/tenants/{tenant}/devices/{device}/link/qr.png"),
    ("GET", "/v1/tenants/{tenant}/devices/{device}/link/events"),
    ("DELETE", "/v1/tenants/{tenant}/devices/{device}/link"),
    ("POST", "/v1/tenants/{tenant}/devices/{device}/pair-code"),
    ("POST", "/v1/tenants/{tenant}/devices/{device}/reconnect"),
    ("POST", "/v1/tenants/{tenant}/devices/{device}/logout"),
];

/// Whether `(method, template)` is one of [`DEVICE_SESSION_OPERATIONS`].
fn is_device_session_operation(method: &Method, template: &str) -> bool {
    DEVICE_SESSION_OPERATIONS.contains(&(method.as_str(), template))
}

/// Asserts `reply` is the happy path of `operation`: routed, a success, and as documented.
fn check_success(doc: &Value, operation: &Value, what: &str, reply: &Reply) {
    assert_ne!(reply.json["error"]["code"], "NO_ENDPOINT", "{what} is routed");
    check(doc, operation, what, reply);
    assert!((200..300).contains(&reply.status), "{what} did not succeed: {} {}", reply.status, reply.text);
}

#[tokio::test]
async fn every_admin_operation_answers_as_documented() {
    let doc = document();
    let gw = gateway().await;
    let token = gw.store().create_token("globex", EVE_ID).unwrap().0.id;
    let component = waedge::runtime::builtin::get("devices-api").unwrap();
    let sha = gw
        .store()
        .add_component_version(
            "globex",
            "api",
            &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(component)),
            component,
            "test",
        )
        .unwrap()
        .sha256;
    let staged = gw.store().add_component_version("globex", "api", &"0".repeat(64), b"old", "test").unwrap().sha256;
    let (webhook, event) = dead_letter(gw.store());
    // Every event type in the outbox, as the document describes them.
    message_status_events(gw.store());
    let connected = DeviceStatus {
        id: "main".into(),
        state: DeviceState::Connected,
        jid: Some("4915550000001@s.whatsapp.net".into()),
        lid: None,
        push_name: Some("Globex".into()),
    };
    let report = StatusReport { tenant: "globex".into(), status: connected, under: LeaseEpoch::default() };
    assert_eq!(gw.store().record_device_statuses(&[report]).unwrap().len(), 1);
    contact_events(gw.store());
    let listed = gw.admin(Method::GET, "/v1/tenants/globex/events", Value::Null).await;
    check_success(&doc, &doc["paths"]["/v1/tenants/{tenant}/events"]["get"], "GET …/events", &listed);
    let types: Vec<&str> =
        listed.json["events"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    let expected = [
        "message.received",
        "message.status",
        "message.status",
        "device.status",
        "contact.name",
        "message.received",
        "contact.linked",
        "group.updated",
    ];
    assert_eq!(types, expected, "{}", listed.text);
    let mut to_call = operations(&doc, "admin");
    to_call.retain(|(method, path, _)| !is_device_session_operation(method, path));
    // Deletions last, a resource's parts before the resource (a user's token before the user),
    // the tenant's very last, so every other call finds what it needs.
    to_call.sort_by_key(|(method, path, _)| {
        let deletion = *method == Method::DELETE;
        (deletion, std::cmp::Reverse(if deletion { path.matches('/').count() } else { 0 }))
    });
    let mut called = std::collections::BTreeSet::new();
    for (method, template, operation) in to_call {
        let path = template
            .replace("{tenant}", "globex")
            .replace("{device}", "main")
            .replace("{user}", EVE_ID)
            .replace("{token_id}", &token)
            .replace("{name}", "api")
            .replace("{sha256}", if method == Method::DELETE { &staged } else { &sha })
            .replace("{webhook}", &webhook)
            .replace("{event}", &event);
        let path = if template.ends_with("/routes") && method == Method::DELETE {
            format!("{path}?prefix=/contacts")
        } else {
            path
        };
        let body = match (method.as_str(), template.as_str()) {
            ("POST", "/v1/tenants") => json!({"id": "initech", "hosts": ["initech.test"]}),
            ("POST", "/v1/tenants/{tenant}/devices") => json!({"id": "second"}),
            ("POST", "/v1/tenants/{tenant}/users") | ("PUT", "/v1/tenants/{tenant}/users/{user}") => {
                json!({"name": "Someone", "devices": ["main"], "scopes": ["devices:read"]})
            }
            ("PATCH", _) => json!({"name": "Globex Corporation", "limits": {"requests_per_second": 100}}),
            ("PUT", "/v1/tenants/{tenant}/routes") => json!({"prefix": "/v2", "component": "builtin:devices-api"}),
            ("POST", "/v1/tenants/{tenant}/webhooks") => json!({"url": "https://hooks.example/waedge"}),
            _ => Value::Null,
        };
        let reply = if (method.as_str(), template.as_str()) == ("POST", "/v1/tenants/{tenant}/components/{name}") {
            // A component upload: the request body is the component's bytes.
            gw.admin_upload(&path, component.to_vec()).await
        } else if template == "/v1/tenants/{tenant}/events/stream" {
            // A stream that follows the outbox: its first event is the first listed above.
            let (reply, _) = admin_call(&gw, method.clone(), &path, body).await;
            let first = listed.json["events"][0]["id"].as_str().unwrap();
            assert!(
                reply.text.starts_with(&format!("id: {first}\nevent: message.received\ndata: {{")),
                "{}",
                reply.text
            );
            reply
        } else {
            gw.admin(method.clone(), &path, body).await
        };
        check_success(&doc, &operation, &format!("{method} {path}"), &reply);
        called.insert((method.to_string(), template));
    }
    // With the device-session operations of the live test, every admin operation is called:
    // each by exactly one of the two tests, as this one skips those.
    let documented: std::collections::BTreeSet<(String, String)> =
        operations(&doc, "admin").into_iter().map(|(method, path, _)| (method.to_string(), path)).collect();
    let session: std::collections::BTreeSet<(String, String)> =
        DEVICE_SESSION_OPERATIONS.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect();
    assert!(session.is_subset(&documented), "every device-session operation is documented: {session:#?}");
    assert_eq!(called.union(&session).cloned().collect::<std::collections::BTreeSet<_>>(), documented);
}

/// A webhook of globex (to a documentation address, which the outbound rules refuse) with a
/// dead letter: a message globex's device `main` received. Returns the webhook's and the
/// event's ids.
fn dead_letter(store: &waedge_store::Store) -> (String, String) {
    let john = json!({"jid": "6281234567890@s.whatsapp.net", "type": "user", "lid": null,
                      "phone_jid": "6281234567890@s.whatsapp.net"});
    let message = waedge_store::events::NewEvent {
        device: "main".into(),
        kind: "message.received".into(),
        chat: "6281234567890@s.whatsapp.net".into(),
        dedup: Some("john|john|3EB0A".into()),
        at: "2026-12-05T15:00:00Z".into(),
        data: json!({"message_id": "3EB0A", "chat": john, "sender": john, "from_me": false, "push_name": "John Doe",
                     "offline": false, "message": {"kind": "text", "text": "hi", "reply_to": null}}),
    };
    let new = waedge_store::webhooks::NewWebhook {
        url: "http://192.0.2.1/hook".into(),
        device: None,
        events: Vec::new(),
        secret: waedge::webhooks::sign::new_secret(),
    };
    let webhook = store.create_webhook("globex", new).unwrap().id;
    let event = store.append_events("globex", &[message]).unwrap().remove(0).id;
    let pending = store.next_delivery(&webhook).unwrap().expect("the webhook takes the event");
    assert_eq!(pending.event.id, event);
    store.dead_letter(&webhook, pending.position, 1, "the endpoint answered 400").unwrap();
    (webhook, event)
}

/// The `message.status` events of two messages globex's device `main` sent, as the device
/// layer records them: the server acknowledged one (`sent`) and refused the other (`failed`,
/// code 463).
fn message_status_events(store: &waedge_store::Store) {
    use waedge_store::sent::{Begun, NewSend, StatusChange};
    let send = |id: &str| NewSend {
        device: "main".into(),
        id: id.into(),
        to: "6281234567890@s.whatsapp.net".into(),
        request: "fingerprint".into(),
    };
    let change = |id: &str, status, error_code: Option<&str>| StatusChange {
        id: id.into(),
        status,
        error_code: error_code.map(str::to_string),
        at: "2026-12-05T15:01:00Z".into(),
    };
    let (acked, refused) = ("3EB0C431D2E5A1F0B9E2D7A4", "3EB0C431D2E5A1F0B9E2D7A5");
    for id in [acked, refused] {
        assert!(matches!(store.begin_send("globex", &send(id)).unwrap(), Begun::New(_)));
    }
    let changes = [change(acked, MessageStatus::Sent, None), change(refused, MessageStatus::Failed, Some("463"))];
    assert_eq!(store.change_status("globex", "main", &changes).unwrap().len(), 2);
}

/// The `contact.*` and `group.updated` events of globex's device `main`, as the device layer
/// records them: it learns Lena's push name, sends a code to her number, her LID answers with
/// it, and John adds her to a group.
fn contact_events(store: &waedge_store::Store) {
    use waedge_store::links::{NewVerification, Started};
    let (lid, phone) = ("7700900000000123@lid", "447700900123@s.whatsapp.net");
    let lena = Contact { jid: lid.into(), push_name: Some("Lena".into()), business_name: None, full_name: None };
    assert_eq!(store.remember_names("globex", "main", &[lena]).unwrap().len(), 1);
    let new = NewVerification {
        device: "main".into(),
        phone_jid: phone.into(),
        message_id: "3EB0C431D2E5A1F0B9E2D7A6".into(),
        ttl_seconds: 600,
    };
    let Started::Started { code, .. } = store.start_lid_verification("globex", &new).unwrap() else {
        panic!("a first verification starts")
    };
    let sender = json!({ "jid": lid, "type": "user", "lid": lid, "phone_jid": null });
    let answer = waedge_store::events::NewEvent {
        device: "main".into(),
        kind: waedge_store::events::MESSAGE_RECEIVED.into(),
        chat: lid.into(),
        dedup: Some(format!("{lid}|{lid}|B22CA6E89EE4DE21")),
        at: "2026-12-05T15:02:00Z".into(),
        data: json!({ "message_id": "B22CA6E89EE4DE21", "chat": sender, "sender": sender, "from_me": false,
                      "push_name": "Lena", "offline": false,
                      "message": { "kind": "text", "text": code, "reply_to": null } }),
    };
    assert_eq!(store.append_events("globex", &[answer]).unwrap().len(), 2, "the answer and the link");
    // And a member added to a group, as the device layer records WhatsApp's notification.
    let john = json!({ "jid": "6281234567890@s.whatsapp.net", "type": "user", "lid": "1234567890987654321@lid",
                       "phone_jid": "6281234567890@s.whatsapp.net" });
    let group = "120363406798553856@g.us";
    let added = waedge_store::events::NewEvent {
        device: "main".into(),
        kind: waedge_store::events::GROUP_UPDATED.into(),
        chat: group.into(),
        dedup: Some(format!("{group}|gp2|2365415341|0")),
        at: "2026-12-05T15:03:00Z".into(),
        data: json!({ "group": { "jid": group, "type": "group" }, "by": john,
                      "action": { "kind": "add", "participants": [sender] } }),
    };
    assert_eq!(store.append_events("globex", &[added]).unwrap().len(), 1);
}

/// An admin API call on the gateway of `live`, with the admin token and a JSON `body` unless
/// `Null`; returns the reply and its body's bytes (see [`admin_call`]).
async fn live_admin(live: &Live, method: Method, path: &str, body: Value) -> (Reply, Vec<u8>) {
    admin_call(&live.gateway, method, path, body).await
}

/// An admin API call on `gw`, with its admin token and a JSON `body` unless `Null`; returns the
/// reply and its body's bytes. A `text/event-stream` goes on (as long as a linking, or the
/// tenant's outbox): only its first event is read, and is the reply's text.
async fn admin_call(gw: &TestGateway, method: Method, path: &str, body: Value) -> (Reply, Vec<u8>) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", gw.admin_base())).bearer_auth(gw.admin_token());
    if !body.is_null() {
        request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    }
    let in_time = std::time::Duration::from_secs(40);
    let mut response =
        tokio::time::timeout(in_time, request.send()).await.expect("an answer in time").expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let stream = headers.get(reqwest::header::CONTENT_TYPE).is_some_and(|value| value == "text/event-stream");
    let mut bytes = Vec::new();
    while let Some(chunk) =
        tokio::time::timeout(in_time, response.chunk()).await.expect("the body in time").expect("a readable body")
    {
        bytes.extend_from_slice(&chunk);
        if let Some(end) = bytes.windows(2).position(|pair| pair == b"\n\n").filter(|_| stream) {
            bytes.truncate(end + 2);
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Reply { status, headers, json, text }, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_device_session_operation_answers_as_documented() {
    let doc = document();
    let documented = operations(&doc, "admin");
    let live = Live::fresh(WhatsappDevices::with_server).await;
    live.wait_for_state(DeviceState::Unlinked, 10).await;
    let me = format!("{SELF_PHONE}@s.whatsapp.net");
    // The linking's state as `POST …/link` answered it: the first QR code.
    let mut started = Value::Null;
    let mut called = Vec::new();
    for (method, template) in DEVICE_SESSION_OPERATIONS {
        let method: Method = method.parse().unwrap();
        let (_, _, operation) = documented
            .iter()
            .find(|(m, path, _)| *m == method && path == template)
            .unwrap_or_else(|| panic!("{method} {template} is documented"));
        let path = template.replace("{tenant}", "acme").replace("{device}", "main");
        let what = format!("{method} {path}");
        let action = template.rsplit('/').next().unwrap();
        // What each call needs first.
        match action {
            // Another client takes over the linked session.
            "reconnect" => {
                live.sim.replace(SELF_PHONE).await;
                live.wait_for_state(DeviceState::Replaced, 10).await;
            }
            "logout" => live.wait_for_state(DeviceState::Connected, 20).await,
            _ => {}
        }
        let body = if action == "pair-code" { json!({"phone_number": SELF_PHONE}) } else { Value::Null };
        let (reply, bytes) = live_admin(&live, method.clone(), &path, body).await;
        check_success(&doc, operation, &what, &reply);
        called.push((method.to_string(), template.to_string()));
        // What each call did, as a client sees it.
        match (method.as_str(), action) {
            ("POST", "link") => {
                assert_eq!(reply.json["state"], "qr", "{what}: the first QR code: {}", reply.text);
                started = reply.json;
            }
            ("GET", "link") => assert_eq!(reply.json, started, "{what}: the same linking, still at its first code"),
            ("GET", "qr.png") => assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{what}: a PNG image"),
            ("GET", "events") => {
                let data = reply.text.strip_prefix("event: qr\ndata: ").and_then(|rest| rest.strip_suffix("\n\n"));
                let data: Value =
                    serde_json::from_str(data.unwrap_or_else(|| panic!("{what}: a qr event first: {:?}", reply.text)))
                        .expect("the event's data is JSON");
                let schema = json!({"$ref": "#/components/schemas/LinkState"});
                let problems = mismatches(&doc, &schema, &data);
                assert!(problems.is_empty(), "{what}: {problems:#?}");
                assert_eq!(data, started, "{what}: the linking in progress, not a new one");
            }
            ("DELETE", "link") => live.wait_for_state(DeviceState::Unlinked, 10).await,
            ("POST", "pair-code") => {
                let code = reply.json["pair_code"].as_str().unwrap_or_else(|| panic!("{what}: {}", reply.text));
                assert_eq!(code.len(), 8, "{what}: an eight-character code: {code}");
                live.sim.enter_pair_code(SELF_PHONE, code).await.expect("the phone enters the code");
                live.wait_for_state(DeviceState::Connected, 20).await;
                assert_eq!(live.main.status().jid.as_deref(), Some(me.as_str()));
            }
            ("POST", "reconnect") => {
                assert!(matches!(reply.json["state"].as_str(), Some("connecting" | "connected")), "{}", reply.text);
                assert_eq!(reply.json["jid"], me.as_str(), "{what}: on its own session");
            }
            ("POST", "logout") => {
                assert_eq!(reply.json["state"], "logged-out", "{what}: {}", reply.text);
                assert_eq!(live.main.status().state, DeviceState::LoggedOut);
            }
            other => panic!("{other:?}: say what the call does"),
        }
    }
    let session: Vec<(String, String)> =
        DEVICE_SESSION_OPERATIONS.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect();
    assert_eq!(called, session, "each device-session operation, once");
}

#[tokio::test]
async fn the_seed_apis_answer_as_documented() {
    let doc = document();
    let gw = gateway().await;
    let calls = [
        ("/devices/{device_id}/profile", "/devices/main/profile?jid=6281234567890"),
        ("/devices/{device_id}/profile", "/devices/main/profile?jid=120363406798553856@g.us"),
        ("/devices/{device_id}/profile", "/devices/main/profile?jid=not-a-jid"),
        ("/devices/{device_id}/profile", "/devices/nope/profile?jid=6281234567890"),
        ("/devices/{device_id}/groups", "/devices/main/groups"),
        ("/contacts/profile", "/contacts/profile?number=6281234567890"),
        ("/contacts/profile", "/contacts/profile"),
        ("/contacts/profile-picture", "/contacts/profile-picture?jid=6281234567890@s.whatsapp.net"),
        ("/contacts/profile-picture", "/contacts/profile-picture?jid=6281234567890@s.whatsapp.net&preview=true"),
    ];
    let mut succeeded = std::collections::BTreeSet::new();
    for (template, path) in calls {
        let operation = &doc["paths"][template]["get"];
        assert!(operation.is_object(), "{template} is documented");
        let reply = gw.get(path, Some(EVE)).await;
        check(&doc, operation, path, &reply);
        if (200..300).contains(&reply.status) {
            succeeded.insert(template);
        }
    }
    // The messages endpoints: on the fixture world their refusals (its devices send nothing),
    // on devices that take every send their successes, each with the status it must have.
    let send = |text: &str| json!({"to": "6281234567890", "text": text});
    let sending = sending_gateway().await;
    let (sends, reads) = ("/devices/{device_id}/messages", "/devices/{device_id}/messages/{message_id}");
    let verify = |phone: &str| json!({"phone": phone, "text": "Your code: {code}", "ttl_seconds": 600});
    let (starts, verifications) =
        ("/devices/{device_id}/lid-verifications", "/devices/{device_id}/lid-verifications/{verification_id}");
    let (links, profiles) = ("/devices/{device_id}/lid-links", "/devices/{device_id}/profile");
    let huge = send(&"a".repeat(1 << 20));
    let calls = [
        (&gw, Method::POST, sends, "/devices/main/messages", None, send("hi"), 502),
        (&gw, Method::POST, sends, "/devices/main/messages", None, send(""), 400),
        (&gw, Method::POST, sends, "/devices/main/messages", None, json!([]), 400),
        (&gw, Method::POST, sends, "/devices/main/messages", Some(""), send("hi"), 400),
        (&gw, Method::POST, sends, "/devices/nope/messages", None, send("hi"), 404),
        (&gw, Method::POST, sends, "/devices/main/messages", None, huge, 413),
        (&gw, Method::GET, reads, "/devices/main/messages/3EB0AA", None, Value::Null, 404),
        (&gw, Method::GET, reads, "/devices/nope/messages/3EB0AA", None, Value::Null, 404),
        (&sending, Method::POST, sends, "/devices/main/messages", None, send("hi"), 202),
        (&sending, Method::POST, sends, "/devices/main/messages", Some("order-1"), send("hi"), 202),
        (&sending, Method::POST, sends, "/devices/main/messages", Some("order-1"), send("hi"), 200),
        (&sending, Method::POST, sends, "/devices/main/messages", Some("order-1"), send("ho"), 422),
        (&sending, Method::GET, reads, "/devices/main/messages/3EB000000000000000000002", None, Value::Null, 200),
        (&sending, Method::GET, reads, "/devices/main/messages/3EB0AA", None, Value::Null, 404),
        (&gw, Method::POST, starts, "/devices/main/lid-verifications", None, verify("6281234567890"), 502),
        (&gw, Method::POST, starts, "/devices/main/lid-verifications", None, verify("1234567890987654321@lid"), 400),
        (
            &gw,
            Method::POST,
            starts,
            "/devices/main/lid-verifications",
            None,
            json!({"phone": "6281234567890",
            "text": "no placeholder"}),
            400,
        ),
        (&gw, Method::POST, starts, "/devices/nope/lid-verifications", None, verify("6281234567890"), 404),
        (&gw, Method::GET, verifications, "/devices/main/lid-verifications/01J", None, Value::Null, 404),
        (&gw, Method::GET, links, "/devices/main/lid-links?jid=6281234567890", None, Value::Null, 404),
        (&gw, Method::GET, links, "/devices/main/lid-links", None, Value::Null, 400),
        (&sending, Method::POST, starts, "/devices/main/lid-verifications", None, verify("6281234567890"), 202),
        (
            &sending,
            Method::GET,
            verifications,
            "/devices/main/lid-verifications/01JEV7K3X9Q2M4N5P6R7S8T901",
            None,
            Value::Null,
            200,
        ),
        (&sending, Method::GET, links, "/devices/main/lid-links?jid=6281234567890", None, Value::Null, 200),
        (&sending, Method::GET, profiles, "/devices/main/profile?jid=6281234567890", None, Value::Null, 200),
    ];
    for (gateway, method, template, path, key, body, status) in calls {
        let operation = &doc["paths"][template][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {template} is documented");
        let what = format!("{method} {path} (Idempotency-Key {key:?}) {:.80}", body.to_string());
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", gateway.base())).bearer_auth(EVE);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if !body.is_null() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        }
        let response = request.send().await.expect("the server answers");
        let headers = response.headers().clone();
        let answered = response.status().as_u16();
        let text = response.text().await.expect("a readable body");
        let reply = Reply { status: answered, json: serde_json::from_str(&text).unwrap_or(Value::Null), headers, text };
        check(&doc, operation, &what, &reply);
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
        if (200..300).contains(&reply.status) {
            succeeded.insert(template);
        }
    }
    // Every operation of both APIs was called on its happy path too, and succeeded.
    let documented: std::collections::BTreeSet<String> = ["devices-api", "contacts-api"]
        .into_iter()
        .flat_map(|tag| operations(&doc, tag))
        .map(|(_, path, _)| path)
        .collect();
    let succeeded: std::collections::BTreeSet<String> = succeeded.into_iter().map(str::to_string).collect();
    assert_eq!(succeeded, documented, "each operation answers a documented success");
}

/// A gateway on the fixture tenants whose devices also send: see [`Sending`].
async fn sending_gateway() -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start_with(&config(None), Arc::new(Sending(FixtureDevices(world)))).await
}

/// The fixture devices, but taking every text they are asked to send: each is kept `pending`
/// under the id `3EB0` and 20 digits counting the sends, and a send with an idempotency key
/// seen before is a repetition (the same recipient, text and reply) or a reused key, as the
/// real device layer answers — what the messages endpoints need to reach their successes; a
/// LID verification sends its code so and is linked at once.
struct Sending(FixtureDevices);

#[async_trait::async_trait]
impl DeviceManager for Sending {
    fn open(&self, tenant: &str, device: &str, remembered: DeviceState) -> Arc<dyn DeviceSession> {
        Arc::new(SendingDevice {
            fixture: self.0.open(tenant, device, remembered),
            sent: Mutex::default(),
            verifications: Mutex::default(),
        })
    }

    async fn link_qr(&self, tenant: &str, device: &str) -> anyhow::Result<watch::Receiver<LinkState>> {
        self.0.link_qr(tenant, device).await
    }

    async fn link_pair_code(
        &self,
        tenant: &str,
        device: &str,
        phone_number: &str,
    ) -> anyhow::Result<(String, watch::Receiver<LinkState>)> {
        self.0.link_pair_code(tenant, device, phone_number).await
    }

    fn linking(&self, tenant: &str, device: &str) -> Option<watch::Receiver<LinkState>> {
        self.0.linking(tenant, device)
    }

    fn devices_linking(&self, tenant: &str) -> HashSet<String> {
        self.0.devices_linking(tenant)
    }

    fn clients_running(&self) -> usize {
        self.0.clients_running()
    }

    async fn cancel_link(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.0.cancel_link(tenant, device).await
    }

    async fn reconnect(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.0.reconnect(tenant, device).await
    }

    async fn logout(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.0.logout(tenant, device).await
    }

    async fn remove(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.0.remove(tenant, device).await
    }

    async fn shutdown(&self) {
        self.0.shutdown().await
    }
}

/// A fixture device that takes every text (see [`Sending`]).
struct SendingDevice {
    fixture: Arc<dyn DeviceSession>,
    /// What it was asked to send, in order, with what it answered.
    sent: Mutex<Vec<(TextMessage, SentMessage)>>,
    /// The LID verifications it started, each with its code's message in `sent` and answered at
    /// once by a LID made up from the number (`9` and its digits).
    verifications: Mutex<Vec<LidVerification>>,
}

#[async_trait::async_trait]
impl DeviceSession for SendingDevice {
    fn status(&self) -> DeviceStatus {
        self.fixture.status()
    }

    async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error> {
        self.fixture.user_info(jids).await
    }

    async fn profile_picture(&self, jid: &Jid, preview: bool) -> Result<Option<ProfilePicture>, Error> {
        self.fixture.profile_picture(jid, preview).await
    }

    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error> {
        self.fixture.business_profile(jid).await
    }

    async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error> {
        self.fixture.lid_mapping(jid).await
    }

    async fn is_on_whatsapp(&self, jids: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
        self.fixture.is_on_whatsapp(jids).await
    }

    async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
        self.fixture.joined_groups().await
    }

    async fn group_info(&self, jid: &Jid) -> Result<Group, Error> {
        self.fixture.group_info(jid).await
    }

    async fn contact(&self, jid: &Jid) -> Result<Option<Contact>, Error> {
        self.fixture.contact(jid).await
    }

    async fn send_text(&self, message: &TextMessage) -> Result<SendOutcome, Error> {
        let mut sent = self.sent.lock().unwrap();
        let earlier = sent
            .iter()
            .find(|(asked, _)| asked.idempotency_key.is_some() && asked.idempotency_key == message.idempotency_key);
        if let Some((asked, answered)) = earlier {
            let same = (&asked.to, &asked.text, &asked.reply_to) == (&message.to, &message.text, &message.reply_to);
            return Ok(if same { SendOutcome::Repeated(answered.clone()) } else { SendOutcome::KeyReused });
        }
        let answered = SentMessage {
            id: format!("3EB0{:020}", sent.len() + 1),
            to: message.to.to_string(),
            status: MessageStatus::Pending,
            error_code: None,
            created_at: "2026-12-05T19:00:00Z".into(),
            updated_at: "2026-12-05T19:00:00Z".into(),
        };
        sent.push((message.clone(), answered.clone()));
        Ok(SendOutcome::Sent(answered))
    }

    async fn sent_message(&self, id: &str) -> Result<Option<SentMessage>, Error> {
        Ok(self.sent.lock().unwrap().iter().find(|(_, answered)| answered.id == id).map(|(_, a)| a.clone()))
    }

    async fn start_lid_verification(&self, request: &VerificationRequest) -> Result<LidVerification, Error> {
        let code = TextMessage {
            to: request.phone_jid.clone(),
            text: request.text.replace("{code}", "7K2P-9QXM"),
            reply_to: None,
            idempotency_key: None,
        };
        let SendOutcome::Sent(carrier) = self.send_text(&code).await? else { unreachable!("a send without a key") };
        let mut verifications = self.verifications.lock().unwrap();
        let started = LidVerification {
            id: format!("01JEV7K3X9Q2M4N5P6R7S8T9{:02}", verifications.len() + 1),
            phone_jid: request.phone_jid.to_string(),
            state: LidVerificationState::Pending,
            message_id: carrier.id,
            lid: None,
            created_at: "2026-12-05T19:00:00Z".into(),
            expires_at: "2026-12-05T19:10:00Z".into(),
            linked_at: None,
        };
        verifications.push(LidVerification {
            state: LidVerificationState::Linked,
            lid: Some(format!("9{}@lid", request.phone_jid.user())),
            linked_at: Some("2026-12-05T19:01:00Z".into()),
            ..started.clone()
        });
        Ok(started)
    }

    async fn lid_verification(&self, id: &str) -> Result<Option<LidVerification>, Error> {
        Ok(self.verifications.lock().unwrap().iter().find(|v| v.id == id).cloned())
    }

    async fn verified_link(&self, jid: &Jid) -> Result<Option<VerifiedLink>, Error> {
        let jid = jid.to_string();
        let verifications = self.verifications.lock().unwrap();
        let linked = verifications.iter().rev().find(|v| v.phone_jid == jid || v.lid.as_ref() == Some(&jid));
        Ok(linked.and_then(|v| {
            Some(VerifiedLink {
                lid: v.lid.clone()?,
                phone_jid: v.phone_jid.clone(),
                device: self.fixture.status().id,
                verification: v.id.clone(),
                linked_at: v.linked_at.clone()?,
            })
        }))
    }
}

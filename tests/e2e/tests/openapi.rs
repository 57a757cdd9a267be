//! The OpenAPI document (`host/openapi.json`, served at `/openapi.json`) against the
//! implementation: every documented admin operation exists, answers only with documented
//! status codes, and its JSON bodies match the documented schemas; so do the seed APIs'.

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::tenants::{EVE, config};

const EVE_ID: &str = "e7e00000-0000-4000-8000-000000000004";

fn document() -> Value {
    serde_json::from_str(waedge::admin::ops::OPENAPI).expect("the OpenAPI document is JSON")
}

async fn gateway() -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start(&config(None), &world).await
}

/// Resolves a local `$ref`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local references only");
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("{reference} resolves")))
        }
        None => schema,
    }
}

/// What in `value` contradicts `schema`: types, required and unknown properties, enums,
/// items, and the branches of `oneOf`/`anyOf`/`allOf`.
fn mismatches(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut found = Vec::new();
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array)
            && !branches.iter().any(|branch| mismatches(doc, branch, value, at).is_empty())
        {
            found.push(format!("{at}: matches no branch of {key}: {value}"));
        }
    }
    for branch in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        found.extend(mismatches(doc, branch, value, at));
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &str| match t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            found.push(format!("{at}: {value} is not {types:?}"));
            return found;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        found.push(format!("{at}: {value} is not {expected}"));
    }
    if let Value::Object(object) = value {
        for key in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let key = key.as_str().unwrap();
            if !object.contains_key(key) {
                found.push(format!("{at}: required `{key}` is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => found.extend(mismatches(doc, property, item, &format!("{at}.{key}"))),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => found.push(format!("{at}: `{key}` is not documented")),
                    Some(extra @ Value::Object(_)) => {
                        found.extend(mismatches(doc, extra, item, &format!("{at}.{key}")))
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(schema)) = (value, schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            found.extend(mismatches(doc, schema, item, &format!("{at}[{index}]")));
        }
    }
    found
}

/// Asserts `reply` is a documented answer of `operation`, and a JSON body fits its schema.
fn check(doc: &Value, operation: &Value, what: &str, reply: &Reply) {
    let responses = &operation["responses"];
    let documented = resolve(doc, &responses[reply.status.to_string()]);
    assert!(!documented.is_null(), "{what}: status {} is not documented: {}", reply.status, reply.text);
    if let Some(schema) = documented.pointer("/content/application~1json/schema") {
        let problems = mismatches(doc, schema, &reply.json, "body");
        assert!(problems.is_empty(), "{what} answered {}: {problems:#?}", reply.text);
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

#[test]
fn the_documented_limits_are_the_limits_with_their_ranges() {
    let doc = document();
    let properties = doc["components"]["schemas"]["Limits"]["properties"].as_object().expect("Limits' properties");
    let mut documented: Vec<&str> = properties.keys().map(String::as_str).collect();
    let every = serde_json::to_value(waedge::limits::LimitOverrides::of(&waedge::limits::Limits::default())).unwrap();
    let mut limits: Vec<&str> = every.as_object().unwrap().keys().map(String::as_str).collect();
    documented.sort_unstable();
    limits.sort_unstable();
    assert_eq!(documented, limits, "every limit documented, and only those");
    // Each documented minimum is the least value the server takes.
    for name in limits {
        let minimum = properties[name]["minimum"].as_u64().unwrap_or_else(|| panic!("{name} has a minimum"));
        let below = json!({ name: minimum.checked_sub(1) });
        let at = json!({ name: minimum });
        let parse = |value: &Value| {
            serde_json::from_value::<waedge::limits::LimitOverrides>(value.clone()).ok().filter(|l| l.check().is_ok())
        };
        assert!(parse(&at).is_some(), "{name} = {minimum} is accepted");
        assert!(minimum == 0 || parse(&below).is_none(), "{name} = {} is refused", minimum - 1);
    }
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
    // Deletions last, the tenant's very last, so every other call finds what it needs.
    let mut operations = operations(&doc, "admin");
    operations.sort_by_key(|(method, path, _)| (*method == Method::DELETE, path == "/v1/tenants/{tenant}"));
    assert_eq!(operations.len(), 37);
    for (method, template, operation) in operations {
        let path = template
            .replace("{tenant}", "globex")
            .replace("{device}", "main")
            .replace("{user}", EVE_ID)
            .replace("{token_id}", &token)
            .replace("{name}", "api")
            .replace("{sha256}", if method == Method::DELETE { &staged } else { &sha });
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
            ("POST", "/v1/tenants/{tenant}/devices/{device}/pair-code") => json!({"phone_number": "6285550000001"}),
            _ => Value::Null,
        };
        let reply = gw.admin(method.clone(), &path, body).await;
        let what = format!("{method} {path}");
        assert_ne!(reply.json["error"]["code"], "NO_ENDPOINT", "{what} is routed");
        check(&doc, &operation, &what, &reply);
        if ["/v1/tenants", "/v1/tenants/{tenant}", "/v1/tenants/{tenant}/devices/{device}"].contains(&template.as_str())
            && method != Method::DELETE
        {
            assert!(reply.status < 300, "{what}: {}", reply.text);
        }
    }
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
    for (template, path) in calls {
        let operation = &doc["paths"][template]["get"];
        assert!(operation.is_object(), "{template} is documented");
        check(&doc, operation, path, &gw.get(path, Some(EVE)).await);
    }
}

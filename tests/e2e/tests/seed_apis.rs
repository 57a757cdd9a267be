//! Both seed APIs, served by the real built-in components over HTTP on loopback: every
//! example response of `seeds/devices-api.md` and `seeds/contacts-api.md` field for field,
//! and every bad input answered with the right status and JSON error.

use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, CAROL, DAVE, EVE, config};

async fn gateway() -> TestGateway {
    gateway_with_default(Some("acme")).await
}

async fn gateway_with_default(default: Option<&str>) -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    TestGateway::start(&config(default), &world).await
}

/// Asserts the body equals `expected` field for field, in the same key order.
fn assert_body(reply: &Reply, status: u16, expected: Value) {
    assert_eq!(reply.status, status, "body: {}", reply.text);
    assert_eq!(reply.json, expected);
    assert_eq!(reply.text, expected.to_string(), "same keys in the same order");
    assert_eq!(reply.headers["content-type"], "application/json");
}

/// Asserts a devices-API error: status and code, with a non-empty message.
fn assert_devices_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text);
    assert_eq!(reply.json["error"]["code"], code, "body: {}", reply.text);
    assert!(reply.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// Asserts a contacts-API error: the documented envelope with an RFC 3339 UTC timestamp.
fn assert_contacts_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text);
    let body = reply.json.as_object().expect("a JSON object");
    let keys: Vec<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(keys, ["success", "error", "error_code", "timestamp"]);
    assert_eq!(body["success"], false);
    assert_eq!(body["error_code"], code, "body: {}", reply.text);
    assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()));
    let timestamp = body["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), "2026-06-15T12:00:00Z".len(), "{timestamp}");
    assert!(timestamp.starts_with("20") && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T');
}

/// Asserts that a 401 carries the RFC 6750 challenge for a missing or a bad token, and that
/// no other answer does.
fn assert_challenge(reply: &Reply, token: Option<&str>) {
    let challenge = reply.headers.get("www-authenticate").map(|v| v.to_str().unwrap());
    let expected = match (reply.status, token) {
        (401, None) => Some("Bearer"),
        (401, Some(_)) => Some("Bearer error=\"invalid_token\""),
        _ => None,
    };
    assert_eq!(challenge, expected, "{}", reply.text);
}

#[tokio::test]
async fn devices_contact_profile_by_lid_matches_the_seed_example() {
    let gw = gateway().await;
    let reply = gw.get("/devices/main/profile?jid=1234567890987654321@lid", Some(ALICE)).await;
    assert_body(
        &reply,
        200,
        json!({"data": {"type": "contact", "profile": {
            "jid": "1234567890987654321@lid",
            "phone_jid": "6281234567890@s.whatsapp.net",
            "lid": "1234567890987654321@lid",
            "status": "Available",
            "picture_url": "https://pps.whatsapp.net/...",
            "picture_id": "1059769838",
            "push_name": "John Doe",
            "business_name": "",
            "verified_name": "",
            "devices": ["6281234567890@s.whatsapp.net", "6281234567890:1@s.whatsapp.net"],
        }}}),
    );
}

#[tokio::test]
async fn devices_contact_profile_hidden_by_privacy_matches_the_seed_example() {
    let gw = gateway().await;
    let reply = gw.get("/devices/stranger/profile?jid=6281234567890@s.whatsapp.net", Some(ALICE)).await;
    assert_body(
        &reply,
        200,
        json!({"data": {"type": "contact", "profile": {
            "jid": "6281234567890@s.whatsapp.net",
            "lid": "1234567890987654321@lid",
            "status": "Available",
            "push_name": "John Doe",
        }}}),
    );
}

#[tokio::test]
async fn devices_contact_profile_by_phone_number_with_preview() {
    let gw = gateway().await;
    for query in
        ["jid=6281234567890&preview=true", "jid=%2B62%20812-3456-7890&preview=1", "jid=0062.812.3456.7890&preview=true"]
    {
        let reply = gw.get(&format!("/devices/main/profile?{query}"), Some(ALICE)).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text);
        let profile = &reply.json["data"]["profile"];
        assert_eq!(reply.json["data"]["type"], "contact");
        assert_eq!(profile["jid"], "6281234567890@s.whatsapp.net");
        assert_eq!(profile["lid"], "1234567890987654321@lid");
        assert!(profile.get("phone_jid").is_none(), "phone_jid only resolves a LID query");
        assert_eq!(profile["picture_url"], "https://pps.whatsapp.net/v/t61/john-preview.jpg");
        assert_eq!(profile["picture_id"], "1059769838");
    }
    let full = gw.get("/devices/main/profile?jid=6281234567890@c.us", Some(ALICE)).await;
    assert_eq!(full.json["data"]["profile"]["picture_url"], "https://pps.whatsapp.net/v/t61/john-full.jpg");
}

#[tokio::test]
async fn devices_group_profile_matches_the_seed_example() {
    let gw = gateway().await;
    let reply = gw.get("/devices/main/profile?jid=120363406798553856@g.us", Some(ALICE)).await;
    assert_body(
        &reply,
        200,
        json!({"data": {"type": "group", "profile": {
            "jid": "120363406798553856@g.us",
            "name": "My Group Chat",
            "subject": "My Group Chat",
            "description": "Group description or topic",
            "picture_url": "https://pps.whatsapp.net/...",
            "picture_id": "abc123",
            "participants": ["6281234567890@s.whatsapp.net", "6289876543210@s.whatsapp.net", "150199452311775@lid"],
        }}}),
    );
}

#[tokio::test]
async fn devices_group_without_picture_or_membership() {
    let gw = gateway().await;
    let family = gw.get("/devices/main/profile?jid=6281234567890-1580000000@g.us", Some(ALICE)).await;
    assert_eq!(family.status, 200, "{}", family.text);
    let profile = &family.json["data"]["profile"];
    assert_eq!(
        (&profile["picture_url"], &profile["picture_id"], &profile["description"]),
        (&json!(""), &json!(""), &json!(""))
    );
    let former = gw.get("/devices/main/profile?jid=120363000000000001@g.us", Some(ALICE)).await;
    assert_devices_error(&former, 403, "FORBIDDEN");
    let unknown = gw.get("/devices/main/profile?jid=120363999999999999@g.us", Some(ALICE)).await;
    assert_devices_error(&unknown, 404, "NOT_FOUND");
}

#[tokio::test]
async fn devices_groups_lists_joined_groups_like_the_seed_example() {
    let gw = gateway().await;
    let reply = gw.get("/devices/main/groups", Some(ALICE)).await;
    assert_body(
        &reply,
        200,
        json!({"data": {"groups": [
            {
                "jid": "120363406798553856@g.us",
                "name": "My Group Chat",
                "subject": "My Group Chat",
                "description": "Group description or topic",
                "participant_count": 24,
                "is_announce": false,
                "is_locked": false,
                "is_ephemeral": false,
                "is_join_approval_required": false,
            },
            {
                "jid": "6281234567890-1580000000@g.us",
                "name": "Family",
                "subject": "Family",
                "description": "",
                "participant_count": 2,
                "is_announce": true,
                "is_locked": true,
                "is_ephemeral": true,
                "is_join_approval_required": true,
            },
        ], "count": 2}}),
    );
}

#[tokio::test]
async fn devices_api_rejects_bad_input_with_json_errors() {
    let gw = gateway().await;
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        ("/devices/main/groups", None, 401, "UNAUTHORIZED"),
        ("/devices/main/groups", Some("not-a-token"), 401, "UNAUTHORIZED"),
        ("/devices/main/profile", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/devices/main/profile?jid=", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/devices/main/profile?jid=hello", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/devices/main/profile?jid=0812345678", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/devices/main/profile?jid=123@broadcast", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/devices/main/profile?jid=6281234567890&preview=maybe", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/devices/main/profile?jid=6289999999999", Some(ALICE), 404, "NOT_FOUND"),
        ("/devices/nope/groups", Some(ALICE), 404, "DEVICE_NOT_FOUND"),
        ("/devices/offline/groups", Some(ALICE), 503, "DEVICE_NOT_CONNECTED"),
        ("/devices/offline/profile?jid=6281234567890", Some(ALICE), 503, "DEVICE_NOT_CONNECTED"),
        ("/devices/fresh/groups", Some(ALICE), 503, "DEVICE_NOT_CONNECTED"),
        ("/devices/main/groups", Some(CAROL), 403, "FORBIDDEN"),
        ("/devices/main/unknown", Some(ALICE), 404, "NOT_FOUND"),
        ("/devices", Some(ALICE), 404, "NOT_FOUND"),
    ];
    for &(path, token, status, code) in cases {
        let reply = gw.get(path, token).await;
        assert_devices_error(&reply, status, code);
        assert_challenge(&reply, token);
        assert!(!reply.text.contains(ALICE), "a token never appears in a response");
    }
    let post = gw.request(reqwest::Method::POST, "/devices/main/groups", Some(ALICE), None, Vec::new()).await;
    assert_devices_error(&post, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(post.headers.get("allow").map(|v| v.to_str().unwrap()), Some("GET"), "RFC 9110 §15.5.6");
    let offline = gw.get("/devices/offline/groups", Some(ALICE)).await;
    assert!(offline.json["error"]["message"].as_str().unwrap().contains("disconnected"), "{}", offline.text);
}

#[tokio::test]
async fn contacts_profile_matches_the_seed_example() {
    let gw = gateway().await;
    let expected = json!({"success": true, "data": {
        "jid": "5511999999999@s.whatsapp.net",
        "user_info": {
            "Status": "Hey there! I am using WhatsApp.",
            "PictureID": "1718000000",
            "Devices": ["5511999999999@s.whatsapp.net"],
            "VerifiedName": null,
        },
        "business_profile": null,
    }});
    // The document's own curl: both parameters, `jid` wins.
    let both = gw.get("/contacts/profile?jid=5511999999999%40s.whatsapp.net&number=5511999999999", Some(ALICE)).await;
    assert_body(&both, 200, expected.clone());
    for query in [
        "number=5511999999999",
        "number=%2B55%2011%2099999-9999",
        "number=(55)%2011.99999.9999",
        "jid=5511999999999@c.us",
    ] {
        let reply = gw.get(&format!("/contacts/profile?{query}"), Some(ALICE)).await;
        assert_body(&reply, 200, expected.clone());
    }
}

#[tokio::test]
async fn contacts_profile_of_a_business_and_by_lid() {
    let gw = gateway().await;
    let business = gw.get("/contacts/profile?number=14155550123", Some(ALICE)).await;
    assert_body(
        &business,
        200,
        json!({"success": true, "data": {
            "jid": "14155550123@s.whatsapp.net",
            "user_info": {
                "Status": "We sell bicycles",
                "PictureID": "88800001",
                "Devices": ["14155550123@s.whatsapp.net"],
                "VerifiedName": "Bay Bikes",
            },
            "business_profile": {
                "JID": "14155550123@s.whatsapp.net",
                "Description": "Bicycles and repairs in San Francisco",
                "Email": "hello@baybikes.example",
                "Websites": ["https://baybikes.example"],
                "Categories": [{"ID": "1223524174334504", "Name": "Bicycle Shop"}],
                "Address": "1 Market St, San Francisco",
                "BusinessHoursTimeZone": "America/Los_Angeles",
                "BusinessHours": [
                    {"DayOfWeek": "mon", "Mode": "specific_hours", "OpenTime": 540, "CloseTime": 1080},
                    {"DayOfWeek": "sun", "Mode": "appointment_only", "OpenTime": null, "CloseTime": null},
                ],
            },
        }}),
    );
    let by_lid = gw.get("/contacts/profile?jid=1234567890987654321@lid", Some(ALICE)).await;
    assert_eq!(by_lid.status, 200, "{}", by_lid.text);
    assert_eq!(by_lid.json["data"]["jid"], "1234567890987654321@lid");
    assert_eq!(by_lid.json["data"]["user_info"]["Status"], "Available");
}

#[tokio::test]
async fn contacts_profile_picture_full_preview_and_none() {
    let gw = gateway().await;
    let full = gw.get("/contacts/profile-picture?number=6281234567890", Some(ALICE)).await;
    assert_body(
        &full,
        200,
        json!({"success": true, "data": {"jid": "6281234567890@s.whatsapp.net", "preview": false, "picture": {
            "id": "1059769838", "url": "https://pps.whatsapp.net/v/t61/john-full.jpg", "direct_path": "/v/t61/john-full.jpg",
        }}}),
    );
    let preview = gw.get("/contacts/profile-picture?jid=6281234567890@s.whatsapp.net&preview=true", Some(ALICE)).await;
    assert_eq!(preview.json["data"]["picture"]["url"], "https://pps.whatsapp.net/v/t61/john-preview.jpg");
    assert_eq!(preview.json["data"]["picture"]["direct_path"], Value::Null);
    let none = gw.get("/contacts/profile-picture?number=5511999999999", Some(ALICE)).await;
    assert_body(
        &none,
        200,
        json!({"success": true, "data": {"jid": "5511999999999@s.whatsapp.net", "preview": false, "picture": null}}),
    );
}

#[tokio::test]
async fn contacts_api_rejects_bad_input_with_json_errors() {
    let gw = gateway().await;
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        ("/contacts/profile?number=5511999999999", None, 401, "UNAUTHORIZED"),
        ("/contacts/profile?number=5511999999999", Some("3c4d5e6f-0000-4c3d-8e4f-5a6b7c8d9e0f"), 401, "UNAUTHORIZED"),
        ("/contacts/profile", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile?jid=&number=", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile?jid=not-a-jid", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile?number=55-11-abc", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile?number=1234567890987654321@lid", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile?number=%2B%2B5511999999999", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile?jid=120363406798553856@g.us", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile-picture?jid=120363406798553856@g.us", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile-picture?number=5511999999999&preview=perhaps", Some(ALICE), 400, "VALIDATION_ERROR"),
        ("/contacts/profile?number=5511000000000", Some(ALICE), 404, "NOT_FOUND"),
        ("/contacts/profile?number=5511999999999", Some(CAROL), 503, "DEVICE_NOT_CONNECTED"),
        ("/contacts/profile?number=5511999999999", Some(DAVE), 403, "FORBIDDEN"),
        ("/contacts/unknown", Some(ALICE), 404, "NOT_FOUND"),
    ];
    for &(path, token, status, code) in cases {
        let reply = gw.get(path, token).await;
        assert_contacts_error(&reply, status, code);
        assert_challenge(&reply, token);
    }
    let post = gw
        .request(reqwest::Method::DELETE, "/contacts/profile?number=5511999999999", Some(ALICE), None, Vec::new())
        .await;
    assert_contacts_error(&post, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(post.headers.get("allow").map(|v| v.to_str().unwrap()), Some("GET"), "RFC 9110 §15.5.6");

    // The host's own errors for the component keep the contacts API's envelope too: with a
    // memory cap below what the component starts with, it cannot be instantiated.
    let limits = json!({"limits": {"memory_mib": 1}});
    assert_eq!(gw.admin(reqwest::Method::PATCH, "/v1/tenants/acme", limits).await.status, 200);
    let starved = gw.get("/contacts/profile?number=5511999999999", Some(ALICE)).await;
    assert_contacts_error(&starved, 500, "COMPONENT_MEMORY_LIMIT");
}

/// A query string as form encoders write it (`URLSearchParams`, Python's `urlencode`): a
/// space becomes `+` and a plus `%2B`.
fn form_query(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

#[tokio::test]
async fn form_encoded_phone_numbers_reach_both_apis() {
    let gw = gateway().await;
    let query = form_query(&[("number", "+62 812-3456-7890")]);
    assert_eq!(query, "number=%2B62+812-3456-7890");
    for endpoint in ["profile", "profile-picture"] {
        let reply = gw.get(&format!("/contacts/{endpoint}?{query}"), Some(ALICE)).await;
        assert_eq!(reply.status, 200, "{endpoint}?{query}: {}", reply.text);
        assert_eq!(reply.json["data"]["jid"], "6281234567890@s.whatsapp.net");
    }
    for number in ["+62 812-3456-7890", "+62 (812) 3456 7890", "0062 812 3456 7890", "6281234567890@s.whatsapp.net"] {
        let query = form_query(&[("jid", number), ("preview", "true")]);
        let reply = gw.get(&format!("/devices/main/profile?{query}"), Some(ALICE)).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text);
        assert_eq!(reply.json["data"]["profile"]["jid"], "6281234567890@s.whatsapp.net");
    }
    // A plus that is not the leading one is still refused, however it is encoded.
    let query = form_query(&[("number", "+62+812")]);
    let reply = gw.get(&format!("/contacts/profile?{query}"), Some(ALICE)).await;
    assert_contacts_error(&reply, 400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn tenants_are_isolated() {
    let gw = gateway().await;
    let path = "/devices/main/profile?jid=6281234567890";
    // Selected by token: eve is globex's, and globex's `main` sees its own world.
    let eve = gw.get(path, Some(EVE)).await;
    assert_eq!(eve.status, 200, "{}", eve.text);
    assert_eq!(eve.json["data"]["profile"]["status"], "Globex sees this");
    let alice = gw.get(path, Some(ALICE)).await;
    assert_eq!(alice.json["data"]["profile"]["status"], "Available");
    // Another tenant's token on this tenant's host: not a token of this tenant.
    for (token, host) in [(EVE, "acme.test"), (ALICE, "globex.test")] {
        let reply = gw.request(reqwest::Method::GET, path, Some(token), Some(host), Vec::new()).await;
        assert_devices_error(&reply, 401, "UNAUTHORIZED");
        let contacts = gw
            .request(
                reqwest::Method::GET,
                "/contacts/profile?number=6281234567890",
                Some(token),
                Some(host),
                Vec::new(),
            )
            .await;
        assert_contacts_error(&contacts, 401, "UNAUTHORIZED");
    }
    // A device id only another tenant has is unknown here.
    let other =
        gw.request(reqwest::Method::GET, "/devices/stranger/groups", Some(EVE), Some("globex.test"), Vec::new()).await;
    assert_devices_error(&other, 404, "DEVICE_NOT_FOUND");
    // The right host with the right token.
    let own = gw.request(reqwest::Method::GET, path, Some(EVE), Some("globex.test:8080"), Vec::new()).await;
    assert_eq!(own.json["data"]["profile"]["status"], "Globex sees this");
}

#[tokio::test]
async fn the_host_answers_what_no_component_serves() {
    let without_default = gateway_with_default(None).await;
    // No tenant knows the caller: its problem is credentials, in the envelope of the API it
    // called, with the challenge RFC 6750 asks for.
    let no_token = without_default.get("/devices/main/groups", None).await;
    assert_devices_error(&no_token, 401, "UNAUTHORIZED");
    assert_challenge(&no_token, None);
    let unknown_token = "9f9f9f9f-0000-4000-8000-000000000000";
    let unknown = without_default.get("/devices/main/groups", Some(unknown_token)).await;
    assert_devices_error(&unknown, 401, "UNAUTHORIZED");
    assert_challenge(&unknown, Some(unknown_token));
    let contacts = without_default.get("/contacts/profile?number=6281234567890", None).await;
    assert_contacts_error(&contacts, 401, "UNAUTHORIZED");
    assert_challenge(&contacts, None);
    let gw = gateway().await;
    let no_route = gw.get("/elsewhere", Some(ALICE)).await;
    assert_devices_error(&no_route, 404, "NO_ROUTE");
    let prefix_boundary = gw.get("/devicesX/main/groups", Some(ALICE)).await;
    assert_devices_error(&prefix_boundary, 404, "NO_ROUTE");
    // Host errors on a route of the contacts API come in that API's shape.
    let huge = gw.request(reqwest::Method::POST, "/contacts/profile", Some(ALICE), None, vec![b'x'; 100_000]).await;
    assert_contacts_error(&huge, 413, "PAYLOAD_TOO_LARGE");
    // The gateway is still serving after all of that.
    assert_eq!(gw.get("/devices/main/groups", Some(ALICE)).await.status, 200);
}

//! Durability: `kill -9` while the admin API is busy writing loses nothing it acknowledged —
//! tenants, devices, component versions, routes, users and their tokens are all there after
//! a restart, and the tokens work.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Waedge, admin_token, write_config};

/// One tenant written completely, as acknowledged by the admin API.
struct Written {
    tenant: String,
    token: String,
    component: String,
}

/// Creates tenant after tenant (device, component, route, user, token) until the server goes
/// away; records each one whose every write was acknowledged.
async fn write_until_killed(admin: String, admin_token: String, written: Arc<Mutex<Vec<Written>>>) {
    let http = reqwest::Client::new();
    let call = |method: Method, path: String, body: Value| {
        let request = http.request(method, format!("{admin}{path}")).bearer_auth(&admin_token);
        let request = if body.is_null() {
            request
        } else {
            request.header("content-type", "application/json").body(body.to_string())
        };
        async move {
            let response = request.send().await.ok()?;
            let status = response.status();
            let body: Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
            assert!(status.is_success(), "{status}: {body}");
            Some(body)
        }
    };
    for i in 0.. {
        let tenant = format!("t{i}");
        let steps = async {
            call(Method::POST, "/v1/tenants".into(), json!({ "id": tenant })).await?;
            call(Method::POST, format!("/v1/tenants/{tenant}/devices"), json!({"id": "main"})).await?;
            let deploy = http
                .post(format!("{admin}/v1/tenants/{tenant}/components/api"))
                .bearer_auth(&admin_token)
                .body(waedge::runtime::builtin::get("devices-api").expect("the built-in").to_vec());
            let version = deploy.send().await.ok()?;
            assert_eq!(version.status(), 201);
            let version: Value = serde_json::from_str(&version.text().await.ok()?).ok()?;
            let route = json!({"prefix": "/devices", "component": "component:api"});
            call(Method::PUT, format!("/v1/tenants/{tenant}/routes"), route).await?;
            let user = call(Method::POST, format!("/v1/tenants/{tenant}/users"), json!({"devices": ["main"]})).await?;
            let user = user["id"].as_str()?.to_string();
            let token = call(Method::POST, format!("/v1/tenants/{tenant}/users/{user}/tokens"), Value::Null).await?;
            Some((token, version))
        };
        match steps.await {
            Some((token, version)) => {
                let token = token["token"].as_str().expect("a token").to_string();
                let component = format!("{tenant}/api@{}", &version["sha256"].as_str().expect("a hash")[..12]);
                written.lock().unwrap().push(Written { tenant, token, component });
            }
            None => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "");
    let admin_token = admin_token(&config);
    let waedge = Waedge::start(&config);
    let written = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(write_until_killed(waedge.admin.clone(), admin_token.clone(), written.clone()));
    // Let a good number of writes through, then crash in the middle of the next ones.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while written.lock().unwrap().len() < 10 {
        assert!(!writer.is_finished() && std::time::Instant::now() < deadline, "the writes stalled:\n{}", waedge.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(137)).await;
    waedge.kill();
    writer.await.expect("the writer stops when the server is gone");

    let waedge = Waedge::start(&config);
    let written = std::mem::take(&mut *written.lock().unwrap());
    assert!(written.len() >= 10);
    let tenants = waedge.admin(Method::GET, "/v1/tenants", &admin_token, Value::Null).await;
    let ids: Vec<&str> =
        tenants.json["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    for Written { tenant, token, component } in &written {
        assert!(ids.contains(&tenant.as_str()), "tenant {tenant} survived");
        // A session reads its store in the background after the start: `connecting` until then.
        let path = format!("/v1/tenants/{tenant}/devices/main");
        let mut device = waedge.admin(Method::GET, &path, &admin_token, Value::Null).await;
        let opened = std::time::Instant::now() + Duration::from_secs(10);
        while device.json["state"] == "connecting" && std::time::Instant::now() < opened {
            tokio::time::sleep(Duration::from_millis(20)).await;
            device = waedge.admin(Method::GET, &path, &admin_token, Value::Null).await;
        }
        assert_eq!((device.status, &device.json["state"]), (200, &json!("unlinked")), "{}", device.text);
        // The token is known and routed to the tenant's component: the device is just not linked.
        let reply = waedge.api("/devices/main/groups", token).await;
        assert_eq!(
            (reply.status, &reply.json["error"]["code"]),
            (503, &json!("DEVICE_NOT_CONNECTED")),
            "{tenant}: {}",
            reply.text
        );
        assert_eq!(reply.headers["x-waedge-component"], component.as_str(), "the deployed version serves");
    }
    // And the store takes new writes.
    let after = waedge.admin(Method::POST, "/v1/tenants", &admin_token, json!({"id": "after-crash"})).await;
    assert_eq!(after.status, 201, "{}", after.text);
}

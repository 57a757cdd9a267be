//! Device sessions of the real `waedge` binary against wa-sim, where they end: a device
//! deleted while it is being linked leaves nothing behind, a logout from the phone is not
//! forgotten in a crash, and a replaced session comes back on its own keys.
//!
//! Needs a test build (`wa-sim` feature: devices may connect to a server that is not
//! WhatsApp); `cargo test --workspace` has it.

#![cfg(feature = "wa-sim")]

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{SELF_PHONE, Waedge, admin_token, handshakes, world, write_config};
use wa_sim::{SimConfig, WaSim};

/// A sim and a gateway on a fresh data directory pointed at it, with tenant `acme`.
struct Live {
    sim: WaSim,
    dir: tempfile::TempDir,
    config: PathBuf,
    admin_token: String,
    waedge: Waedge,
}

impl Live {
    async fn start() -> Live {
        let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = write_config(dir.path(), &format!("whatsapp_server = \"{}\"", sim.ws_url()));
        let admin_token = admin_token(&config);
        let waedge = Waedge::start(&config);
        let live = Live { sim, dir, config, admin_token, waedge };
        live.call(Method::POST, "/v1/tenants", json!({"id": "acme"}), 201).await;
        live
    }

    /// An admin call that must answer `status`; returns its JSON.
    async fn call(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        let reply = self.waedge.admin(method.clone(), path, &self.admin_token, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        reply.json
    }

    /// The state of device `id` as the admin API shows it.
    async fn state(&self, id: &str) -> String {
        let device = self.call(Method::GET, &format!("/v1/tenants/acme/devices/{id}"), Value::Null, 200).await;
        device["state"].as_str().expect("a state").to_string()
    }

    /// Waits up to `seconds` for device `id` to be in `state`.
    async fn wait_for_state(&self, id: &str, state: &str, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let now = self.state(id).await;
            if now == state {
                return;
            }
            assert!(Instant::now() < deadline, "device {id} is {now}, not {state}:\n{}", self.waedge.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates device `id` and waits until its session is up (unlinked).
    async fn create_device(&self, id: &str) {
        self.call(Method::POST, "/v1/tenants/acme/devices", json!({"id": id}), 201).await;
        self.wait_for_state(id, "unlinked", 10).await;
    }

    /// Creates device `main` and links it by QR code to [`SELF_PHONE`].
    async fn linked_main(&self) {
        self.create_device("main").await;
        let link = self.call(Method::POST, "/v1/tenants/acme/devices/main/link", Value::Null, 200).await;
        let code = link["code"].as_str().unwrap_or_else(|| panic!("a QR code: {link}"));
        self.sim.scan_qr(code, SELF_PHONE).await.expect("the phone scans the QR code");
        self.wait_for_state("main", "connected", 20).await;
    }

    /// The file of device `id`'s store.
    fn store(&self, id: &str) -> PathBuf {
        self.dir.path().join("data/devices/acme").join(format!("{id}.db"))
    }
}

/// Each device of `list` (an admin device list) and whether it is being linked, in order.
fn linking(list: &Value) -> Vec<(String, bool)> {
    let devices = list["devices"].as_array().unwrap_or_else(|| panic!("a device list: {list}"));
    devices
        .iter()
        .map(|device| match (device["id"].as_str(), device["linking"].as_bool()) {
            (Some(id), Some(linking)) => (id.to_string(), linking),
            _ => panic!("a device with an id and a linking flag: {device}"),
        })
        .collect()
}

/// Which store file a device has (its inode) and which WhatsApp session it holds (its
/// identity key).
fn session_of(store: &Path) -> (u64, Vec<u8>) {
    let inode = std::fs::metadata(store).expect("the device store").ino();
    let db = rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the device store opens");
    let key = db.query_row("SELECT identity_key FROM device", [], |row| row.get(0)).expect("the store holds a device");
    (inode, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_deleted_while_it_is_being_linked_leaves_no_client_and_no_store() {
    let live = Live::start().await;
    // The delete lands at a different moment of the linking each round: before it starts,
    // while its client starts, and once it shows a QR code.
    let rounds = 24;
    for round in 0..rounds {
        let id = format!("d{round}");
        live.create_device(&id).await;
        let link_path = format!("/v1/tenants/acme/devices/{id}/link");
        let link = live.waedge.admin(Method::POST, &link_path, &live.admin_token, Value::Null);
        let delete = async {
            tokio::time::sleep(Duration::from_millis(2 * round)).await;
            live.waedge
                .admin(Method::DELETE, &format!("/v1/tenants/acme/devices/{id}"), &live.admin_token, Value::Null)
                .await
        };
        let (_, deleted) = tokio::join!(link, delete);
        assert_eq!(deleted.status, 204, "{}", deleted.text);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.sim.connections() > 0 {
        assert!(Instant::now() < deadline, "a deleted device still has a client connected to WhatsApp");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for round in 0..rounds {
        let store = live.store(&format!("d{round}"));
        assert!(!store.exists(), "{} is left behind", store.display());
    }
    // The id used again is a new device.
    live.create_device("d0").await;
    assert_eq!(live.state("d0").await, "unlinked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_list_shows_which_devices_are_being_linked() {
    let live = Live::start().await;
    live.create_device("main").await;
    live.create_device("spare").await;
    let list = "/v1/tenants/acme/devices";
    let none = vec![("main".to_string(), false), ("spare".to_string(), false)];
    assert_eq!(linking(&live.call(Method::GET, list, Value::Null, 200).await), none);

    let link = live.call(Method::POST, "/v1/tenants/acme/devices/main/link", Value::Null, 200).await;
    let code = link["code"].as_str().unwrap_or_else(|| panic!("a QR code: {link}"));
    let listed = live.call(Method::GET, list, Value::Null, 200).await;
    assert_eq!(linking(&listed), [("main".to_string(), true), ("spare".to_string(), false)], "{listed}");
    let main = live.call(Method::GET, "/v1/tenants/acme/devices/main", Value::Null, 200).await;
    assert_eq!(main["linking"], true, "the device alone says so too: {main}");

    live.sim.scan_qr(code, SELF_PHONE).await.expect("the phone scans the QR code");
    // The device is connected a moment before its linking is marked linked.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let link = live.call(Method::GET, "/v1/tenants/acme/devices/main/link", Value::Null, 200).await;
        if link["state"] == "linked" {
            break;
        }
        assert!(Instant::now() < deadline, "the linking does not end: {link}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(linking(&live.call(Method::GET, list, Value::Null, 200).await), none, "the linking is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_from_the_phone_seen_just_before_a_crash_is_not_forgotten() {
    let live = Live::start().await;
    live.linked_main().await;
    live.call(
        Method::PUT,
        "/v1/tenants/acme/routes",
        json!({"prefix": "/devices", "component": "builtin:devices-api"}),
        200,
    )
    .await;
    let user = live.call(Method::POST, "/v1/tenants/acme/users", json!({"devices": ["main"]}), 201).await;
    let path = format!("/v1/tenants/acme/users/{}/tokens", user["id"].as_str().expect("a user id"));
    let token = live.call(Method::POST, &path, Value::Null, 201).await;
    let token = token["token"].as_str().expect("a token").to_string();

    // The store is slow to write (another writer holds it for 2 s): whatever the gateway shows
    // meanwhile must already be written.
    let mut other = rusqlite::Connection::open(live.dir.path().join("data/waedge.db")).expect("waedge.db opens");
    let holder = std::thread::spawn(move || {
        let busy = other.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("the write lock");
        std::thread::sleep(Duration::from_secs(2));
        busy.rollback().expect("the write lock is released");
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    live.sim.log_out(SELF_PHONE).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = live.waedge.api("/devices/main/groups", &token).await;
        if reply.json["error"]["message"].as_str().is_some_and(|m| m.contains("logged-out")) {
            break;
        }
        assert!(Instant::now() < deadline, "the device does not show the logout: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Live { sim, dir, config, admin_token, waedge } = live;
    waedge.kill();
    holder.join().expect("the other writer ends");

    let after_crash = handshakes(&sim);
    let waedge = Waedge::start(&config);
    let live = Live { sim, dir, config, admin_token, waedge };
    live.wait_for_state("main", "logged-out", 5).await;
    live.waedge.wait_for_no_client(10).await;
    assert_eq!(handshakes(&live.sim), after_crash, "a logged-out device does not reconnect after a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_device_reconnects_on_its_own_keys() {
    let live = Live::start().await;
    live.linked_main().await;
    let store = live.store("main");
    let before = session_of(&store);

    live.sim.replace(SELF_PHONE).await;
    live.wait_for_state("main", "replaced", 10).await;
    let connects = handshakes(&live.sim);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(handshakes(&live.sim), connects, "a replaced device does not fight the other session by itself");

    let device = live.call(Method::POST, "/v1/tenants/acme/devices/main/reconnect", Value::Null, 200).await;
    assert!(matches!(device["state"].as_str(), Some("connecting" | "connected")), "{device}");
    live.wait_for_state("main", "connected", 20).await;
    assert_eq!(session_of(&store), before, "the same store file, with the same WhatsApp session");

    // Only a replaced, banned or disconnected device is reconnected.
    let refused = live
        .waedge
        .admin(Method::POST, "/v1/tenants/acme/devices/main/reconnect", &live.admin_token, Value::Null)
        .await;
    assert_eq!((refused.status, &refused.json["error"]["code"]), (409, &json!("CONFLICT")), "{}", refused.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporarily_banned_device_comes_back_on_its_own_keys_when_the_ban_is_over() {
    let live = Live::start().await;
    live.linked_main().await;
    let store = live.store("main");
    let before = session_of(&store);

    live.sim.ban(SELF_PHONE, Duration::from_secs(8)).await;
    live.wait_for_state("main", "banned", 15).await;
    live.wait_for_state("main", "connected", 30).await;
    assert_eq!(session_of(&store), before, "the same store file, with the same WhatsApp session");
}

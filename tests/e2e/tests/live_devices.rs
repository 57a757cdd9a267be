//! The gateway on the real device layer (`WhatsappDevices` on whatsapp-rust) against wa-sim, a
//! WhatsApp server on loopback: linking by QR code, lookups over HTTP answered from the sim's
//! world (`fixtures/wa-world.toml`), reconnects, logout and restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_sim::{Pattern, SimConfig, WaSim};
use waedge::bindings::types::DeviceState;
use waedge::device::whatsapp::WhatsappDevices;
use waedge::device::{DeviceManager, DeviceSession, LinkEvent};
use waedge::token::TokenHash;
use waedge_e2e::server::{Reply, TestGateway, fixtures};

const TOKEN: &str = "0d6f5c1e-8a3b-4c2d-9e1f-2a3b4c5d6e7f";
/// The account device `main` links to (Acme Support in the world).
const SELF_PHONE: &str = "6285550000001";

/// A sim, the device layer pointed at it and a gateway serving device `main` of tenant acme.
struct Live {
    sim: WaSim,
    data_dir: tempfile::TempDir,
    devices: Arc<WhatsappDevices>,
    main: Arc<dyn DeviceSession>,
    gateway: TestGateway,
}

impl Live {
    /// Starts everything; device `main` is not linked yet unless `data_dir` holds its store.
    async fn start(sim: WaSim, data_dir: tempfile::TempDir) -> Live {
        let devices = Arc::new(WhatsappDevices::with_server(data_dir.path(), &sim.ws_url()));
        let config = format!(
            r#"
            default_tenant = "acme"
            [[tenants]]
            id = "acme"
            devices = [{{ id = "main" }}]
            users = [{{ id = "a11ce000-0000-4000-8000-000000000001", token_sha256 = "{}", devices = ["main"] }}]
            routes = [
              {{ prefix = "/devices", component = "builtin:devices-api" }},
              {{ prefix = "/contacts", component = "builtin:contacts-api" }},
            ]
            "#,
            TokenHash::of(TOKEN).to_hex()
        );
        let gateway = TestGateway::start_with(&config, devices.clone()).await;
        let main = gateway.device("acme", "main");
        Live { sim, data_dir, devices, main, gateway }
    }

    /// A sim on the world fixture, and everything else on a fresh data directory.
    async fn fresh() -> Live {
        let world = wa_sim::World::load(fixtures().join("wa-world.toml")).expect("the wa-sim world loads");
        let sim = WaSim::start(SimConfig::new(world)).await.expect("wa-sim starts");
        Live::start(sim, tempfile::tempdir().expect("a temporary directory")).await
    }

    /// A fresh setup with device `main` linked by QR code to [`SELF_PHONE`].
    async fn linked() -> Live {
        let live = Live::fresh().await;
        live.wait_for_state(DeviceState::Unlinked, 10).await;
        let mut events = live.devices.link_qr("acme", "main").await.expect("linking starts");
        let Some(LinkEvent::Qr { code, .. }) = next(&mut events).await else { panic!("a QR code first") };
        live.sim.scan_qr(&code, SELF_PHONE).await.expect("the phone scans the QR code");
        let linked = next(&mut events).await;
        assert_eq!(
            linked,
            Some(LinkEvent::Linked {
                jid: Some(format!("{SELF_PHONE}@s.whatsapp.net")),
                lid: Some("900000000000001@lid".to_string()),
            })
        );
        assert_eq!(live.main.status().state, DeviceState::Connected);
        live
    }

    async fn get(&self, path: &str) -> Reply {
        self.gateway.get(path, Some(TOKEN)).await
    }

    /// Waits up to `seconds` for device `main` to reach `state`.
    async fn wait_for_state(&self, state: DeviceState, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while self.main.status().state != state {
            assert!(Instant::now() < deadline, "device main is {:?}, not {state:?}", self.main.status().state);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The next linking event, within 20 s.
async fn next(events: &mut tokio::sync::mpsc::Receiver<LinkEvent>) -> Option<LinkEvent> {
    tokio::time::timeout(Duration::from_secs(20), events.recv()).await.expect("a linking event in time")
}

/// Asserts an HTTP 200 and returns the body's `data`.
fn data(reply: &Reply) -> &Value {
    assert_eq!(reply.status, 200, "body: {}", reply.text);
    &reply.json["data"]
}

/// Every handshake the sim completed so far.
fn handshakes(sim: &WaSim) -> usize {
    [Pattern::Xx, Pattern::Ik, Pattern::XxFallback].into_iter().map(|p| sim.handshakes(p)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_linked_by_qr_answers_lookups_from_the_world() {
    let live = Live::linked().await;
    assert_eq!(live.main.status().push_name.as_deref(), Some("Acme Support"));
    // John Doe writes to the device: that is how it learns his push name.
    assert_eq!(live.sim.send_text("6281234567890", SELF_PHONE, "hi").await.expect("John Doe sends a text"), 1);

    let john = json!({
        "jid": "6281234567890@s.whatsapp.net",
        "lid": "1234567890987654321@lid",
        "status": "Available",
        "picture_url": "https://pps.whatsapp.net/v/t61/john-full.jpg",
        "picture_id": "1059769838",
        "push_name": "John Doe",
        "business_name": "",
        "verified_name": "",
        "devices": ["6281234567890@s.whatsapp.net", "6281234567890:1@s.whatsapp.net"],
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    for query in ["6281234567890", "6281234567890@s.whatsapp.net"] {
        loop {
            let reply = live.get(&format!("/devices/main/profile?jid={query}")).await;
            if data(&reply)["profile"]["push_name"].is_string() || Instant::now() > deadline {
                assert_eq!(data(&reply), &json!({"type": "contact", "profile": john}), "{query}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let by_lid = live.get("/devices/main/profile?jid=1234567890987654321@lid").await;
    let profile = &data(&by_lid)["profile"];
    assert_eq!(profile["jid"], "1234567890987654321@lid");
    assert_eq!(profile["phone_jid"], "6281234567890@s.whatsapp.net");
    assert_eq!(profile["lid"], "1234567890987654321@lid");
    assert_eq!((&profile["status"], &profile["picture_id"]), (&json!("Available"), &json!("1059769838")));
    let preview = live.get("/devices/main/profile?jid=6281234567890&preview=true").await;
    assert_eq!(data(&preview)["profile"]["picture_url"], "https://pps.whatsapp.net/v/t61/john-preview.jpg");

    let groups = live.get("/devices/main/groups").await;
    assert_eq!(
        data(&groups),
        &json!({"groups": [
            {
                "jid": "120363406798553856@g.us",
                "name": "My Group Chat",
                "subject": "My Group Chat",
                "description": "Group description or topic",
                "participant_count": 3,
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
        ], "count": 2})
    );
    let group = live.get("/devices/main/profile?jid=120363406798553856@g.us").await;
    assert_eq!(
        data(&group),
        &json!({"type": "group", "profile": {
            "jid": "120363406798553856@g.us",
            "name": "My Group Chat",
            "subject": "My Group Chat",
            "description": "Group description or topic",
            "picture_url": "https://pps.whatsapp.net/v/t61/group-full.jpg",
            "picture_id": "1700000901",
            "participants": ["6281234567890@s.whatsapp.net", "6285550000001@s.whatsapp.net", "6289876543210@s.whatsapp.net"],
        }})
    );
    let former = live.get("/devices/main/profile?jid=120363000000000001@g.us").await;
    assert_eq!((former.status, &former.json["error"]["code"]), (403, &json!("FORBIDDEN")), "{}", former.text);
    let unknown = live.get("/devices/main/profile?jid=120363999999999999@g.us").await;
    assert_eq!((unknown.status, &unknown.json["error"]["code"]), (404, &json!("NOT_FOUND")), "{}", unknown.text);

    let hidden = live.get("/devices/main/profile?jid=5511999999999").await;
    assert_eq!(
        data(&hidden),
        &json!({"type": "contact", "profile": {"jid": "5511999999999@s.whatsapp.net", "lid": "5511000000000001@lid", "business_name": "", "verified_name": ""}})
    );
    let contact = live.get("/contacts/profile?number=6281234567890").await;
    assert_eq!(
        contact.json,
        json!({"success": true, "data": {"jid": "6281234567890@s.whatsapp.net", "user_info": {
            "Status": "Available",
            "PictureID": "1059769838",
            "Devices": ["6281234567890@s.whatsapp.net", "6281234567890:1@s.whatsapp.net"],
            "VerifiedName": null,
        }, "business_profile": null}}),
        "{}",
        contact.text
    );
    let business = live.get("/contacts/profile?number=14155550123").await;
    assert_eq!(business.status, 200, "{}", business.text);
    assert_eq!(business.json["data"]["user_info"]["VerifiedName"], "Bay Bikes");
    assert_eq!(
        business.json["data"]["business_profile"],
        json!({
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
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_links_by_pair_code() {
    let live = Live::fresh().await;
    live.wait_for_state(DeviceState::Unlinked, 10).await;
    let (code, mut events) = live.devices.link_pair_code("acme", "main", SELF_PHONE).await.expect("a pair code");
    live.sim.enter_pair_code(SELF_PHONE, &code).await.expect("the phone enters the code");
    loop {
        match next(&mut events).await {
            Some(LinkEvent::Qr { .. }) => continue,
            linked => {
                assert!(matches!(linked, Some(LinkEvent::Linked { .. })), "{linked:?}");
                break;
            }
        }
    }
    assert_eq!(live.main.status().state, DeviceState::Connected);
    assert_eq!(data(&live.get("/devices/main/groups").await)["count"], 2);
    assert!(live.devices.link_qr("acme", "main").await.is_err(), "a connected device is not linked again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_reconnects_after_its_connection_drops() {
    let live = Live::linked().await;
    let before = handshakes(&live.sim);
    live.sim.drop_connections().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while handshakes(&live.sim) == before || live.main.status().state != DeviceState::Connected {
        assert!(Instant::now() < deadline, "no reconnect: device is {:?}", live.main.status().state);
        let reply = live.get("/devices/main/groups").await;
        assert!(
            reply.status == 200 || (reply.status == 503 && reply.json["error"]["code"] == "DEVICE_NOT_CONNECTED"),
            "{}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(data(&live.get("/devices/main/groups").await)["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logged_out_device_stays_logged_out_until_linked_again() {
    let live = Live::linked().await;
    live.sim.log_out(SELF_PHONE).await;
    live.wait_for_state(DeviceState::LoggedOut, 10).await;
    let reply = live.get("/devices/main/groups").await;
    assert_eq!((reply.status, &reply.json["error"]["code"]), (503, &json!("DEVICE_NOT_CONNECTED")), "{}", reply.text);
    assert!(reply.json["error"]["message"].as_str().unwrap().contains("logged-out"), "{}", reply.text);
    let after_logout = handshakes(&live.sim);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(handshakes(&live.sim), after_logout, "a logged-out device does not reconnect");
    assert_eq!(live.main.status().state, DeviceState::LoggedOut);

    // Linking again starts over on a new store.
    let mut events = live.devices.link_qr("acme", "main").await.expect("linking starts");
    let Some(LinkEvent::Qr { code, .. }) = next(&mut events).await else { panic!("a QR code first") };
    live.sim.scan_qr(&code, SELF_PHONE).await.expect("the phone scans the QR code");
    assert!(matches!(next(&mut events).await, Some(LinkEvent::Linked { .. })));
    assert_eq!(data(&live.get("/devices/main/groups").await)["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_linked_device_reconnects_after_a_restart_without_pairing() {
    let Live { sim, data_dir, devices, main, gateway } = Live::linked().await;
    let jid = main.status().jid;
    devices.shutdown().await;
    drop((gateway, main));
    let live = Live::start(sim, data_dir).await;
    live.wait_for_state(DeviceState::Connected, 15).await;
    assert_eq!(live.main.status().jid, jid);
    assert_eq!(data(&live.get("/devices/main/groups").await)["count"], 2);
}

//! The gateway on the real device layer (`WhatsappDevices` on whatsapp-rust) against wa-sim, a
//! WhatsApp server on loopback, in process: linking by pair code, relinking after a logout,
//! and the admin listener's pairing page in headless Chromium. (The `waedge` binary against
//! wa-sim — QR linking by the CLI, every lookup, restarts, outages, logout — is
//! `host/tests/live_operator.rs`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_sim::{Pattern, SimConfig, WaSim};
use waedge::bindings::types::DeviceState;
use waedge::device::whatsapp::WhatsappDevices;
use waedge::device::{DeviceManager, DeviceSession, LinkEvent};
use waedge::token::TokenHash;
use waedge_e2e::browser::Browser;
use waedge_e2e::server::{Reply, TestGateway, fixtures};

const TOKEN: &str = "0d6f5c1e-8a3b-4c2d-9e1f-2a3b4c5d6e7f";
/// The account device `main` links to (Acme Support in the world).
const SELF_PHONE: &str = "6285550000001";

/// A sim, the device layer pointed at it and a gateway serving device `main` of tenant acme.
struct Live {
    sim: WaSim,
    _data_dir: tempfile::TempDir,
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
        Live { sim, _data_dir: data_dir, devices, main, gateway }
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
#[ignore = "needs chromium and chromedriver: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn the_pairing_page_shows_the_qr_code_and_turns_to_linked() {
    let browser = Browser::start().await;
    let live = Live::fresh().await;
    live.wait_for_state(DeviceState::Unlinked, 10).await;
    let gw = &live.gateway;
    browser.open(&format!("{}/pair#tenant=acme&device=main&token={}", gw.admin_base(), gw.admin_token())).await;
    let page = "const s = document.getElementById('status'); const qr = document.getElementById('qr');                 return {state: s.dataset.state, text: s.textContent, code: qr.dataset.code || null,                         shown: qr.style.display !== 'none' && qr.naturalWidth > 0};";
    let showing = browser.wait_for(page, 30, |page| page["state"] == "qr" && page["shown"] == true).await;
    let code = showing["code"].as_str().expect("the page carries the QR code's text");
    // The page shows the code the admin API is linking with, as an image.
    let link = gw.admin(reqwest::Method::GET, "/v1/tenants/acme/devices/main/link", serde_json::Value::Null).await;
    assert_eq!(link.json["code"], code, "{}", link.text);

    live.sim.scan_qr(code, SELF_PHONE).await.expect("the phone scans the QR code from the page");
    let linked = browser.wait_for(page, 30, |page| page["state"] == "linked").await;
    assert_eq!(linked["text"], format!("Linked: {SELF_PHONE}@s.whatsapp.net"));
    assert_eq!(linked["shown"], false, "the QR code is gone");
    live.wait_for_state(DeviceState::Connected, 5).await;
}

//! The gateway on the real device layer (`WhatsappDevices` on whatsapp-rust) against wa-sim, a
//! WhatsApp server on loopback, in process: linking by pair code, relinking after a logout,
//! and the admin listener's pairing page in headless Chromium. (The `waedge` binary against
//! wa-sim — QR linking by the CLI, every lookup, restarts, outages, logout — is
//! `host/tests/live_operator.rs`.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use waedge_contract::types::DeviceState;
use waedge_device::DeviceManager;
use waedge_device::link::LinkState;
use waedge_device::whatsapp::WhatsappDevices;
use waedge_e2e::browser::Browser;
use waedge_e2e::live::{Live, SELF_PHONE, next};
use waedge_e2e::server::Reply;

/// Asserts an HTTP 200 and returns the body's `data`.
fn data(reply: &Reply) -> &Value {
    assert_eq!(reply.status, 200, "body: {}", reply.text);
    &reply.json["data"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_links_by_pair_code() {
    let live = Live::fresh(WhatsappDevices::with_server).await;
    live.wait_for_state(DeviceState::Unlinked, 10).await;
    let (code, mut events) = live.devices.link_pair_code("acme", "main", SELF_PHONE).await.expect("a pair code");
    live.sim.enter_pair_code(SELF_PHONE, &code).await.expect("the phone enters the code");
    loop {
        match next(&mut events).await {
            Some(LinkState::Qr { .. }) => continue,
            linked => {
                assert!(matches!(linked, Some(LinkState::Linked { .. })), "{linked:?}");
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
    let live = Live::linked(WhatsappDevices::with_server).await;
    live.sim.log_out(SELF_PHONE).await;
    live.wait_for_state(DeviceState::LoggedOut, 10).await;
    let reply = live.get("/devices/main/groups").await;
    assert_eq!((reply.status, &reply.json["error"]["code"]), (503, &json!("DEVICE_NOT_CONNECTED")), "{}", reply.text);
    assert!(reply.json["error"]["message"].as_str().unwrap().contains("logged-out"), "{}", reply.text);
    // Its client has stopped, and nothing starts another: it cannot reconnect.
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.devices.clients_running() > 0 {
        assert!(Instant::now() < deadline, "the logged-out device's client still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live.main.status().state, DeviceState::LoggedOut);

    // Linking again starts over on a new store.
    let mut events = live.devices.link_qr("acme", "main").await.expect("linking starts");
    let Some(LinkState::Qr { code, .. }) = next(&mut events).await else { panic!("a QR code first") };
    live.sim.scan_qr(&code, SELF_PHONE).await.expect("the phone scans the QR code");
    assert!(matches!(next(&mut events).await, Some(LinkState::Linked { .. })));
    assert_eq!(data(&live.get("/devices/main/groups").await)["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs chromium and chromedriver: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn the_pairing_page_shows_the_qr_code_and_turns_to_linked() {
    let browser = Browser::start().await;
    let live = Live::fresh(WhatsappDevices::with_server).await;
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

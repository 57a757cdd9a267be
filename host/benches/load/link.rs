//! Linking devices the way an operator does, many at a time: create the device, start a QR
//! linking through the admin API, have the account's phone in the sim scan the code, and wait
//! until the device is connected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use wa_sim::WaSim;

use crate::gateway::Gateway;
use crate::report::Progress;
use crate::sim::Sim;

/// Linkings in flight at once.
const PARALLEL: usize = 16;
/// How long a device may take to reach the next state of its linking.
const STATE_DEADLINE: Duration = Duration::from_secs(60);
/// How often the device's state is polled.
pub const POLL: Duration = Duration::from_millis(100);

/// One device to create and link.
pub struct Link {
    /// Its tenant.
    pub tenant: String,
    /// Its id.
    pub device: String,
    /// The phone number of the sim account that links it.
    pub phone: String,
}

/// Creates and links every device, [`PARALLEL`] at a time, with a progress line per tenth.
pub async fn link_all(gateway: &Arc<Gateway>, sim: &Sim, links: Vec<Link>) {
    let mut progress = Progress::new("devices linked", links.len());
    let mut queue = links.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < PARALLEL
            && let Some(link) = queue.next()
        {
            running.spawn(link_one(gateway.clone(), sim.server().clone(), link));
        }
        match running.join_next().await {
            None => return,
            Some(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
            Some(Ok(())) => progress.step(),
        }
    }
}

/// Creates one device, links it by QR code and waits until it is connected.
async fn link_one(gateway: Arc<Gateway>, sim: Arc<WaSim>, link: Link) {
    let Link { tenant, device, phone } = link;
    let devices = format!("/v1/tenants/{tenant}/devices");
    gateway.admin(Method::POST, &devices, json!({ "id": device })).await;
    // A new device is `connecting` until the gateway has opened its (empty) session store.
    let this = format!("{devices}/{device}");
    wait_until(&gateway, &this, "unlinked").await;
    let linking = gateway.admin(Method::POST, &format!("{this}/link"), Value::Null).await;
    let Some(code) = linking["code"].as_str() else {
        panic!("{this}: the linking showed no QR code ({linking}); is wa-sim reachable from waedge?");
    };
    sim.scan_qr(code, &phone).await.unwrap_or_else(|e| panic!("{this}: phone {phone} could not scan the QR code: {e}"));
    wait_until(&gateway, &this, "connected").await;
}

/// Polls the device at admin `path` until it is in `state`.
async fn wait_until(gateway: &Gateway, path: &str, state: &str) {
    let deadline = Instant::now() + STATE_DEADLINE;
    loop {
        let status = gateway.admin(Method::GET, path, Value::Null).await;
        if status["state"] == state {
            return;
        }
        assert!(Instant::now() < deadline, "{path} is {}, not {state}, after {STATE_DEADLINE:?}", status["state"]);
        tokio::time::sleep(POLL).await;
    }
}

//! The gateway on the real device layer (`WhatsappDevices` on whatsapp-rust) against wa-sim, a
//! WhatsApp server on loopback, in process: tenant acme with one device, `main`, which links
//! to [`SELF_PHONE`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wa_sim::{SimConfig, WaSim};
use waedge_contract::types::DeviceState;
use waedge_device::link::LinkState;
use waedge_device::whatsapp::WhatsappDevices;
use waedge_device::{DeviceManager, DeviceSession};
use waedge_store::token::TokenHash;

use crate::server::{Reply, TestGateway, fixtures};

/// The bearer token of acme's user, who may use device `main`.
pub const TOKEN: &str = "0d6f5c1e-8a3b-4c2d-9e1f-2a3b4c5d6e7f";
/// The account device `main` links to (Acme Support in the world).
pub const SELF_PHONE: &str = "6285550000001";

/// How a test points the device layer at a sim: pass `WhatsappDevices::with_server`. It only
/// exists with waedge's `wa-sim` feature, which the tests' build has and a plain build of this
/// library (`cargo build`) does not, so the test names it rather than this module.
pub type Connect = fn(&Path, &str) -> WhatsappDevices;

/// A sim, the device layer pointed at it and a gateway serving device `main` of tenant acme.
pub struct Live {
    /// The WhatsApp server the devices connect to.
    pub sim: WaSim,
    _data_dir: tempfile::TempDir,
    /// The real device layer.
    pub devices: Arc<WhatsappDevices>,
    /// Device `main`'s session, as requests see it.
    pub main: Arc<dyn DeviceSession>,
    /// The gateway and its admin API.
    pub gateway: TestGateway,
}

impl Live {
    /// Starts everything; device `main` is not linked yet unless `data_dir` holds its store.
    pub async fn start(sim: WaSim, data_dir: tempfile::TempDir, connect: Connect) -> Live {
        let devices = Arc::new(connect(data_dir.path(), &sim.ws_url()));
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
    pub async fn fresh(connect: Connect) -> Live {
        let world = wa_sim::World::load(fixtures().join("wa-world.toml")).expect("the wa-sim world loads");
        let sim = WaSim::start(SimConfig::new(world)).await.expect("wa-sim starts");
        Live::start(sim, tempfile::tempdir().expect("a temporary directory"), connect).await
    }

    /// A fresh setup with device `main` linked by QR code to [`SELF_PHONE`].
    pub async fn linked(connect: Connect) -> Live {
        let live = Live::fresh(connect).await;
        live.wait_for_state(DeviceState::Unlinked, 10).await;
        let mut events = live.devices.link_qr("acme", "main").await.expect("linking starts");
        let Some(LinkState::Qr { code, .. }) = next(&mut events).await else { panic!("a QR code first") };
        live.sim.scan_qr(&code, SELF_PHONE).await.expect("the phone scans the QR code");
        let linked = next(&mut events).await;
        assert_eq!(
            linked,
            Some(LinkState::Linked {
                jid: Some(format!("{SELF_PHONE}@s.whatsapp.net")),
                lid: Some("900000000000001@lid".to_string()),
            })
        );
        assert_eq!(live.main.status().state, DeviceState::Connected);
        live
    }

    /// `GET path` on the API listener as acme's user.
    pub async fn get(&self, path: &str) -> Reply {
        self.gateway.get(path, Some(TOKEN)).await
    }

    /// Waits up to `seconds` for device `main` to reach `state`.
    pub async fn wait_for_state(&self, state: DeviceState, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while self.main.status().state != state {
            assert!(Instant::now() < deadline, "device main is {:?}, not {state:?}", self.main.status().state);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The linking's next state, within 20 s; `None` once it has ended and every state was seen.
pub async fn next(view: &mut tokio::sync::watch::Receiver<LinkState>) -> Option<LinkState> {
    let changed = tokio::time::timeout(Duration::from_secs(20), view.changed()).await.expect("a linking state in time");
    changed.ok().map(|()| view.borrow_and_update().clone())
}

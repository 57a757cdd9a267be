//! Test harness: a sim with the demo world and real `whatsapp-rust` clients.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use wa_sim::{SimConfig, WaSim, World};
use whatsapp_rust::store::commands::DeviceCommand;
use whatsapp_rust::store::persistence_manager::PersistenceManager;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::{ChannelEventHandler, Event};
use whatsapp_rust::{Client, InboundDurabilityHook, Jid, TokioRuntime};

/// The demo world's usual "self" account.
pub const SELF_PHONE: &str = "15550001111";
pub const SELF_LID: &str = "100000000000001";

/// Starts a sim on a free port with the demo world.
pub async fn start_sim() -> WaSim {
    init_logs();
    let world = World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/worlds/demo.toml")).expect("demo world");
    WaSim::start(SimConfig::new(world)).await.expect("sim starts")
}

/// The sim's own log, plus the client's app-state log: a failed test prints it, and
/// the app-state lines tell whether the phone's key share arrived and was stored.
fn init_logs() {
    let default = "wa_sim=info,Client/AppState=debug";
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
        .with_test_writer()
        .try_init();
}

/// A real client, its event stream and its run loop.
pub struct TestClient {
    pub client: Arc<Client>,
    pub pm: Arc<PersistenceManager>,
    events: whatsapp_rust::async_channel::Receiver<Arc<Event>>,
    run: tokio::task::JoinHandle<()>,
}

impl TestClient {
    /// A client whose store is empty (it will ask to be linked).
    pub async fn fresh(sim: &WaSim) -> TestClient {
        Self::with_backend(sim, Arc::new(whatsapp_rust::wacore::store::InMemoryBackend::new())).await
    }

    /// A client over a storage backend (in memory, SQLite, …).
    pub async fn with_backend(sim: &WaSim, backend: Arc<dyn Backend>) -> TestClient {
        let pm = Arc::new(PersistenceManager::new(backend).await.expect("persistence manager"));
        Self::with_store(sim, pm).await
    }

    /// A client pre-seeded as device `device` of the account (already paired).
    pub async fn seeded(sim: &WaSim, phone: &str, lid: &str, device: u16, push_name: &str) -> TestClient {
        Self::with_store(sim, seeded_store(phone, lid, device, push_name).await).await
    }

    /// Like [`TestClient::seeded`], with an inbound durability hook that gates the client's
    /// acknowledgements of the messages it receives.
    pub async fn seeded_with_hook(
        sim: &WaSim,
        phone: &str,
        lid: &str,
        device: u16,
        hook: Arc<dyn InboundDurabilityHook>,
    ) -> TestClient {
        let pm = seeded_store(phone, lid, device, "Sim User").await;
        Self::build(sim, pm, Some(hook)).await
    }

    /// A client over an existing store.
    pub async fn with_store(sim: &WaSim, pm: Arc<PersistenceManager>) -> TestClient {
        Self::build(sim, pm, None).await
    }

    async fn build(
        sim: &WaSim,
        pm: Arc<PersistenceManager>,
        hook: Option<Arc<dyn InboundDurabilityHook>>,
    ) -> TestClient {
        let mut builder = whatsapp_rust::ClientBuilder::new()
            .with_runtime(TokioRuntime)
            .with_persistence_manager(pm.clone())
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(sim.ws_url()))
            .with_http_client(whatsapp_rust::http::UreqHttpClient::new())
            .with_version_override((2, 3000, 1_000_000_000));
        if let Some(hook) = hook {
            builder = builder.with_inbound_durability_hook_arc(hook);
        }
        let client = builder.build().await.expect("client builds").into_client();
        let (handler, events) = ChannelEventHandler::new();
        client.subscribe_handler(handler).detach();
        let runner = client.clone();
        let run = tokio::spawn(async move { runner.run().await });
        TestClient { client, pm, events, run }
    }

    /// Waits for the first event matching `pred`, failing the test after `secs`.
    pub async fn wait_for<T>(&self, secs: u64, what: &str, mut pred: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out after {secs}s waiting for {what}"))
                .expect("event channel open");
            if let Some(v) = pred(&ev) {
                return v;
            }
        }
    }

    /// Waits for `Event::Connected`.
    pub async fn connected(&self, secs: u64) {
        self.wait_for(secs, "Connected", |e| matches!(e, Event::Connected(_)).then_some(())).await;
    }

    /// Whether the client's run loop has ended (it gave up reconnecting).
    pub fn run_loop_finished(&self) -> bool {
        self.run.is_finished()
    }

    /// Stops the client.
    pub async fn stop(self) {
        self.client.disconnect().await;
        self.run.abort();
    }
}

/// An in-memory store seeded as an already-linked device.
async fn seeded_store(phone: &str, lid: &str, device: u16, push_name: &str) -> Arc<PersistenceManager> {
    let backend = Arc::new(whatsapp_rust::wacore::store::InMemoryBackend::new());
    let pm = Arc::new(PersistenceManager::new(backend).await.expect("persistence manager"));
    seed(&pm, phone, lid, device, push_name).await;
    pm
}

/// Seeds a store as an already-linked device.
pub async fn seed(pm: &PersistenceManager, phone: &str, lid: &str, device: u16, push_name: &str) {
    pm.process_command(DeviceCommand::SetId(Some(Jid::pn_device(phone, device)))).await;
    pm.process_command(DeviceCommand::SetLid(Some(Jid::lid_device(lid, device)))).await;
    pm.process_command(DeviceCommand::SetPushName(push_name.to_owned())).await;
    pm.flush().await.expect("flush");
}

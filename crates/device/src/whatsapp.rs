//! Device sessions on the real `whatsapp-rust` client.
//!
//! Each device has its own SQLite store (`DATA_DIR/devices/TENANT/DEVICE.db`, whatsapp-rust's
//! own schema), or its state in PostgreSQL shared with other nodes
//! ([`WhatsappDevices::with_shared_storage`]: this node then runs the devices whose leases it
//! takes, see `ownership`), and, once linked, exactly one [`Client`] owned by one run task: two
//! clients on one store would fight over the session. On start a device whose store holds a linked
//! account reconnects by itself — no re-pairing after a restart; an unlinked device stays
//! [`DeviceState::Unlinked`] and makes no connection at all.
//!
//! The client reconnects with backoff on its own, each attempt paced by [`PacedReconnects`]
//! (all sessions together); terminal states (logged out, replaced, banned) stop its loop and
//! are surfaced as the device state. None of them deletes the session's keys: a temporary ban
//! ends with a reconnect when WhatsApp said it would, and a replaced device (another client
//! took over its session) is taken back with [`WhatsappDevices::reconnect`] — as "use here"
//! in WhatsApp Web, never by itself, which would make the two clients kick each other out in
//! turn.
//!
//! An unlinked, logged-out, replaced or banned device is linked again with
//! [`WhatsappDevices::link_qr`] or [`WhatsappDevices::link_pair_code`]: a fresh client on the
//! device's store (emptied first unless the device was never linked) shows QR codes until the
//! phone links it, and then is the device's normal session.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use tokio::sync::{OwnedMutexGuard, watch};
use tokio::task::JoinHandle;
use waedge_contract::types::{
    self, BusinessCategory, BusinessHours, BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group,
    LidMapping, LidVerification, OnWhatsapp, OpeningMode, ProfilePicture, SendOutcome, SentMessage, UserInfo,
    VerifiedLink,
};
use waedge_jid::Jid;
use waedge_store::LeaseEpoch;
use whatsapp_rust::http::UreqHttpClient;
use whatsapp_rust::lid_pn_cache::LidPnEntry;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::request::IqError;
use whatsapp_rust::store::persistence_manager::PersistenceManager;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::{ChannelEventHandler, Event, EventInterest, EventKind, InboundMessage};
use whatsapp_rust::wacore::iq::business::{BusinessHourMode, DayOfWeek};
use whatsapp_rust::{Client, ClientBuilder, ContactError, GroupError, GroupMetadata, TokioRuntime};

use super::link::{LINK_DEADLINE, LinkState, Linkings};
use super::names::LearnedNames;
use super::received::Received;
use super::reconnect::{PacedReconnects, ReconnectPacer};
use super::storage::{self, DeviceStorage, NOT_OWNED, Opened, Shared, Storage};
use ownership::Turns;

mod ownership;
use super::{
    DeviceManager, DeviceSession, Mailbox, StatusObserver, TextMessage, VerificationRequest, is_terminal,
    not_connected, sending, verification,
};

/// The longest a change of the client's device state (identity, prekey counters, push
/// name) waits to be written. The client's saver writes as soon as it is told of a change;
/// a change made while a write is under way is only caught at the saver's next tick.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A device: its tenant and its id.
type Key = (String, String);

/// The lock of a device's operations (see [`WhatsappDevices`]).
type Operation = tokio::sync::Mutex<()>;

/// The operation locks in use, by device.
type Operations = Mutex<HashMap<Key, Weak<Operation>>>;

/// The open sessions, by device.
type Sessions = Mutex<HashMap<Key, Arc<WhatsappDevice>>>;

/// Opens and owns every device session of the process.
///
/// Whatever starts, stops or deletes a device's client (opening the session, linking,
/// cancelling a linking, logging out, removing) holds the device's operation lock: a removal
/// waits for a linking that is starting its client, and then stops that client, so no client
/// and no store outlive their device.
pub struct WhatsappDevices {
    storage: Storage,
    /// The turns of the node's share of the devices, when they are shared.
    turns: Mutex<Option<Turns>>,
    server: Server,
    observer: Option<Arc<dyn StatusObserver>>,
    mailbox: Option<Arc<dyn Mailbox>>,
    sessions: Arc<Sessions>,
    operations: Arc<Operations>,
    /// Where the sessions run: shut down, their tasks with it, when this is dropped.
    _runtime: SessionRuntime,
}

impl WhatsappDevices {
    /// Sessions with their stores under `data_dir/devices`, connecting to WhatsApp.
    pub fn new(data_dir: &Path) -> Self {
        Self::with(data_dir, None)
    }

    /// Sessions with their stores under `data_dir/devices`, connecting to the WhatsApp server
    /// at `ws_url` (e.g. a wa-sim) instead of WhatsApp. Test builds only: the `wa-sim` feature
    /// also turns off the server certificate check.
    #[cfg(feature = "wa-sim")]
    pub fn with_server(data_dir: &Path, ws_url: &str) -> Self {
        Self::with(data_dir, Some(ws_url.to_string()))
    }

    /// Sessions connecting to `url`, or to WhatsApp.
    fn with(data_dir: &Path, #[cfg_attr(not(feature = "wa-sim"), allow(unused))] url: Option<String>) -> Self {
        let runtime = SessionRuntime::start();
        let server = Server {
            #[cfg(feature = "wa-sim")]
            url,
            pacer: Arc::default(),
            runtime: runtime.handle(),
        };
        WhatsappDevices {
            storage: Storage::Files(storage::files_in(data_dir)),
            turns: Mutex::new(None),
            server,
            observer: None,
            mailbox: None,
            sessions: Arc::default(),
            operations: Arc::default(),
            _runtime: runtime,
        }
    }

    /// Keeps the devices' state in the PostgreSQL database `shared` with other nodes instead
    /// of files, and runs those whose leases this node takes: a fair share of the devices
    /// it opens, and those of nodes that died. Called once, before any device is opened.
    pub fn with_shared_storage(mut self, shared: Arc<Shared>) -> Self {
        self.storage = Storage::Shared(shared.clone());
        let turns = Turns::start(shared, self.sessions.clone(), self.operations.clone(), &self.server.runtime);
        *self.turns.lock().expect("turns lock") = Some(turns);
        self
    }

    /// Tells `observer` every status change of every device opened from now on.
    pub fn with_observer(mut self, observer: Arc<dyn StatusObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Commits what WhatsApp delivers to the devices opened from now on to `mailbox` before
    /// WhatsApp is told it arrived. Without a mailbox, received messages are not kept.
    pub fn with_mailbox(mut self, mailbox: Arc<dyn Mailbox>) -> Self {
        self.mailbox = Some(mailbox);
        self
    }

    /// The open session of a device (not one being removed).
    fn session(&self, tenant: &str, device: &str) -> anyhow::Result<Arc<WhatsappDevice>> {
        let sessions = self.sessions.lock().expect("sessions lock");
        let session = sessions.get(&key(tenant, device)).filter(|s| !s.removed.load(Ordering::Acquire));
        session.cloned().with_context(|| format!("device {tenant}/{device} is not open"))
    }

    /// The lock of the device's operations (see [`WhatsappDevices`]).
    fn operation(&self, tenant: &str, device: &str) -> Arc<Operation> {
        operation(&self.operations, &key(tenant, device))
    }

    /// Removes `device` of `tenant` (see [`Removal`]), in a task of its own, which finishes
    /// even if the caller goes away: a removal cut short would leave a client running or a
    /// store behind.
    async fn removal(&self, tenant: &str, device: &str, forced: bool) -> anyhow::Result<()> {
        let removal = Removal {
            key: key(tenant, device),
            forced,
            storage: self.storage.clone(),
            sessions: self.sessions.clone(),
            operations: self.operations.clone(),
            observer: self.observer.clone(),
        };
        tokio::spawn(removal.run()).await.context("removing the device session")?
    }

    /// The open session of a device, taken once no other operation runs on it, with the
    /// operation lock that keeps it so.
    /// Refused (shared storage) when another node runs the device.
    async fn locked(&self, tenant: &str, device: &str) -> anyhow::Result<(OwnedMutexGuard<()>, Arc<WhatsappDevice>)> {
        let operation = self.operation(tenant, device).lock_owned().await;
        let session = self.session(tenant, device)?;
        anyhow::ensure!(session.storage.owned(), "device {tenant}/{device}: {NOT_OWNED}");
        Ok((operation, session))
    }
}

fn key(tenant: &str, device: &str) -> Key {
    (tenant.to_string(), device.to_string())
}

/// The operation lock of device `key`: the one in use, or a new one. A lock lives as long as
/// someone holds or waits for it.
fn operation(operations: &Operations, key: &Key) -> Arc<Operation> {
    let mut operations = operations.lock().expect("operations lock");
    if let Some(operation) = operations.get(key).and_then(Weak::upgrade) {
        return operation;
    }
    operations.retain(|_, operation| operation.strong_count() > 0);
    let operation = Arc::new(Operation::default());
    operations.insert(key.clone(), Arc::downgrade(&operation));
    operation
}

#[async_trait]
impl DeviceManager for WhatsappDevices {
    fn runs_here(&self, tenant: &str, device: &str) -> bool {
        match self.sessions.lock().expect("sessions lock").get(&key(tenant, device)) {
            Some(session) => session.storage.owned(),
            // Not open here: a file of this node's, or a lease it cannot hold without a session.
            None => matches!(self.storage, Storage::Files(_)),
        }
    }

    fn open(&self, tenant: &str, device: &str, remembered: DeviceState) -> Arc<dyn DeviceSession> {
        let storage = self.storage.of(tenant, device);
        let operation = self.operation(tenant, device);
        let session = Arc::new(WhatsappDevice::new(
            tenant,
            device,
            storage,
            self.server.clone(),
            self.observer.clone(),
            self.mailbox.clone(),
            operation.clone(),
        ));
        let replaced = self.sessions.lock().expect("sessions lock").insert(key(tenant, device), session.clone());
        let (starting, sessions, key) = (session.clone(), self.sessions.clone(), key(tenant, device));
        let storage = self.storage.clone();
        self.server.runtime.spawn(async move {
            let _operation = operation.lock().await;
            // Never two clients on one store: a session opened again first stops the old one;
            // and a device removed before its store could be deleted is not inherited.
            if let Some(old) = replaced {
                old.stop().await;
                if old.removed.load(Ordering::Acquire)
                    && let Err(e) = storage.remove(&key.0, &key.1).await
                {
                    tracing::error!(device = old.status().id, "deleting the store of a removed device: {e:#}");
                    starting.set_state(DeviceState::Disconnected);
                    // The removal stays pending: nothing can link or reconnect this id until a
                    // removal (or a restart) deletes the store.
                    let mut sessions = sessions.lock().expect("sessions lock");
                    if sessions.get(&key).is_some_and(|current| Arc::ptr_eq(current, &starting)) {
                        sessions.insert(key, old);
                    }
                    return;
                }
                // Superseded: it reports nothing and starts no client any more (a ban's timer).
                old.removed.store(true, Ordering::Release);
                old.storage.set_lease(None);
            }
            if let Err(e) = storage.register(&key.0, &key.1).await {
                tracing::error!(device = key.1, "registering the device with the other nodes: {e:#}");
            }
            // From now on (once this lock is released) the node's turns may start it: its
            // remembered state is known.
            starting.opened.store(true, Ordering::Release);
            // A banned device tries again: WhatsApp says whether the ban is over.
            if is_terminal(remembered) && remembered != DeviceState::Banned {
                starting.set_state(remembered);
            } else {
                starting.start().await;
            }
        });
        session
    }

    async fn link_qr(&self, tenant: &str, device: &str) -> anyhow::Result<watch::Receiver<LinkState>> {
        let (_operation, session) = self.locked(tenant, device).await?;
        let (view, _) = session.start_linking().await?;
        Ok(view)
    }

    async fn link_pair_code(
        &self,
        tenant: &str,
        device: &str,
        phone_number: &str,
    ) -> anyhow::Result<(String, watch::Receiver<LinkState>)> {
        let (session, view, client) = {
            let (_operation, session) = self.locked(tenant, device).await?;
            let (view, client) = session.start_linking().await?;
            (session, view, client)
        };
        let requested = async {
            client.wait_for_socket(PAIRING_SOCKET_TIMEOUT).await.context("connecting to WhatsApp")?;
            let options = PairCodeOptions { phone_number: phone_number.to_string(), ..Default::default() };
            client.pair_with_code(options).await.context("requesting a pair code")
        };
        match requested.await {
            Ok(code) => {
                let mut link = session.link.lock().expect("link lock");
                anyhow::ensure!(link.is_current(&view), "the linking ended before WhatsApp sent its pair code");
                link.set_pair_code(&code);
                drop(link);
                Ok((code, view))
            }
            Err(e) => {
                // Unless something else (a cancel, a removal) took over the device meanwhile.
                let _operation = session.operation.lock().await;
                if session.runs(&client) {
                    session.abandon_link(DeviceState::Unlinked).await;
                }
                Err(e)
            }
        }
    }

    fn linking(&self, tenant: &str, device: &str) -> Option<watch::Receiver<LinkState>> {
        self.session(tenant, device).ok()?.link.lock().expect("link lock").last()
    }

    fn devices_linking(&self, tenant: &str) -> HashSet<String> {
        // Each session's link lock is taken under the sessions lock: nothing takes them the
        // other way round.
        let sessions = self.sessions.lock().expect("sessions lock");
        sessions
            .iter()
            .filter(|((of, _), session)| of == tenant && !session.removed.load(Ordering::Acquire))
            .filter(|(_, session)| session.link.lock().expect("link lock").going())
            .map(|((_, device), _)| device.clone())
            .collect()
    }

    fn clients_running(&self) -> usize {
        self.sessions.lock().expect("sessions lock").values().filter(|session| session.has_client()).count()
    }

    async fn cancel_link(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        let (_operation, session) = self.locked(tenant, device).await?;
        anyhow::ensure!(
            session.link.lock().expect("link lock").is_linking(),
            "device {tenant}/{device} is not being linked"
        );
        session.finish_link(LinkState::Failed { reason: "linking was cancelled".to_string() });
        session.abandon_link(DeviceState::Unlinked).await;
        Ok(())
    }

    async fn reconnect(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        let (_operation, session) = self.locked(tenant, device).await?;
        let state = session.status().state;
        anyhow::ensure!(
            matches!(state, DeviceState::Replaced | DeviceState::Banned | DeviceState::Disconnected),
            "device {tenant}/{device} is {}: only a replaced, banned or disconnected device can be reconnected",
            state
        );
        session.restart().await;
        Ok(())
    }

    async fn logout(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        let (_operation, session) = self.locked(tenant, device).await?;
        let state = session.status().state;
        // Only a connected client can tell WhatsApp; otherwise the phone would keep listing
        // a device whose keys are gone.
        anyhow::ensure!(
            state == DeviceState::Connected,
            "device {tenant}/{device} is {}: only a connected device can be logged out (delete it to drop it anyway)",
            state
        );
        session.logout().await;
        Ok(())
    }

    async fn remove(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.removal(tenant, device, false).await
    }

    async fn forget(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.removal(tenant, device, true).await
    }

    async fn shutdown(&self) {
        let turns = self.turns.lock().expect("turns lock").take();
        if let Some(turns) = turns {
            turns.stop().await;
        }
        let sessions: Vec<_> = self.sessions.lock().expect("sessions lock").drain().collect();
        let mut stopping = tokio::task::JoinSet::new();
        for (key, session) in sessions {
            let operation = operation(&self.operations, &key);
            stopping.spawn(async move {
                let _operation = operation.lock().await;
                session.storage.set_lease(None);
                session.stop().await;
            });
        }
        while stopping.join_next().await.is_some() {}
        // Every client stopped: the other nodes may take the devices at once.
        if let Storage::Shared(shared) = &self.storage
            && let Err(e) = shared.leases().leave().await
        {
            tracing::warn!("handing the devices over to the other nodes: {e:#}; they take them when the leases expire");
        }
    }
}

/// How long linking by pair code waits for the connection to WhatsApp.
const PAIRING_SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// How often, and how long apart, a removal tries to delete a device store.
const DELETE_ATTEMPTS: u32 = 5;
const DELETE_RETRY: Duration = Duration::from_millis(200);

/// Everything removing one device needs, so that it can run in a task of its own.
struct Removal {
    key: Key,
    /// Whether a shared device this node does not run is removed all the same (its node is
    /// gone), rather than refused.
    forced: bool,
    storage: Storage,
    sessions: Arc<Sessions>,
    operations: Arc<Operations>,
    observer: Option<Arc<dyn StatusObserver>>,
}

impl Removal {
    /// Closes the device's session (logging it out of WhatsApp if it is linked), deletes its
    /// store, and only then forgets the session. Idempotent: a removal that failed to delete
    /// the store keeps the (closed) session, and is finished by the next removal or by the
    /// next session opened for the same id.
    async fn run(self) -> anyhow::Result<()> {
        let operation = operation(&self.operations, &self.key);
        let _operation = operation.lock().await;
        let session = self.sessions.lock().expect("sessions lock").get(&self.key).cloned();
        if let Storage::Shared(_) = &self.storage
            && !session.as_ref().is_some_and(|session| session.storage.owned())
        {
            // Only the node running the device can log it out and stop its client. Forced (that
            // node is gone), its state and lease go all the same, from here: a node that still
            // runs it after all is refused its next write, and stops its client at its next turn.
            anyhow::ensure!(self.forced, "device {}/{}: {NOT_OWNED}", self.key.0, self.key.1);
            tracing::warn!(
                tenant = self.key.0,
                device = self.key.1,
                "removing a device no node could be asked to log out: it is not logged out of WhatsApp (remove it \
                 from the phone's linked devices)"
            );
        }
        if let Some(session) = &session {
            session.close().await;
        }
        let mut attempt = 1;
        while let Err(e) = self.storage.remove(&self.key.0, &self.key.1).await {
            anyhow::ensure!(attempt < DELETE_ATTEMPTS, "deleting the state of device {}: {e:#}", self.key.1);
            attempt += 1;
            tokio::time::sleep(DELETE_RETRY).await;
        }
        // Whatever the closed session noted is written now, before the id can be used again.
        if let Some(observer) = &self.observer
            && let Err(e) = observer.flushed().await
        {
            tracing::warn!("recording the last states of a removed device: {e:#}");
        }
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if let (Some(session), Some(current)) = (&session, sessions.get(&self.key))
            && Arc::ptr_eq(session, current)
        {
            sessions.remove(&self.key);
        }
        Ok(())
    }
}

/// The WhatsApp server clients connect to: WhatsApp itself, or (`wa-sim` feature) another one,
/// the pace of the reconnects of every session to it, and the runtime the sessions run on.
#[derive(Clone)]
struct Server {
    #[cfg(feature = "wa-sim")]
    url: Option<String>,
    pacer: Arc<ReconnectPacer>,
    runtime: tokio::runtime::Handle,
}

/// The tokio runtime of the device sessions: their clients' tasks, timers and store queries
/// (whatsapp-rust's SQLite store runs each on a blocking thread) run on workers and a blocking
/// pool of their own, never on the API's. A thousand devices reconnecting at once kept the
/// API's two workers busy for seconds and their blocking pool's lock contended; the admin API
/// answered in up to 9 s (BENCHMARKS.md, issue #14). Shut down, with every task on it dropped,
/// when the [`WhatsappDevices`] owning it is.
struct SessionRuntime(Option<tokio::runtime::Runtime>);

impl SessionRuntime {
    /// A runtime with a worker per core.
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("waedge-device")
            .enable_all()
            .build()
            .expect("the device sessions' runtime starts (threads and an event loop, as the API's did)");
        SessionRuntime(Some(runtime))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("running until dropped").handle().clone()
    }
}

impl Drop for SessionRuntime {
    fn drop(&mut self) {
        // Not waiting for the tasks: this may be dropped on an async worker.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Server {
    /// A client builder with the transport (and, for another server, a fixed client version
    /// instead of fetching WhatsApp's); reconnects are paced once `was_connected` is set.
    fn client_builder(&self, was_connected: Arc<AtomicBool>) -> ClientBuilder {
        let builder = Client::builder().with_runtime(TokioRuntime).with_http_client(UreqHttpClient::new());
        let paced = |transport| PacedReconnects::new(transport, was_connected, self.pacer.clone());
        #[cfg(feature = "wa-sim")]
        if let Some(url) = &self.url {
            let transport = TokioWebSocketTransportFactory::new().with_url(url.clone());
            return builder.with_transport_factory(paced(transport)).with_version_override((2, 3000, 1));
        }
        builder.with_transport_factory(paced(TokioWebSocketTransportFactory::new()))
    }
}

/// One device's session.
struct WhatsappDevice {
    tenant: String,
    observer: Option<Arc<dyn StatusObserver>>,
    /// Commits the messages WhatsApp delivers (the client's inbound durability hook).
    received: Option<Arc<Received>>,
    /// Records what the device sends and how far it got; sending needs one.
    mailbox: Option<Arc<dyn Mailbox>>,
    /// The sends under way.
    sending: sending::InFlight,
    storage: DeviceStorage,
    server: Server,
    status: RwLock<DeviceStatus>,
    client: RwLock<Option<Arc<Client>>>,
    run: Mutex<Option<JoinHandle<()>>>,
    names: LearnedNames,
    /// The linking in progress, and the last one.
    link: Mutex<Linkings>,
    /// Set when the device is being removed: the session reports nothing any more.
    removed: AtomicBool,
    /// Set once its opening ran (under the operation lock): the turns of a node sharing the
    /// devices start only sessions opened.
    opened: AtomicBool,
    /// The device's operation lock (see [`WhatsappDevices`]), for the session's own
    /// operations: the reconnect at the end of a ban.
    operation: Arc<Operation>,
}

impl WhatsappDevice {
    fn new(
        tenant: &str,
        id: &str,
        storage: DeviceStorage,
        server: Server,
        observer: Option<Arc<dyn StatusObserver>>,
        mailbox: Option<Arc<dyn Mailbox>>,
        operation: Arc<Operation>,
    ) -> Self {
        let received = mailbox
            .clone()
            .map(|mailbox| Arc::new(Received { tenant: tenant.to_string(), device: id.to_string(), mailbox }));
        WhatsappDevice {
            tenant: tenant.to_string(),
            observer,
            received,
            mailbox,
            sending: sending::InFlight::default(),
            storage,
            server,
            status: RwLock::new(DeviceStatus {
                id: id.to_string(),
                state: DeviceState::Connecting,
                jid: None,
                lid: None,
                push_name: None,
            }),
            client: RwLock::new(None),
            run: Mutex::new(None),
            names: LearnedNames::default(),
            link: Mutex::default(),
            removed: AtomicBool::new(false),
            opened: AtomicBool::new(false),
            operation,
        }
    }

    /// Replaces the client with a new one on the same store (the same WhatsApp session).
    async fn restart(self: &Arc<Self>) {
        self.stop().await;
        self.set_state(DeviceState::Connecting);
        self.clone().start().await;
    }

    /// Reconnects a banned device once `ban` is over, unless it is no longer banned by then
    /// (relinked, reconnected, removed).
    fn reconnect_after(self: &Arc<Self>, ban: Duration) {
        let session = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ban.max(MIN_BAN)).await;
            let _operation = session.operation.lock().await;
            if session.status().state == DeviceState::Banned && !session.removed.load(Ordering::Acquire) {
                tracing::info!(device = session.status().id, "the temporary ban is over: reconnecting");
                session.restart().await;
            }
        });
    }

    async fn start(self: Arc<Self>) {
        if self.has_client() || self.removed.load(Ordering::Acquire) {
            // A session never runs two clients, and a removed or superseded one none.
            return;
        }
        if !self.storage.owned() {
            // Another node runs it, or will: this node takes it if it gets the lease.
            self.set_state(DeviceState::Disconnected);
            return;
        }
        if let Err(e) = self.connect_if_linked().await {
            let id = self.status().id;
            tracing::error!(device = id, store = %self.storage, "cannot open the device store: {e:#}");
            self.set_state(DeviceState::Disconnected);
        }
    }

    async fn connect_if_linked(self: &Arc<Self>) -> anyhow::Result<()> {
        let store = self.storage.open().await?;
        let Some(device) = store.backend.load().await?.filter(|d| d.pn.is_some()) else {
            self.set_state(DeviceState::Unlinked);
            return Ok(());
        };
        self.update(|status| {
            status.jid = device.pn.as_ref().map(|j| j.to_non_ad_string());
            status.lid = device.lid.as_ref().map(|j| j.to_non_ad_string());
            status.push_name = Some(device.push_name.clone()).filter(|n| !n.is_empty());
        });
        self.run_client(store).await?;
        Ok(())
    }

    /// Builds a client on `store`, folds its events into the session and runs it, on the
    /// sessions' runtime (see [`SessionRuntime`]) whoever asks.
    async fn run_client(self: &Arc<Self>, store: Opened) -> anyhow::Result<Arc<Client>> {
        let session = self.clone();
        let started = self.server.runtime.spawn(async move { session.start_client(store).await });
        started.await.context("starting the device's client")?
    }

    /// [`run_client`](Self::run_client), on the sessions' runtime.
    async fn start_client(self: &Arc<Self>, store: Opened) -> anyhow::Result<Arc<Client>> {
        let persistence = Arc::new(PersistenceManager::new(store.backend).await?);
        // A new client's first connection (at start, or right after pairing) is not delayed.
        let was_connected = Arc::new(AtomicBool::new(false));
        let mut builder = self
            .server
            .client_builder(was_connected.clone())
            .with_persistence_manager(persistence)
            .with_background_saver_interval(SAVE_INTERVAL);
        if let Some(received) = &self.received {
            builder = builder.with_inbound_durability_hook_arc(received.clone());
        }
        let client = builder.build().await?.into_client();
        let (handler, events) = ChannelEventHandler::new();
        let subscription = client.subscribe(EventInterest::of(&INTERESTING_EVENTS), handler);
        *self.client.write().expect("client lock") = Some(client.clone());
        let session = self.clone();
        tokio::spawn(async move {
            let _subscription = subscription;
            while let Ok(event) = events.recv().await {
                if matches!(*event, Event::Connected(_)) {
                    was_connected.store(true, Ordering::Relaxed);
                }
                session.observe(&event).await;
            }
        });
        let runner = client.clone();
        *self.run.lock().expect("run lock") = Some(tokio::spawn(async move { runner.run().await }));
        if let Some(fenced) = store.fenced {
            self.stop_when_fenced(fenced, &client);
        }
        Ok(client)
    }

    /// Replaces the session's client with a fresh one that links the device: refused unless
    /// the device is unlinked, logged out or replaced. A store that was linked is deleted
    /// first, so the new link starts from fresh keys.
    async fn start_linking(self: &Arc<Self>) -> anyhow::Result<(watch::Receiver<LinkState>, Arc<Client>)> {
        let (view, previous) = {
            // Checked and claimed under one lock: two linkings can never both start.
            let mut link = self.link.lock().expect("link lock");
            let previous = self.status().state;
            anyhow::ensure!(
                !link.is_linking() && (previous == DeviceState::Unlinked || is_terminal(previous)),
                "device {} is {}: only an unlinked, logged-out, replaced or banned device that is not being linked can be linked",
                self.status().id,
                if link.is_linking() { "being linked" } else { previous.name() },
            );
            (link.start(), previous)
        };
        self.update(|status| {
            *status = DeviceStatus {
                state: DeviceState::Connecting,
                jid: None,
                lid: None,
                push_name: None,
                ..status.clone()
            };
        });
        let started = async {
            self.stop().await;
            // Stopping the old client may have reported it disconnected.
            self.set_state(DeviceState::Connecting);
            if previous != DeviceState::Unlinked {
                self.storage.delete().await?;
            }
            let store = self.storage.open().await?;
            self.run_client(store).await
        };
        match started.await {
            Ok(client) => {
                self.cancel_link_after(LINK_DEADLINE, view.clone());
                Ok((view, client))
            }
            Err(e) => {
                self.abandon_link(previous).await;
                Err(e.context("starting a client to link"))
            }
        }
    }

    /// Stops `client` once another node took the device over (a write of its state was
    /// refused): the device is no longer this node's.
    fn stop_when_fenced(self: &Arc<Self>, mut fenced: watch::Receiver<bool>, client: &Arc<Client>) {
        let (session, client) = (Arc::downgrade(self), Arc::downgrade(client));
        tokio::spawn(async move {
            // An error: the state was dropped with its client (which holds it), gone already.
            if fenced.wait_for(|fenced| *fenced).await.is_err() {
                return;
            }
            let (Some(session), Some(client)) = (session.upgrade(), client.upgrade()) else { return };
            let _operation = session.operation.lock().await;
            if session.runs(&client) {
                tracing::warn!(device = session.status().id, "another node took this device over: stopping its client");
                session.give_up().await;
            }
        });
    }

    /// Stops the client of a device this node no longer holds: a linking in progress fails,
    /// and a logged-out, replaced or banned device keeps showing so.
    async fn give_up(&self) {
        self.finish_link(LinkState::Failed { reason: "the device moved to another node".to_string() });
        // No longer held first: the next holder records the device's status, not this node
        // (not even the stopping client's last events).
        self.storage.set_lease(None);
        self.stop().await;
        if !is_terminal(self.status().state) {
            self.set_state(DeviceState::Disconnected);
        }
    }

    /// Whether `client` is the session's client.
    fn runs(&self, client: &Arc<Client>) -> bool {
        self.client.read().expect("client lock").as_ref().is_some_and(|running| Arc::ptr_eq(running, client))
    }

    /// Ends the session of a device being removed: it reports nothing any more, a linking in
    /// progress fails, a linked device is logged out of WhatsApp, and the client stops.
    async fn close(&self) {
        self.removed.store(true, Ordering::Release);
        self.finish_link(LinkState::Failed { reason: "the device was deleted".to_string() });
        let status = self.status();
        if status.jid.is_some() && !is_terminal(status.state) {
            self.logout().await;
        }
        self.stop().await;
    }

    /// Gives up the linking in progress: its client stops and the device is left in `state`.
    async fn abandon_link(&self, state: DeviceState) {
        self.finish_link(LinkState::Failed { reason: "the linking stopped".to_string() });
        self.stop().await;
        self.set_state(state);
    }

    /// Ends the linking in progress, if any, in `state`.
    fn finish_link(&self, state: LinkState) {
        self.link.lock().expect("link lock").finish(state);
    }

    /// Cancels the linking `view` shows if it is still in progress after `deadline`: this
    /// also ends a linking stuck before its first code.
    fn cancel_link_after(self: &Arc<Self>, deadline: Duration, view: watch::Receiver<LinkState>) {
        let session = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            let Some(session) = session.upgrade() else { return };
            let _operation = session.operation.lock().await;
            if session.link.lock().expect("link lock").is_current(&view) {
                session.finish_link(LinkState::Failed { reason: "no phone linked the device in time".to_string() });
                session.abandon_link(DeviceState::Unlinked).await;
            }
        });
    }

    /// The client stopped for good in `state`: a linking in progress failed.
    async fn end(&self, state: DeviceState) {
        if is_terminal(state) {
            self.settle(state).await;
        }
        self.set_state(state);
        self.finish_link(LinkState::Failed { reason: format!("the device is {}", state) });
    }

    /// Records the terminal `state` before anyone can see it: once the device shows it, a
    /// crash cannot make a restart reconnect a device WhatsApp dropped.
    async fn settle(&self, state: DeviceState) {
        self.storage.stopped_as(Some(state.name())).await;
        let Some((observer, under)) = self.observer() else { return };
        let mut settled = self.status();
        settled.state = state;
        if let Err(e) = observer.settled(&self.tenant, &settled, under).await {
            tracing::error!(device = settled.id, "recording that the device is {}: {e:#}", state);
        }
    }

    /// Whether a client runs for the session: its run task has not ended.
    fn has_client(&self) -> bool {
        self.run.lock().expect("run lock").as_ref().is_some_and(|run| !run.is_finished())
    }

    async fn stop(&self) {
        let client = self.client.write().expect("client lock").take();
        if let Some(client) = client {
            client.disconnect().await;
        }
        let run = self.run.lock().expect("run lock").take();
        if let Some(run) = run {
            let _ = run.await;
        }
    }

    /// Logs the client out of WhatsApp (the phone forgets the device) and stops it; the
    /// device stays logged out until linked again.
    async fn logout(&self) {
        let client = self.client.read().expect("client lock").clone();
        if let Some(client) = client {
            client.logout().await;
        }
        self.stop().await;
        self.settle(DeviceState::LoggedOut).await;
        self.set_state(DeviceState::LoggedOut);
    }

    fn set_state(&self, state: DeviceState) {
        self.update(|status| status.state = state);
    }

    /// Changes the status and tells the observer.
    fn update(&self, change: impl FnOnce(&mut DeviceStatus)) {
        let mut status = self.status.write().expect("status lock");
        let before = status.clone();
        change(&mut status);
        // Told under the lock (the observer only queues it), so changes reach it in order.
        if *status != before
            && let Some((observer, under)) = self.observer()
        {
            observer.changed(&self.tenant, &status, under);
        }
    }

    /// Who is told of status changes, and the lease they are reported under: no one once the
    /// device is being removed, nor while another node runs it (its status is that node's to
    /// record).
    fn observer(&self) -> Option<(&Arc<dyn StatusObserver>, LeaseEpoch)> {
        let observer = self.observer.as_ref().filter(|_| !self.removed.load(Ordering::Acquire))?;
        Some((observer, self.storage.held()?))
    }

    /// Commits messages WhatsApp delivered past the inbound durability hook (see
    /// [`received`](super::received)); WhatsApp already has their acknowledgement.
    async fn commit_unhooked(&self, messages: &[InboundMessage]) {
        let client = self.client.read().expect("client lock").clone();
        let (Some(received), Some(client)) = (&self.received, client) else { return };
        if let Err(e) = received.commit(&client, messages).await {
            tracing::error!(
                device = self.status().id,
                "recording {} received message(s) failed: {e:#}",
                messages.len()
            );
        }
    }

    /// Moves the messages the device sent forward to the status `event` reports, if any.
    async fn follow_sent(&self, event: &Event) {
        let changes = sending::status_changes(event);
        let Some(mailbox) = self.mailbox.as_ref().filter(|_| !changes.is_empty()) else { return };
        let device = self.status().id;
        if let Err(e) = mailbox.change_status(&self.tenant, &device, changes).await {
            tracing::error!(device, "recording the status of a sent message failed: {e:#}");
        }
    }

    /// Records the contact names that changed (`Some`, as [`LearnedNames::learn`] reports them)
    /// in the device's mailbox, with their events, so that the next session of the device knows
    /// them too. Names that could not be recorded are forgotten here, to be learned (and
    /// recorded) again when WhatsApp next sends them.
    async fn remember_names(&self, learned: impl IntoIterator<Item = Option<Contact>>) {
        let learned: Vec<Contact> = learned.into_iter().flatten().collect();
        let Some(mailbox) = self.mailbox.as_ref().filter(|_| !learned.is_empty()) else { return };
        let device = self.status().id;
        let jids: Vec<String> = learned.iter().map(|contact| contact.jid.clone()).collect();
        if let Err(e) = mailbox.remember_names(&self.tenant, &device, learned).await {
            tracing::warn!(tenant = self.tenant, device, "contact names were not recorded: {e:#}");
            jids.iter().for_each(|jid| self.names.forget(jid));
        }
    }

    /// The device's mailbox; sending needs one.
    fn mailbox(&self) -> Result<&Arc<dyn Mailbox>, Error> {
        self.mailbox.as_ref().ok_or_else(|| Error::Upstream("this gateway keeps no messages: sending is off".into()))
    }

    /// Folds one client event into the device state and the learned contact names.
    async fn observe(self: &Arc<Self>, event: &Event) {
        match event {
            Event::Connected(_) => {
                self.storage.stopped_as(None).await;
                let client = self.client.read().expect("client lock").clone();
                self.update(|status| {
                    if let Some(client) = client {
                        status.jid = client.pn().map(|j| j.to_non_ad_string()).or(status.jid.take());
                        status.lid = client.lid().map(|j| j.to_non_ad_string()).or(status.lid.take());
                        let push_name = client.push_name();
                        if !push_name.is_empty() {
                            status.push_name = Some(push_name);
                        }
                    }
                    status.state = DeviceState::Connected;
                });
                let status = self.status();
                self.finish_link(LinkState::Linked { jid: status.jid, lid: status.lid });
            }
            Event::Disconnected(_) => self.set_state(DeviceState::Disconnected),
            Event::LoggedOut(_) => self.end(DeviceState::LoggedOut).await,
            Event::StreamReplaced(_) => self.end(DeviceState::Replaced).await,
            Event::TemporaryBan(ban) => {
                let ends_in = ban.expire.to_std().unwrap_or_default();
                tracing::warn!(
                    device = self.status().id,
                    "temporarily banned by WhatsApp for {ends_in:?}: {}",
                    ban.code
                );
                self.end(DeviceState::Banned).await;
                self.reconnect_after(ends_in);
            }
            Event::ConnectFailure(failure) if !failure.reason.should_reconnect() => {
                self.end(DeviceState::LoggedOut).await
            }
            Event::PairingQrCode(qr) => {
                self.link.lock().expect("link lock").qr(&qr.code, qr.timeout);
            }
            Event::PairError(failure) => {
                self.set_state(DeviceState::Unlinked);
                self.finish_link(LinkState::Failed { reason: format!("pairing failed: {}", failure.error) });
            }
            // With a pair code outstanding the client stays connected: the code may still be
            // entered, until the linking's deadline.
            Event::PairingQrCodesExhausted(exhausted) if exhausted.disconnected => {
                self.set_state(DeviceState::Unlinked);
                self.finish_link(LinkState::Failed { reason: "no phone linked the device in time".to_string() });
            }
            Event::ClientOutdated(_) => {
                tracing::error!(device = self.status().id, "WhatsApp refused this client version: upgrade waedge");
                self.end(DeviceState::Disconnected).await;
            }
            Event::Messages(batch) => {
                if !batch.hook_committed {
                    self.commit_unhooked(&batch.messages).await;
                }
                let learned = batch.iter().filter(|message| !message.info.source.is_from_me).map(|message| {
                    let info = &message.info;
                    let push_name = Some(info.push_name.clone()).filter(|name| !name.is_empty());
                    let verified = info.verified_name.as_ref().and_then(|v| v.name.clone());
                    if push_name.is_none() && verified.is_none() {
                        return None;
                    }
                    self.names.learn(&info.source.sender.to_non_ad_string(), |c| {
                        c.push_name = push_name.or(c.push_name.take());
                        c.business_name = verified.or(c.business_name.take());
                    })
                });
                self.remember_names(learned).await;
            }
            Event::ContactUpdate(update) => {
                let full_name = update.action.full_name.clone();
                let learned = self.names.learn(&update.jid.to_non_ad_string(), |c| c.full_name = full_name);
                self.remember_names([learned]).await;
            }
            Event::BusinessStatusUpdate(update) => {
                if let Some(name) = update.verified_name.clone() {
                    let learned = self.names.learn(&update.jid.to_non_ad_string(), |c| c.business_name = Some(name));
                    self.remember_names([learned]).await;
                }
            }
            Event::ServerAck(_) | Event::Receipt(_) => self.follow_sent(event).await,
            Event::GroupUpdate(update) => {
                let client = self.client.read().expect("client lock").clone();
                let (Some(received), Some(client)) = (&self.received, client) else { return };
                if let Err(e) = received.commit_group_update(&client, update).await {
                    tracing::error!(device = self.status().id, "recording a group change failed: {e:#}");
                }
            }
            Event::HistorySync(sync) => {
                let pushnames = sync.get().map(|h| h.pushnames.as_slice()).unwrap_or_default();
                let learned = pushnames.iter().map(|entry| match (&entry.id, &entry.pushname) {
                    (Some(jid), Some(name)) => self.names.learn(jid, |c| c.push_name = Some(name.clone())),
                    _ => None,
                });
                self.remember_names(learned).await;
            }
            _ => {}
        }
    }

    /// The client, if the device is connected.
    fn client(&self) -> Result<Arc<Client>, Error> {
        let state = self.status.read().expect("status lock").state;
        let client = self.client.read().expect("client lock").clone();
        match (state, client) {
            (DeviceState::Connected, Some(client)) => Ok(client),
            (state, _) => Err(not_connected(state)),
        }
    }
}

/// The least a banned device waits before it tries again, whatever the ban said.
const MIN_BAN: Duration = Duration::from_secs(5);

/// The events the session listens to: state changes, linking, whatever carries contact
/// names, and the acks and receipts of sent messages.
const INTERESTING_EVENTS: [EventKind; 17] = [
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::LoggedOut,
    EventKind::StreamReplaced,
    EventKind::TemporaryBan,
    EventKind::ConnectFailure,
    EventKind::ClientOutdated,
    EventKind::Messages,
    EventKind::ContactUpdate,
    EventKind::BusinessStatusUpdate,
    EventKind::HistorySync,
    EventKind::GroupUpdate,
    EventKind::PairingQrCode,
    EventKind::PairError,
    EventKind::PairingQrCodesExhausted,
    EventKind::ServerAck,
    EventKind::Receipt,
];

#[async_trait]
impl DeviceSession for WhatsappDevice {
    fn status(&self) -> DeviceStatus {
        self.status.read().expect("status lock").clone()
    }

    fn with_status(&self, show: &mut dyn FnMut(&DeviceStatus)) {
        show(&self.status.read().expect("status lock"))
    }

    fn runs_here(&self) -> bool {
        self.storage.owned()
    }

    async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error> {
        let client = self.client()?;
        let queried = jids.iter().map(to_wa).collect::<Result<Vec<_>, _>>()?;
        let found = client.contacts().get_user_info(&queried).await.map_err(contact_error)?;
        Ok(jids
            .iter()
            .zip(&queried)
            .filter_map(|(jid, wa)| found.get(&wa.to_non_ad()).map(|info| user_info(jid, info)))
            .collect())
    }

    async fn profile_picture(&self, jid: &Jid, preview: bool) -> Result<Option<ProfilePicture>, Error> {
        let client = self.client()?;
        let picture = client.contacts().get_profile_picture(&to_wa(jid)?, preview).await.map_err(contact_error)?;
        Ok(picture.map(|p| ProfilePicture { id: p.id, url: p.url, direct_path: p.direct_path }))
    }

    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error> {
        let client = self.client()?;
        let profile = client.get_business_profile(&to_wa(jid)?).await.map_err(iq_error)?;
        Ok(profile.map(|p| business_profile(jid, p)))
    }

    async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error> {
        let client = self.client()?;
        let entry = client.get_lid_pn_entry(&to_wa(jid)?).await.map_err(|e| Error::Upstream(format!("{e:#}")))?;
        Ok(entry.as_ref().map(lid_mapping))
    }

    async fn is_on_whatsapp(&self, jids: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
        let client = self.client()?;
        let queried = jids.iter().map(to_wa).collect::<Result<Vec<_>, _>>()?;
        let results = client.contacts().is_on_whatsapp(&queried).await.map_err(contact_error)?;
        Ok(results
            .into_iter()
            .map(|r| OnWhatsapp {
                jid: r.jid.to_non_ad_string(),
                registered: r.is_registered,
                lid: r.lid.map(|j| j.to_non_ad_string()),
                is_business: r.is_business,
                verified_name: r.verified_name.and_then(|v| v.name),
            })
            .collect())
    }

    async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
        let client = self.client()?;
        let groups = client.groups().get_participating().await.map_err(group_error)?;
        let mut groups: Vec<Group> = groups.into_values().map(group).collect();
        groups.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok(groups)
    }

    async fn group_info(&self, jid: &Jid) -> Result<Group, Error> {
        let client = self.client()?;
        let metadata = client.groups().get_metadata(&to_wa(jid)?).await.map_err(group_error)?;
        Ok(group(metadata))
    }

    async fn contact(&self, jid: &Jid) -> Result<Option<Contact>, Error> {
        self.client()?;
        let jid = jid.to_string();
        // What an earlier session learned is read once per contact, then known here.
        if let Some(mailbox) = self.mailbox.as_ref().filter(|_| self.names.first_look(&jid)) {
            match mailbox.contact_names(&self.tenant, &self.status().id, &jid).await {
                Ok(Some(recorded)) => self.names.recall(&recorded),
                Ok(None) => {}
                Err(e) => {
                    self.names.forget_look(&jid);
                    let device = self.status().id;
                    tracing::warn!(
                        tenant = self.tenant,
                        device,
                        "the recorded names of a contact could not be read: {e:#}"
                    );
                }
            }
        }
        Ok(self.names.get(&jid))
    }

    async fn send_text(&self, message: &TextMessage) -> Result<SendOutcome, Error> {
        let client = self.client()?;
        let device = self.status().id;
        sending::send(&client, self.mailbox()?.as_ref(), &self.sending, (&self.tenant, &device), message).await
    }

    async fn sent_message(&self, id: &str) -> Result<Option<SentMessage>, Error> {
        let found = self.mailbox()?.sent_message(&self.tenant, &self.status().id, id).await;
        found.map_err(|e| Error::Upstream(format!("reading the message failed: {e:#}")))
    }

    async fn start_lid_verification(&self, request: &VerificationRequest) -> Result<LidVerification, Error> {
        let client = self.client()?;
        let device = self.status().id;
        verification::start(&client, self.mailbox()?.as_ref(), &self.sending, (&self.tenant, &device), request).await
    }

    async fn lid_verification(&self, id: &str) -> Result<Option<LidVerification>, Error> {
        let found = self.mailbox()?.lid_verification(&self.tenant, &self.status().id, id).await;
        found.map_err(|e| Error::Upstream(format!("reading the verification failed: {e:#}")))
    }

    async fn verified_link(&self, jid: &Jid) -> Result<Option<VerifiedLink>, Error> {
        let found = self.mailbox()?.verified_link(&self.tenant, &jid.to_string()).await;
        found.map_err(|e| Error::Upstream(format!("reading the link failed: {e:#}")))
    }
}

/// The LID and phone JID of an entry of the client's LID map.
pub(crate) fn lid_mapping(entry: &LidPnEntry) -> LidMapping {
    LidMapping { lid: format!("{}@lid", entry.lid), phone_jid: format!("{}@s.whatsapp.net", entry.phone_number) }
}

pub(crate) fn to_wa(jid: &Jid) -> Result<whatsapp_rust::Jid, Error> {
    jid.to_string().parse().map_err(|e| Error::InvalidJid(format!("{jid}: {e}")))
}

/// Renders device `device` of the account `account` the canonical way (device 0 is the
/// account itself).
fn device_jid(account: &whatsapp_rust::Jid, device: u16) -> String {
    match Jid::parse(&account.to_non_ad_string()) {
        Ok(jid) => jid.with_device(device).to_string(),
        Err(_) => account.with_device(device).to_string(),
    }
}

/// A usync answer in the contract's terms: a field whose sub-query WhatsApp refused (privacy)
/// is `None`; a field it answered without a value is `Some("")`.
fn user_info(queried: &Jid, info: &whatsapp_rust::UserInfo) -> UserInfo {
    UserInfo {
        jid: queried.to_string(),
        lid: info.lid.as_ref().map(|j| j.to_non_ad_string()),
        status: answered(info.status_error.is_some(), info.status.clone()),
        picture_id: answered(info.picture_error.is_some(), info.picture_id.clone()),
        devices: devices(info.devices_error.is_some(), &info.jid, &info.devices),
        verified_name: answered(
            info.business_error.is_some(),
            info.verified_name.as_ref().and_then(|v| v.name.clone()),
        ),
        is_business: answered(info.business_error.is_some(), Some(info.is_business)),
    }
}

/// The privacy tri-state of one sub-query's answer: `None` when WhatsApp `refused` it (the
/// user hides it), else the value, empty when WhatsApp answered without one.
fn answered<T: Default>(refused: bool, value: Option<T>) -> Option<T> {
    (!refused).then(|| value.unwrap_or_default())
}

/// The account's devices as device JIDs; `None` when WhatsApp `refused` the list or sent none.
fn devices(refused: bool, account: &whatsapp_rust::Jid, ids: &[u16]) -> Option<Vec<String>> {
    (!refused && !ids.is_empty()).then(|| ids.iter().map(|id| device_jid(account, *id)).collect())
}

fn business_profile(queried: &Jid, profile: whatsapp_rust::wacore::iq::business::BusinessProfile) -> BusinessProfile {
    let hours = profile.business_hours;
    BusinessProfile {
        jid: profile.wid.map_or_else(|| queried.to_string(), |j| j.to_non_ad_string()),
        description: profile.description,
        email: profile.email,
        websites: profile.website,
        categories: profile.categories.into_iter().map(|c| BusinessCategory { id: c.id, name: c.name }).collect(),
        address: profile.address,
        time_zone: hours.timezone,
        hours: hours
            .business_config
            .unwrap_or_default()
            .into_iter()
            .map(|day| BusinessHours {
                day_of_week: match day.day_of_week {
                    DayOfWeek::Sunday => types::DayOfWeek::Sunday,
                    DayOfWeek::Monday => types::DayOfWeek::Monday,
                    DayOfWeek::Tuesday => types::DayOfWeek::Tuesday,
                    DayOfWeek::Wednesday => types::DayOfWeek::Wednesday,
                    DayOfWeek::Thursday => types::DayOfWeek::Thursday,
                    DayOfWeek::Friday => types::DayOfWeek::Friday,
                    DayOfWeek::Saturday => types::DayOfWeek::Saturday,
                    DayOfWeek::Other(other) => types::DayOfWeek::Other(other),
                },
                mode: match day.mode {
                    BusinessHourMode::Open24H => OpeningMode::OpenAllDay,
                    BusinessHourMode::SpecificHours => OpeningMode::SpecificHours,
                    BusinessHourMode::AppointmentOnly => OpeningMode::AppointmentOnly,
                    BusinessHourMode::Other(other) => OpeningMode::Other(other),
                },
                open_time: day.open_time,
                close_time: day.close_time,
            })
            .collect(),
    }
}

fn group(metadata: GroupMetadata) -> Group {
    let participants: Vec<String> = metadata.participants.iter().map(|p| p.jid.to_non_ad_string()).collect();
    Group {
        jid: metadata.id.to_non_ad_string(),
        subject: metadata.subject,
        description: metadata.description.filter(|d| !d.is_empty()),
        participant_count: metadata.size.unwrap_or(participants.len() as u32),
        participants,
        is_announce: metadata.is_announcement,
        is_locked: metadata.is_locked,
        is_ephemeral: metadata.ephemeral.and_then(|e| e.expiration).is_some_and(|seconds| seconds > 0),
        is_join_approval_required: metadata.membership_approval,
    }
}

/// The contract's error for a query WhatsApp failed or refused.
pub(crate) fn iq_error(error: IqError) -> Error {
    match error {
        IqError::Timeout => Error::Timeout,
        IqError::NotConnected
        | IqError::Disconnected(_)
        | IqError::InternalChannelClosed
        | IqError::Socket(_)
        | IqError::ClientState(_) => Error::DeviceNotConnected(DeviceState::Disconnected),
        IqError::ServerError { code: 401 | 403, text, .. } => Error::Forbidden(text),
        IqError::ServerError { code: 404, .. } => Error::NotFound,
        IqError::ServerError { code: 429, backoff, .. } => Error::RateLimited(backoff.unwrap_or(60)),
        other => Error::Upstream(other.to_string()),
    }
}

fn contact_error(error: ContactError) -> Error {
    match error {
        ContactError::Iq(iq) => iq_error(iq),
        ContactError::InvalidJid(reason) => Error::InvalidJid(reason),
        other => Error::Upstream(other.to_string()),
    }
}

fn group_error(error: GroupError) -> Error {
    match error {
        GroupError::Iq(iq) => iq_error(iq),
        other => Error::Upstream(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_whatsapp_withholds_is_none_and_what_it_answers_empty_is_empty() {
        // (whatsapp-rust's answer types are #[non_exhaustive]: the rule is tested on its own.)
        assert_eq!(answered(false, None::<String>), Some(String::new()), "answered, nothing set");
        assert_eq!(answered(false, Some("Available".to_string())), Some("Available".to_string()));
        assert_eq!(answered(true, Some("stale".to_string())), None, "refused: withheld, whatever came with it");
        assert_eq!(answered(false, None::<bool>), Some(false));
        let account: whatsapp_rust::Jid = "6281234567890@s.whatsapp.net".parse().unwrap();
        assert_eq!(
            devices(false, &account, &[0, 1]),
            Some(vec!["6281234567890@s.whatsapp.net".to_string(), "6281234567890:1@s.whatsapp.net".to_string()])
        );
        assert_eq!(devices(true, &account, &[0, 1]), None, "refused");
        assert_eq!(devices(false, &account, &[]), None, "not disclosed");
    }
}

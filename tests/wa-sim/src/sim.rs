//! The running sim: listeners, shared state and the control API.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::chat::Sent;
use crate::error::SimError;
use crate::faults::{self, Faults};
use crate::handshake::Pattern;
use crate::hub::{Hub, Outbound};
use crate::inbox::{Inboxes, ReceivedText};
use crate::noise::NoiseIdentity;
use crate::sim_device::SimDevices;
use crate::world::World;
use crate::{admin, chat, conn, pairing, receipts};

/// State shared by the listeners, connection tasks and control API.
pub struct Shared {
    /// The fixture everything is answered from.
    pub world: World,
    /// The Noise static key and certificate chain.
    pub noise: NoiseIdentity,
    /// Live connections and linked devices.
    pub hub: Hub,
    /// Fault switches.
    pub faults: Faults,
    /// Completed handshakes by pattern.
    pub handshakes: HandshakeCounts,
    /// The Signal state of the devices the sim plays for world accounts.
    pub devices: SimDevices,
    /// What world accounts received from client devices.
    pub inboxes: Inboxes,
}

/// How many handshakes completed with each Noise pattern.
#[derive(Debug, Default)]
pub struct HandshakeCounts {
    xx: AtomicUsize,
    ik: AtomicUsize,
    xx_fallback: AtomicUsize,
}

impl HandshakeCounts {
    /// Counts one completed handshake.
    pub fn record(&self, pattern: Pattern) {
        let counter = match pattern {
            Pattern::Xx => &self.xx,
            Pattern::Ik => &self.ik,
            Pattern::XxFallback => &self.xx_fallback,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Completed handshakes with this pattern so far.
    pub fn count(&self, pattern: Pattern) -> usize {
        match pattern {
            Pattern::Xx => &self.xx,
            Pattern::Ik => &self.ik,
            Pattern::XxFallback => &self.xx_fallback,
        }
        .load(Ordering::Relaxed)
    }
}

/// How to start a sim.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// WebSocket listen address; must be loopback. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Admin HTTP listen address (loopback), if wanted.
    pub admin_listen: Option<SocketAddr>,
    /// The Noise static private key. Pass the same key to a restarted sim so clients
    /// that cached its certificate keep using IK; `None` generates one.
    pub noise_static_key: Option<[u8; 32]>,
    /// The world fixture.
    pub world: World,
}

impl SimConfig {
    /// A config listening on a free loopback port, without admin endpoint.
    pub fn new(world: World) -> Self {
        Self { listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), admin_listen: None, noise_static_key: None, world }
    }
}

impl Default for SimConfig {
    /// A free loopback port, no admin endpoint, an empty world.
    fn default() -> Self {
        Self::new(World::default())
    }
}

/// A running simulated WhatsApp server. Dropping it (or [`WaSim::shutdown`]) stops it.
pub struct WaSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl WaSim {
    /// Binds the listeners and starts serving.
    pub async fn start(cfg: SimConfig) -> Result<WaSim, SimError> {
        let noise = NoiseIdentity::new(cfg.noise_static_key).map_err(|e| SimError::NoiseKey(e.to_string()))?;
        let shared = Arc::new(Shared {
            world: cfg.world,
            noise,
            hub: Hub::default(),
            faults: Faults::default(),
            handshakes: HandshakeCounts::default(),
            devices: SimDevices::default(),
            inboxes: Inboxes::default(),
        });
        let mut sim = WaSim { shared, addr: cfg.listen, admin_addr: cfg.admin_listen, tasks: Vec::new() };
        sim.listen().await?;
        Ok(sim)
    }

    /// Binds the listeners on the sim's addresses (port 0 the first time: then the ports
    /// bound) and serves them.
    async fn listen(&mut self) -> Result<(), SimError> {
        let listener = bind(self.addr).await?;
        self.addr = listener.local_addr().map_err(|cause| SimError::Bind { addr: self.addr, cause })?;
        self.tasks.push(tokio::spawn(accept_loop(self.shared.clone(), listener)));
        if let Some(admin_listen) = self.admin_addr {
            let admin_listener = bind(admin_listen).await?;
            self.admin_addr =
                Some(admin_listener.local_addr().map_err(|cause| SimError::Bind { addr: admin_listen, cause })?);
            self.tasks.push(tokio::spawn(admin::serve(self.shared.clone(), admin_listener)));
        }
        tracing::info!("wa-sim listening on ws://{}{}", self.addr, conn::WS_PATH);
        Ok(())
    }

    /// The start of an outage of WhatsApp's front end: closes every logged-in or pairing
    /// connection and stops listening (the admin endpoint too) until
    /// [`listen_again`](Self::listen_again). Unlike a
    /// [`shutdown`](Self::shutdown) and a new sim, everything the servers know is kept —
    /// linked devices and their pre-keys, messages waiting for offline devices (sends during
    /// the outage included), the counters — as WhatsApp keeps it across its own outages, so
    /// devices come back as they would after one, without uploading pre-keys again.
    pub async fn stop_listening(&mut self) {
        self.stop();
        // The listeners close when their tasks have ended.
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// The end of an outage: listens again on the addresses of before.
    pub async fn listen_again(&mut self) -> Result<(), SimError> {
        self.listen().await
    }

    /// The URL clients connect to: `ws://127.0.0.1:PORT/ws/chat`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, conn::WS_PATH)
    }

    /// The admin endpoint's base URL, if one was configured.
    pub fn admin_url(&self) -> Option<String> {
        self.admin_addr.map(|a| format!("http://{a}"))
    }

    /// The Noise static public key (what clients cache for IK).
    pub fn noise_public_key(&self) -> [u8; 32] {
        self.shared.noise.public()
    }

    /// How many client handshakes completed with `pattern` (XX, IK, XX-fallback).
    pub fn handshakes(&self, pattern: Pattern) -> usize {
        self.shared.handshakes.count(pattern)
    }

    /// How many client connections are open right now, logged in or pairing.
    pub fn connections(&self) -> usize {
        self.shared.hub.connection_count()
    }

    /// How many connections are logged in as linked devices of account `phone` right now.
    pub fn connections_of(&self, phone: &str) -> usize {
        self.shared.hub.connected_devices(phone).len()
    }

    /// The most connections one linked device of account `phone` ever had logged in at once:
    /// more than one means two clients ran one session side by side.
    pub fn peak_connections_of(&self, phone: &str) -> usize {
        self.shared.hub.peak_connections(phone)
    }

    /// The phone of account `phone` scans a QR code a client displays, linking it.
    pub async fn scan_qr(&self, qr: &str, phone: &str) -> Result<(), SimError> {
        pairing::scan_qr(&self.shared, qr, phone).await
    }

    /// The phone of account `phone` enters the pair code a client displays, linking it.
    pub async fn enter_pair_code(&self, phone: &str, code: &str) -> Result<(), SimError> {
        pairing::enter_pair_code(&self.shared, phone, code).await
    }

    /// Account `from` sends `text` to every linked device of account `to` (the client sees
    /// `Event::Messages` with `from`'s push name): online devices get it now, offline ones
    /// at their next login, and every device gets it again at each login until it
    /// acknowledges it. Returns the message id and how many devices it went to.
    pub async fn send_text(&self, from: &str, to: &str, text: &str) -> Result<Sent, SimError> {
        chat::send_text(&self.shared, from, to, text).await
    }

    /// Account `from` sends `text` to group `group` (its id): every linked device of the
    /// group's other members gets it as [`WaSim::send_text`] delivers, under `from`'s sender
    /// key for the group.
    pub async fn send_group_text(&self, from: &str, group: &str, text: &str) -> Result<Sent, SimError> {
        chat::send_group_text(&self.shared, from, group, text).await
    }

    /// Account `by` renames group `group` (its id) to `subject`: the linked devices of its
    /// members get WhatsApp's `w:gp2` notification. Returns the notification's id.
    pub fn rename_group(&self, by: &str, group: &str, subject: &str) -> Result<String, SimError> {
        chat::rename_group(&self.shared, by, group, subject)
    }

    /// How many messages wait for an acknowledgement from a device of account `phone`
    /// (one per device and message).
    pub fn unacknowledged(&self, phone: &str) -> usize {
        self.shared.hub.mailboxes().unacknowledged(phone)
    }

    /// The texts account `phone` received from client devices, oldest first (empty for a
    /// phone that is not an account of the world). A message id the account already got
    /// is not recorded again.
    pub fn received(&self, phone: &str) -> Vec<ReceivedText> {
        self.shared.world.account_by_phone(phone).map(|a| self.shared.inboxes.received(&a.phone)).unwrap_or_default()
    }

    /// Whether account `phone`'s phone confirms every text it receives with a delivery
    /// receipt to the sender's devices (on by default; off leaves texts server-acked but
    /// not delivered).
    pub fn set_auto_delivery(&self, phone: &str, on: bool) {
        if let Some(account) = self.shared.world.account_by_phone(phone) {
            self.shared.inboxes.set_auto_delivery(&account.phone, on);
        }
    }

    /// Account `reader_phone` reads the text `id` it received: its phone sends a read
    /// receipt to the sender's devices (now, or at their next login).
    pub fn read(&self, reader_phone: &str, id: &str) -> Result<(), SimError> {
        receipts::read(&self.shared, reader_phone, id)
    }

    /// The server refuses the next `count` messages client devices send to account
    /// `to_phone`: each gets `<ack class="message" error=code/>` (e.g. 463 for a missing
    /// privacy token, 479 for a malformed stanza) and the account receives nothing. A
    /// later call replaces an earlier one; a count of 0 ends it.
    pub fn nack_next(&self, to_phone: &str, code: u16, count: usize) {
        if let Some(account) = self.shared.world.account_by_phone(to_phone) {
            self.shared.faults.nack_next(&account.phone, code, count);
            tracing::info!("fault: nacking the next {count} message(s) to {} with {code}", account.phone);
        }
    }

    /// Closes every client's TCP connection (clients see a disconnect and reconnect).
    pub async fn drop_connections(&self) {
        let n = faults::drop_connections(&self.shared.hub, None);
        tracing::info!("fault: dropped {n} connections");
    }

    /// Closes the TCP connections of one account's devices.
    pub async fn drop_connections_of(&self, phone: &str) {
        let n = faults::drop_connections(&self.shared.hub, Some(phone));
        tracing::info!("fault: dropped {n} connections of {phone}");
    }

    /// Refuses new connections for a while (they are closed right after accept).
    pub async fn refuse_connections(&self, for_: Duration) {
        self.shared.faults.refuse_for(for_);
        tracing::info!("fault: refusing connections for {for_:?}");
    }

    /// Logs out every device of the account (`<stream:error code="401"/>`); they may not
    /// log in again.
    pub async fn log_out(&self, phone: &str) {
        let n = faults::log_out(&self.shared.hub, &self.shared.world, phone);
        tracing::info!("fault: logged out {phone} ({n} connected devices)");
    }

    /// Tells every connected device of the account it was replaced (`<conflict type="replaced"/>`).
    pub async fn replace(&self, phone: &str) {
        let n = faults::replace(&self.shared.hub, phone);
        tracing::info!("fault: replaced {n} connections of {phone}");
    }

    /// Bans the account temporarily: its connected devices are dropped, and every login of
    /// its devices gets `<failure reason="402" expire=…/>` until `for_` has passed.
    pub async fn ban(&self, phone: &str, for_: Duration) {
        self.shared.faults.ban_for(phone, for_);
        let n = faults::drop_connections(&self.shared.hub, Some(phone));
        tracing::info!("fault: banned {phone} for {for_:?} ({n} connected devices)");
    }

    /// Delays every IQ answer by `d` (zero turns it off).
    pub fn set_latency(&self, d: Duration) {
        self.shared.faults.set_latency(d);
    }

    /// Stops listening and closes every connection.
    pub async fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.hub.broadcast(|_| true, || Outbound::Close);
    }
}

impl Drop for WaSim {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    if !addr.ip().is_loopback() {
        return Err(SimError::NotLoopback(addr));
    }
    TcpListener::bind(addr).await.map_err(|cause| SimError::Bind { addr, cause })
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.faults.refusing() {
            tracing::debug!("fault: refusing connection from {peer}");
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        tokio::spawn(conn::serve(shared.clone(), tcp));
    }
}

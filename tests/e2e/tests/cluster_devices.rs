//! Device sessions of several nodes on one PostgreSQL (a server of the test's own) against
//! wa-sim: the devices are spread over the nodes, each run by exactly one of them; a node
//! that leaves hands its devices over, a node that joins gets its share by hand-offs, a node
//! that dies has its devices taken over once its leases expire — all without pairing again,
//! and wa-sim never sees two clients of one device.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wa_sim::{Pattern, SimConfig, WaSim};
use waedge_contract::types::DeviceState;
use waedge_device::link::LinkState;
use waedge_device::storage::Shared;
use waedge_device::whatsapp::WhatsappDevices;
use waedge_device::{DeviceManager, DeviceSession};
use waedge_device_pg::{Database, Leases};
use waedge_e2e::live::next;
use waedge_e2e::server::fixtures;
use waedge_test_postgres::Postgres;

/// The devices, each linked to an account of the world fixture.
const DEVICES: [(&str, &str); 4] =
    [("d0", "6285550000001"), ("d1", "6281234567890"), ("d2", "5511999999999"), ("d3", "447700900123")];
/// Leases a dead node's devices are taken over within the 10 s the cluster promises.
const LEASE: Duration = Duration::from_secs(6);

/// A node: its device sessions on the shared database, with a data directory of its own.
struct Node {
    devices: WhatsappDevices,
    sessions: Vec<Arc<dyn DeviceSession>>,
    _dir: tempfile::TempDir,
}

async fn node(sim: &WaSim, url: &str, name: &str) -> Node {
    let db = Arc::new(Database::connect(url, 2).await.expect("the node connects"));
    let shared = Arc::new(Shared::new(db.clone(), Leases::new(db, name, LEASE)));
    let dir = tempfile::tempdir().unwrap();
    let devices = WhatsappDevices::with_server(dir.path(), &sim.ws_url()).with_shared_storage(shared);
    let sessions = DEVICES.iter().map(|(device, _)| devices.open("acme", device, DeviceState::Unlinked)).collect();
    Node { devices, sessions, _dir: dir }
}

/// Waits up to `seconds` for `done`.
async fn until(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "not in {seconds} s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many devices each node runs connected.
fn connected(nodes: &[&Node]) -> Vec<usize> {
    nodes
        .iter()
        .map(|node| node.sessions.iter().filter(|session| session.status().state == DeviceState::Connected).count())
        .collect()
}

/// wa-sim's logged-in clients of each device's account, sampled until [checked](Self::never_two).
struct Clients {
    most: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Clients {
    /// Starts sampling, keeping the most clients seen of any one account.
    fn watch(sim: Arc<WaSim>) -> Clients {
        let (most, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (seen, stopping) = (most.clone(), stop.clone());
        tokio::spawn(async move {
            while !stopping.load(Ordering::Relaxed) {
                for (_, phone) in DEVICES {
                    seen.fetch_max(sim.connections_of(phone), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Clients { most, stop }
    }

    /// Stops sampling: one client of an account at most, ever.
    fn never_two(self) {
        self.stop.store(true, Ordering::Relaxed);
        assert_eq!(self.most.load(Ordering::Relaxed), 1, "wa-sim saw two clients of one device at once");
    }
}

/// A plain client of the shared database, to look at the leases.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connects");
    tokio::spawn(connection);
    client
}

/// A PostgreSQL server with a database (its URL), and wa-sim on the world fixture.
async fn cluster() -> (Postgres, String, Arc<WaSim>) {
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap().expect("PostgreSQL starts");
    let url = server.create_database().unwrap();
    let world = wa_sim::World::load(fixtures().join("wa-world.toml")).expect("the world fixture");
    let sim = Arc::new(WaSim::start(SimConfig::new(world)).await.expect("wa-sim starts"));
    (server, url, sim)
}

/// Waits until nodes `a` and `b` run two devices each, and links every device on its node.
async fn link_all(sim: &WaSim, a: &Node, b: &Node) {
    let owner = |n: usize| [a, b].into_iter().position(|node| node.sessions[n].status().state == DeviceState::Unlinked);
    let unlinked = |node: &Node| node.sessions.iter().filter(|s| s.status().state == DeviceState::Unlinked).count();
    // (The first node alone took all four at first, then handed two over.)
    until(10, "two devices each, unlinked", || [unlinked(a), unlinked(b)] == [2, 2]).await;
    for (n, (device, phone)) in DEVICES.iter().enumerate() {
        let at = owner(n).unwrap();
        let node = [a, b][at];
        let mut view = node.devices.link_qr("acme", device).await.expect("its owner links it");
        let Some(LinkState::Qr { code, .. }) = next(&mut view).await else { panic!("a QR code first") };
        sim.scan_qr(&code, phone).await.expect("the phone scans it");
        assert!(matches!(next(&mut view).await, Some(LinkState::Linked { .. })), "{device} is linked");
        let other = [a, b][1 - at];
        let refused = other.devices.link_qr("acme", device).await.expect_err("only its owner links it");
        assert!(refused.to_string().contains("another node runs this device"), "{refused:#}");
    }
    until(10, "two connected each", || connected(&[a, b]) == [2, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn nodes_share_the_devices_and_take_them_over_without_pairing() {
    let (_server, url, sim) = cluster().await;
    let a = node(&sim, &url, "a").await;
    let b = node(&sim, &url, "b").await;
    // Every device is run by exactly one node, two each, and linked there.
    link_all(&sim, &a, &b).await;
    let clients = Clients::watch(sim.clone());

    // A leaves: its leases are released at once (not left to expire), and B takes its
    // devices at its next turn and logs them in, no pairing.
    a.devices.shutdown().await;
    let held_by_a: i64 =
        raw(&url).await.query_one("SELECT count(*) FROM wa_devices WHERE owner LIKE 'a#%'", &[]).await.unwrap().get(0);
    assert_eq!(held_by_a, 0, "a node that leaves releases its leases");
    until(10, "B runs all four devices", || connected(&[&b]) == [4]).await;

    // C joins: B hands two over, C takes them.
    let c = node(&sim, &url, "c").await;
    until(15, "B and C run two each", || connected(&[&b, &c]) == [2, 2]).await;
    for session in &c.sessions {
        if session.status().state == DeviceState::Connected {
            assert!(session.status().jid.is_some(), "taken over with its account");
        }
    }

    // C dies (no hand-over, its clients cut off): B takes its devices once the leases expire,
    // within the 10 s the cluster promises.
    drop(c);
    until(10, "B runs all four devices again", || connected(&[&b]) == [4]).await;
    clients.never_two();
    b.devices.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_node_cut_off_from_the_database_gives_its_devices_up_before_another_takes_them() {
    let (_server, url, sim) = cluster().await;
    // Node A connects as a role of its own, so that it alone can be cut off.
    let admin = raw(&url).await;
    admin.batch_execute("CREATE ROLE node_a LOGIN SUPERUSER").await.unwrap();
    let b = node(&sim, &url, "b").await;
    let a = node(&sim, &url.replacen("waedge@", "node_a@", 1), "a").await;
    link_all(&sim, &b, &a).await;
    let clients = Clients::watch(sim.clone());

    // A loses the database (its role may no longer log in, its connections are cut): its
    // turns fail, and it must stop its clients before its leases expire and B takes them.
    admin.batch_execute("ALTER ROLE node_a NOLOGIN").await.unwrap();
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'node_a'", &[])
        .await
        .unwrap();
    until(15, "B runs all four devices", || connected(&[&b]) == [4]).await;
    assert_eq!(connected(&[&a]), [0], "A gave its devices up");
    clients.never_two();
    b.devices.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_device_logged_out_on_one_node_stays_logged_out_on_the_next() {
    let (_server, url, sim) = cluster().await;
    let a = node(&sim, &url, "a").await;
    let b = node(&sim, &url, "b").await;
    link_all(&sim, &a, &b).await;

    // The phone logs one of A's devices out; then A leaves.
    let on_a = (0..DEVICES.len()).find(|&n| a.sessions[n].status().state == DeviceState::Connected).unwrap();
    let (device, phone) = DEVICES[on_a];
    sim.log_out(phone).await;
    until(10, "the device is logged out", || a.sessions[on_a].status().state == DeviceState::LoggedOut).await;
    let handshakes =
        || [Pattern::Xx, Pattern::Ik, Pattern::XxFallback].map(|p| sim.handshakes(p)).iter().sum::<usize>();
    let before = handshakes();
    a.devices.shutdown().await;

    // B takes all four, and starts the other one of A's only: the logged-out one waits to be
    // linked again — no connection is even tried.
    until(10, "B runs the three others", || connected(&[&b]) == [3]).await;
    until(10, "B holds the logged-out one", || b.sessions[on_a].status().state == DeviceState::LoggedOut).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(handshakes() - before, 1, "only the other device of A's connected; {device} was not tried");
    assert_eq!(b.sessions[on_a].status().state, DeviceState::LoggedOut);
    b.devices.shutdown().await;
}

//! The attacks of the security review against the real `waedge` binary, as users deploy it:
//! strangers (from 127.0.0.2) with slow headers, idle connections, connection floods, slow
//! uploads, anonymous floods and oversized headers; a hostile tenant filling its share of the
//! instance pool and spinning the CPU. During each, a user of the victim tenant (from
//! 127.0.0.1) keeps getting exactly the answer it got before the attacks, the victim's linked
//! device stays connected (it never reconnects), and the attacker gets the answer the README
//! promises.
//!
//! Needs a test build (`wa-sim` feature: devices may connect to a server that is not
//! WhatsApp); `cargo test --workspace` has it.

#![cfg(feature = "wa-sim")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::attacks::{self, Aim, Attack, CLOSED, STOPPED, Tally};
use support::{SELF_PHONE, Waedge, admin_token, handshakes, world, write_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wa_sim::{SimConfig, WaSim};
use waedge::runtime::capacity;

/// The victim tenant's host name.
const VICTIM_HOST: &str = "acme.test";
/// What the victim's user asks for.
const VICTIM_PATH: &str = "/devices/main/groups";

/// A gateway with a victim tenant `acme` (device `main` linked to wa-sim, a user who may
/// use it) and a hostile tenant `globex` running the probe component at `/probe`.
struct Arena {
    sim: WaSim,
    waedge: Arc<Waedge>,
    admin_token: String,
    /// The victim's user's token and the answer it gets when nobody attacks.
    victim: (String, Value),
    /// A token of the hostile tenant.
    hostile: String,
    _dir: tempfile::TempDir,
}

impl Arena {
    /// Starts wa-sim and a gateway with `connections` as its `[connections]` table.
    async fn start(connections: &str) -> Arena {
        let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let settings = format!("whatsapp_server = \"{}\"\n[connections]\n{connections}", sim.ws_url());
        let config = write_config(dir.path(), &settings);
        let admin_token = admin_token(&config);
        let waedge = Arc::new(Waedge::start(&config));
        let acme = json!({"id": "acme", "hosts": [VICTIM_HOST]});
        waedge.admin_expect(Method::POST, "/v1/tenants", &admin_token, acme, 201).await;
        waedge.link_new_device(&admin_token, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
        let route = json!({"prefix": "/devices", "component": "builtin:devices-api"});
        waedge.admin_expect(Method::PUT, "/v1/tenants/acme/routes", &admin_token, route, 200).await;
        let token = waedge.new_user_token(&admin_token, "acme", &["main"]).await;
        let answer = waedge.api(VICTIM_PATH, &token).await;
        assert_eq!((answer.status, &answer.json["data"]["count"]), (200, &json!(2)), "{}", answer.text);

        waedge.admin_expect(Method::POST, "/v1/tenants", &admin_token, json!({"id": "globex"}), 201).await;
        waedge.deploy(&admin_token, "globex", "probe", waedge_e2e::guests::get("probe").to_vec()).await;
        let route = json!({"prefix": "/probe", "component": "component:probe"});
        waedge.admin_expect(Method::PUT, "/v1/tenants/globex/routes", &admin_token, route, 200).await;
        let hostile = waedge.new_user_token(&admin_token, "globex", &[]).await;
        let hello = waedge.api("/probe/hello", &hostile).await;
        assert_eq!((hello.status, &hello.json), (200, &json!({"probe": "hello"})), "{}", hello.text);
        Arena { sim, waedge, admin_token, victim: (token, answer.json), hostile, _dir: dir }
    }

    /// Changes `tenant`'s limits.
    async fn limit(&self, tenant: &str, limits: Value) {
        let path = format!("/v1/tenants/{tenant}");
        self.waedge.admin_expect(Method::PATCH, &path, &self.admin_token, json!({"limits": limits}), 200).await;
    }

    /// Runs `attack` with `workers` workers for `time` (see [`Arena::during`]); returns what
    /// the attacker got.
    async fn attack(&self, attack: Attack, workers: usize, time: Duration) -> Tally {
        let aim = Aim::new(&self.waedge.api, VICTIM_HOST);
        let tally = self
            .during(&attack.to_string(), async {
                let running = attacks::start(&attack, &aim, workers);
                tokio::time::sleep(time).await;
                running.stop().await
            })
            .await;
        println!("{attack}: the attacker got {tally}");
        tally
    }

    /// Runs `attack` while the victim's user sends request after request; asserts that each
    /// of them got the victim's answer and that the victim's device stayed connected (it
    /// did not reconnect). Returns what `attack` returned.
    async fn during<T>(&self, what: &str, attack: impl Future<Output = T>) -> T {
        let connected_before = handshakes(&self.sim);
        let (stop, stopped) = watch::channel(false);
        let user = self.victim_keeps_being_served(what, stopped);
        let result = attack.await;
        let _ = stop.send(true);
        let served = user.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        assert!(served > 0, "the victim's user got no answer during {what}");
        let state = self.waedge.device_state(&self.admin_token, "acme", "main").await;
        assert_eq!(state, "connected", "the victim's device during {what}");
        assert_eq!(handshakes(&self.sim), connected_before, "the victim's device reconnected during {what}");
        println!("{what}: the victim's user was served {served} times");
        result
    }

    /// The victim's user's requests, one after another until `stopped`: each must get the
    /// victim's answer. Returns how many were served.
    fn victim_keeps_being_served(&self, what: &str, mut stopped: watch::Receiver<bool>) -> JoinHandle<usize> {
        let (waedge, (token, expected), what) = (self.waedge.clone(), self.victim.clone(), what.to_string());
        tokio::spawn(async move {
            let mut served = 0;
            while !*stopped.borrow() {
                let answer = tokio::select! {
                    answer = waedge.api(VICTIM_PATH, &token) => answer,
                    _ = stopped.wait_for(|stop| *stop) => break,
                };
                assert_eq!(
                    (answer.status, &answer.json),
                    (200, &expected),
                    "the victim's user during {what}: {}",
                    answer.text
                );
                served += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            served
        })
    }
}

/// Asserts that `tally` holds only `expected` outcomes (and steps cut short by the end of the
/// attack), at least `least` of the first one.
fn assert_only(tally: &Tally, expected: &[&str], least: usize) {
    let mut allowed = expected.to_vec();
    allowed.push(STOPPED);
    assert!(tally.others(&allowed).total() == 0, "unexpected outcomes: {}", tally.others(&allowed));
    assert!(tally.count(expected[0]) >= least, "fewer than {least} × {}: {tally}", expected[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_stop_a_tenant() {
    // Short timeouts, so that the test waits for them only briefly; a small per-client cap.
    let arena = Arena::start("header_read_timeout_ms = 1000\nmax_connections_per_client = 32").await;
    let second = Duration::from_secs(1);

    // Headers that never end, and connections that idle after one answer, are closed.
    let slow = arena.attack(Attack::SlowHeaders, 16, 3 * second).await;
    assert_only(&slow, &[CLOSED], 16);
    // Eight: the requests a client may have in flight without a token.
    let idle = arena.attack(Attack::IdleConnections, 8, 3 * second).await;
    assert_only(&idle, &["401 UNAUTHORIZED, then closed"], 8);

    // One client's connections beyond its cap are closed at once; those admitted are served.
    let flood = arena.attack(Attack::ConnectionFlood, 64, 2 * second).await;
    assert_only(&flood, &[CLOSED, "401 UNAUTHORIZED", "429 TOO_MANY_REQUESTS"], 1);
    assert!(flood.count("401 UNAUTHORIZED") > 0, "no flooding connection was served: {flood}");
    // Exactly: with the cap's 32 connections open (silent, for the header timeout's second),
    // a 33rd is closed without an answer to its request, while another client is served.
    tokio::time::sleep(second / 5).await;
    let aim = Aim::new(&arena.waedge.api, VICTIM_HOST);
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(aim.connect().await.expect("the gateway accepts"));
    }
    let mut refused = aim.connect().await.expect("the kernel accepts");
    let _ = refused.write_all(b"GET /devices/main/groups HTTP/1.1\r\nHost: acme.test\r\n\r\n").await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(10 * second, refused.read_to_end(&mut received)).await;
    assert!(
        read.is_ok() && received.is_empty(),
        "the 33rd connection was served: {}",
        String::from_utf8_lossy(&received)
    );
    let answer = arena.waedge.api(VICTIM_PATH, &arena.victim.0).await;
    assert_eq!((answer.status, &answer.json), (200, &arena.victim.1), "another client meanwhile: {}", answer.text);
    drop(held);

    // Uploads without a token that never end get 408 at the request's deadline (one second
    // here), or 429 when the strangers' reading places are taken.
    arena.limit("acme", json!({"request_timeout_ms": 1000})).await;
    let uploads = arena.attack(Attack::SlowUploads, 16, 3 * second).await;
    assert_only(&uploads, &["408 REQUEST_TIMEOUT", "429 TOO_MANY_REQUESTS"], 8);

    // Strangers over their rate are refused; the users' rate (100 per second, more than the
    // victim's user sends) is theirs alone.
    let rates = json!({"requests_per_second": 100, "burst": 5, "anonymous_requests_per_second": 5});
    arena.limit("acme", rates).await;
    let anonymous = arena.attack(Attack::AnonymousFlood, 4, 2 * second).await;
    assert_only(&anonymous, &["429 TOO_MANY_REQUESTS", "401 UNAUTHORIZED"], 10);
    assert!(anonymous.count("401 UNAUTHORIZED") > 0, "no request without a token was served at all: {anonymous}");

    // Headers over 64 KiB: 431 (the connection is then closed, which may reset the answer).
    let oversized = arena.attack(Attack::OversizedHeaders, 4, second).await;
    assert_only(&oversized, &["431", CLOSED], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_flood_is_refused_past_the_stream_cap() {
    let arena = Arena::start("max_concurrent_streams = 10").await;
    let aim = Aim::new(&arena.waedge.api, VICTIM_HOST);
    // One connection opens 100 streams at once, each a hostile tenant's request that holds
    // its instance for 2 s: the server takes 10 at a time and refuses the rest.
    let (answered, refused) = arena
        .during("an HTTP/2 stream flood", async {
            let mut stream = aim.connect().await.expect("the gateway accepts");
            let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            frames.extend(frame(0x4, 0, 0, &[])); // SETTINGS
            for id in (1..200).step_by(2) {
                // HEADERS with END_STREAM and END_HEADERS.
                frames.extend(frame(0x1, 0x5, id, &hpack_get("/probe/sleep?ms=2000", &arena.hostile)));
            }
            stream.write_all(&frames).await.expect("the frames are sent");
            h2_outcomes(&mut stream, 100).await
        })
        .await;
    assert_eq!((answered, refused), (10, 90), "answered and refused streams");
}

/// Reads HTTP/2 frames until `streams` streams have an answer (HEADERS) or were refused
/// (RST_STREAM with REFUSED_STREAM): how many of each. Fails on any other reset or a GOAWAY.
async fn h2_outcomes(stream: &mut tokio::net::TcpStream, streams: usize) -> (usize, usize) {
    let (mut answered, mut refused) = (0, 0);
    let mut received = Vec::new();
    while answered + refused < streams {
        let mut buffer = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await;
        let n = n.expect("the server answers every stream").expect("the connection stays up");
        assert!(n > 0, "the server closed the connection after {answered} answers and {refused} refusals");
        received.extend_from_slice(&buffer[..n]);
        while received.len() >= 9 {
            let length = usize::from(received[0]) << 16 | usize::from(received[1]) << 8 | usize::from(received[2]);
            if received.len() < 9 + length {
                break;
            }
            let (kind, payload) = (received[3], &received[9..9 + length]);
            match kind {
                0x1 => answered += 1,
                0x3 => {
                    assert_eq!(payload, [0, 0, 0, 7], "a stream was reset, not refused (REFUSED_STREAM is 7)");
                    refused += 1;
                }
                0x7 => panic!("GOAWAY after {answered} answers and {refused} refusals: {payload:?}"),
                _ => {}
            }
            received.drain(..9 + length);
        }
    }
    (answered, refused)
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut frame = length.to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HPACK header block for `GET path` over `http` with a bearer `token`, without Huffman
/// coding or the dynamic table: the static table's `:method GET` and `:scheme http`, and
/// literals without indexing, named from the static table, for the rest.
fn hpack_get(path: &str, token: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    // The name's index in a 4-bit prefix (:authority 1, :path 4, authorization 23 = 15 + 8);
    // the value's length in a 7-bit prefix, so below 127.
    for (index, value) in
        [(&[0x01][..], "localhost".to_string()), (&[0x04], path.into()), (&[0x0f, 0x08], format!("Bearer {token}"))]
    {
        assert!(value.len() < 127, "a header value too long for this encoder");
        block.extend_from_slice(index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_tenant_cannot_take_the_pool_or_the_processor() {
    let arena = Arena::start("").await;
    // 64 requests spinning until their deadline, at once and again: each is stopped with 504.
    arena.limit("globex", json!({"request_timeout_ms": 2000})).await;
    let spinning = arena.attack(Attack::CpuLoop { token: arena.hostile.clone() }, 64, Duration::from_secs(5)).await;
    assert_only(&spinning, &["504 COMPONENT_TIMEOUT"], 64);

    // With 30 tenants, each tenant's share of the instance pool is 25 instances. The hostile
    // tenant's requests that hold an instance for 3 s, 15 more than its share at once: at
    // most its share is served, the rest refused with 503 CAPACITY, however many its own
    // limits allow.
    const TENANTS: usize = 30;
    let share = capacity::split(capacity::SLOTS).1 / TENANTS;
    for idle in 2..TENANTS {
        let tenant = json!({"id": format!("idle{idle}")});
        arena.waedge.admin_expect(Method::POST, "/v1/tenants", &arena.admin_token, tenant, 201).await;
    }
    arena.limit("globex", json!({"request_timeout_ms": 10000})).await;
    let slow = Attack::SlowRequests { token: arena.hostile.clone(), ms: 3000 };
    // Stopped before a request started after the first ones ended could end too.
    let filled = arena.attack(slow, share + 15, Duration::from_secs(5)).await;
    assert_only(&filled, &["503 CAPACITY", "200"], 15);
    assert!((1..=share).contains(&filled.count("200")), "not 1 to {share} slow requests served: {filled}");
}

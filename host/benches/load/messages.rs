//! Scenarios 6 and 7, messages, on a gateway of their own with two linked devices:
//!
//! 6. Inbound: accounts of the sim send texts to device [`MAIN`], whose tenant has a webhook
//!    pointing at a receiver in this process, against the same texts sent to device [`QUIET`]
//!    before the webhook exists, counted once they are in the events API. Every text must arrive
//!    once, each chat's in the order it was sent and numbered without gaps (`seq`).
//! 7. Sending: texts sent through `POST /devices/main/messages` by concurrent clients until the
//!    sim's accounts have them all, against as many `GET /devices/main/groups` (a lookup the
//!    gateway answers from its cache) by the same clients. Every send must be accepted (202)
//!    and arrive.
//!
//! Two devices, because the sim encrypts each text to a device with a new Signal session, which
//! uses up one of the one-time pre-keys the device uploaded (812 with whatsapp-rust).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use wa_sim::WaSim;

use crate::Sizes;
use crate::gateway::{Gateway, LOG};
use crate::link::{self, Link, POLL};
use crate::report::{Row, Table, elapsed, per_second, rate};
use crate::sim::Sim;
use crate::support::Reply;

/// The tenant.
const TENANT: &str = "messages";
/// The device whose texts go to the webhook, and that sends.
const MAIN: &str = "main";
/// The device of the baseline: its texts are only recorded.
const QUIET: &str = "quiet";
/// Accounts of the sim that write to the devices and are sent to: one chat each.
const CHATS: usize = 4;
/// Accounts of the sim the scenarios take: the two devices' and the chats'.
pub const ACCOUNTS: usize = 2 + CHATS;
/// How long the texts may take to arrive, all together, before the missing ones fail the run.
const DEADLINE: Duration = Duration::from_secs(120);
/// How often the sim's inboxes are looked at: the precision of the arrival of the last send.
const ARRIVAL_POLL: Duration = Duration::from_millis(10);
/// The sends' limits: high enough that the rate limit is not what is measured.
const SEND_LIMITS: u32 = 1_000_000;

/// The scenarios' gateway and accounts.
struct Setup {
    /// The gateway: tenant [`TENANT`] with [`MAIN`] and [`QUIET`] linked and `/devices` routed
    /// to the built-in devices API.
    gateway: Arc<Gateway>,
    /// An API token that may use [`MAIN`].
    token: String,
    /// The account [`MAIN`] is linked to.
    main: String,
    /// The account [`QUIET`] is linked to.
    quiet: String,
    /// The accounts of the chats.
    chats: Vec<String>,
}

/// Runs both scenarios on a fresh gateway; returns their tables.
pub async fn run(sim: &mut Sim, sizes: &Sizes) -> [Table; 2] {
    println!("\n6. Inbound messages to a webhook");
    let gateway = Gateway::start(sim).await;
    gateway.create_tenant(TENANT).await;
    let mut phones = sim.phones(ACCOUNTS);
    let chats = phones.split_off(2);
    let [main, quiet] = [0, 1].map(|i| phones[i].clone());
    let links = [(MAIN, &main), (QUIET, &quiet)];
    let links =
        links.map(|(device, phone)| Link { tenant: TENANT.into(), device: device.into(), phone: phone.clone() });
    link::link_all(&gateway, sim, links.into()).await;
    gateway.route(TENANT, "/devices", "builtin:devices-api").await;
    let token = gateway.user_token(TENANT, &[MAIN]).await;
    let setup = Setup { gateway, token, main, quiet, chats };
    let inbound = inbound(&setup, sim.server(), sizes).await;
    println!("\n7. Sending");
    [inbound, sending(&setup, sim.server(), sizes).await]
}

/// Scenario 6.
async fn inbound(setup: &Setup, sim: &Arc<WaSim>, sizes: &Sizes) -> Table {
    let (gateway, n) = (&setup.gateway, sizes.texts);
    let (started, sent) = send_texts(sim, &setup.chats, &setup.quiet, n).await;
    let events = recorded(gateway, QUIET, n).await;
    let got: Vec<Got> = events.iter().map(|event| Got::new(event, recorded_at(event))).collect();
    let committed = Run::checked("without a webhook, in the events API", started, &sent, &got);
    println!("  committed: {committed}");

    let receiver = Receiver::start().await;
    let allow = json!({ "outbound_private_hosts": ["127.0.0.1"] });
    gateway.admin(Method::PATCH, &format!("/v1/tenants/{TENANT}"), allow).await;
    let webhook = json!({ "url": receiver.url, "events": ["message.received"] });
    let webhook = gateway.admin(Method::POST, &format!("/v1/tenants/{TENANT}/webhooks"), webhook).await;
    let (started, sent) = send_texts(sim, &setup.chats, &setup.main, n).await;
    let deliveries = receiver.wait_for(n).await;
    let unsigned = deliveries.iter().filter(|delivery| !delivery.signed).count();
    assert_eq!(unsigned, 0, "{unsigned} of {n} webhook requests lack a webhook-id, -timestamp or -signature header");
    let got: Vec<Got> = deliveries.iter().map(|delivery| Got::new(&delivery.event, delivery.at)).collect();
    let delivered = Run::checked("to the webhook", started, &sent, &got);
    println!("  delivered: {delivered}");
    // Scenario 7 measures sending without the webhook looking at its status events.
    let id = webhook["id"].as_str().expect("a webhook has an id");
    gateway.admin(Method::DELETE, &format!("/v1/tenants/{TENANT}/webhooks/{id}"), Value::Null).await;

    let latency = |figure: &str, percentile: usize| {
        let (committed, delivered) = (committed.latency(percentile), delivered.latency(percentile));
        let ratio = delivered.as_secs_f64() / committed.as_secs_f64().max(1e-6);
        Row::info(figure, elapsed(committed), elapsed(delivered), Some(ratio))
    };
    Table {
        title: "6. Inbound messages to a webhook (baseline: committed without a webhook, measured: delivered to it)"
            .into(),
        rows: vec![
            Row::info(
                "events/s, first send to the last event",
                rate(committed.per_second(), "events/s"),
                rate(delivered.per_second(), "events/s"),
                Some(delivered.per_second() / committed.per_second()),
            ),
            latency("p50 latency from the send", 50),
            latency("p99 latency from the send", 99),
            Row::info("lost, duplicated or out-of-order events", "0", "0", None).target("0", true),
        ],
        notes: vec![format!(
            "{n} texts from {CHATS} accounts of the sim (one chat each, sending in turn, the chats at once, as fast as \
             the sim encrypts them) to a linked device. Baseline: to device `{QUIET}`, until all are in the admin \
             events API, each at the time its event id (a ULID, milliseconds) was made as it was recorded. \
             Measured: to device `{MAIN}`, with a webhook of the tenant for `message.received` pointing at a \
             receiver in the bench (hyper, answering 204), each at the time its request arrived there. Latency: \
             from when the sim's `send_text` returned, so it includes the wait behind the texts before it. Any \
             lost, duplicated or unsigned delivery, or a chat's events out of the order they were sent or not \
             numbered by consecutive `seq`s, fails the run."
        )],
    }
}

/// Scenario 7.
async fn sending(setup: &Setup, sim: &Arc<WaSim>, sizes: &Sizes) -> Table {
    let (m, clients) = (sizes.sends, sizes.send_clients);
    let limits = json!({ "sends_per_minute": SEND_LIMITS, "send_burst": SEND_LIMITS });
    setup.gateway.set_limits(TENANT, limits).await;
    let client =
        Client { gateway: setup.gateway.clone(), token: setup.token.clone(), chats: setup.chats.clone().into() };
    let lookups = Calls::run(&client, clients, m, Client::lookup).await;
    lookups.assert_all("GET /devices/main/groups", 200);
    println!("  lookups: {lookups}");
    let sends = Calls::run(&client, clients, m, Client::send).await;
    sends.assert_all("POST /devices/main/messages", 202);
    let ids = sends.replies.iter().map(|(reply, _)| {
        let id = reply.json["data"]["id"].as_str();
        id.unwrap_or_else(|| panic!("a 202 without a message id: {}", reply.text)).to_string()
    });
    let expected: HashMap<String, (String, String)> = ids.zip((0..m).map(|i| client.text(i))).collect();
    assert_eq!(expected.len(), m, "{} sends got the message id of another send", m - expected.len());
    let arrived = arrivals(sim, &setup.chats, &expected).await;
    let arrived_per_second = m as f64 / (arrived - sends.started).as_secs_f64();
    println!("  sends: {sends}; all arrived at {arrived_per_second:.0}/s");

    let latency = |figure: &str, percentile: usize| {
        let (lookup, send) = (lookups.latency(percentile), sends.latency(percentile));
        Row::info(figure, elapsed(lookup), elapsed(send), Some(send.as_secs_f64() / lookup.as_secs_f64().max(1e-6)))
    };
    let baseline = per_second(lookups.per_second());
    Table {
        title: "7. Sending (baseline: GET /devices/main/groups, measured: POST /devices/main/messages)".into(),
        rows: vec![
            Row::info(
                "requests/s answered (sends: 202 accepted)",
                baseline.clone(),
                per_second(sends.per_second()),
                Some(sends.per_second() / lookups.per_second()),
            ),
            Row::info(
                "sends/s arrived at the recipients",
                baseline,
                rate(arrived_per_second, "sends/s"),
                Some(arrived_per_second / lookups.per_second()),
            ),
            latency("p50 request latency", 50),
            latency("p99 request latency", 99),
            Row::info("failed requests or missing messages", "0", "0", None).target("0", true),
        ],
        notes: vec![format!(
            "{m} requests of each kind from {clients} concurrent clients (kept-alive HTTP/1.1 connections of one \
             pool) with a user's token, the lookups first. Sends: texts to the {CHATS} accounts of scenario 6 in \
             turn, each with its own `Idempotency-Key`, the tenant's `sends_per_minute` and `send_burst` at \
             {SEND_LIMITS}; answered = first request to the last 202; arrived = first request to when the sim's \
             inboxes held every text (looked at every {} ms), delivery receipts on (each send also records its \
             `message.status` events). Any answer but 202 (200 for the lookups), or a text that does not arrive \
             with its id and text within {} s, fails the run.",
            ARRIVAL_POLL.as_millis(),
            DEADLINE.as_secs()
        )],
    }
}

/// A client of the devices API: the gateway, a token that may use [`MAIN`], and whom it sends to.
#[derive(Clone)]
struct Client {
    /// The gateway.
    gateway: Arc<Gateway>,
    /// The API token.
    token: String,
    /// The accounts the texts go to, in turn.
    chats: Arc<[String]>,
}

impl Client {
    /// Send `i`'s recipient and text.
    fn text(&self, i: usize) -> (String, String) {
        (self.chats[i % self.chats.len()].clone(), format!("bench send {i}"))
    }

    /// `GET /devices/main/groups`, the baseline (the same for every `_i`).
    async fn lookup(self, _i: usize) -> Reply {
        self.gateway.get(&format!("/devices/{MAIN}/groups"), &self.token).await
    }

    /// `POST /devices/main/messages`: send `i`, under an idempotency key of its own.
    async fn send(self, i: usize) -> Reply {
        let (to, text) = self.text(i);
        let key = format!("bench-send-{i}");
        let body = json!({ "to": to, "text": text });
        self.gateway.post(&format!("/devices/{MAIN}/messages"), &self.token, &body, &[("idempotency-key", &key)]).await
    }
}

/// A text an account of the sim sent to a device.
struct Sent {
    /// Its message id.
    id: String,
    /// The sending account's place among the chats.
    chat: usize,
    /// Its place among the texts that account sent.
    index: usize,
    /// When `send_text` returned.
    at: SystemTime,
}

/// Each of the `chats` sends its share of `n` texts to the device of account `to` (every
/// `chats.len()`th), one after the other, the chats at once; returns when the first was sent
/// and every text.
async fn send_texts(sim: &Arc<WaSim>, chats: &[String], to: &str, n: usize) -> (SystemTime, Vec<Sent>) {
    let started = SystemTime::now();
    let mut sending = JoinSet::new();
    for (chat, from) in chats.iter().enumerate() {
        let (sim, from, to, step) = (sim.clone(), from.clone(), to.to_string(), chats.len());
        sending.spawn(async move {
            let mut sent = Vec::new();
            for (index, i) in (chat..n).step_by(step).enumerate() {
                let text = sim.send_text(&from, &to, &format!("bench text {i}")).await;
                let text = text.unwrap_or_else(|e| panic!("the sim could not send text {i} from {from} to {to}: {e}"));
                sent.push(Sent { id: text.id, chat, index, at: SystemTime::now() });
            }
            sent
        });
    }
    let mut sent = Vec::with_capacity(n);
    while let Some(done) = sending.join_next().await {
        sent.extend(done.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic())));
    }
    (started, sent)
}

/// The `message.received` events of `device` in the events API (in the order they were
/// recorded), once there are `n`; fails the run if they are not there within [`DEADLINE`].
async fn recorded(gateway: &Gateway, device: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    let (mut events, mut after) = (Vec::new(), None::<String>);
    loop {
        let cursor = after.as_ref().map(|id| format!("&after={id}")).unwrap_or_default();
        let path = format!("/v1/tenants/{TENANT}/events?limit=1000{cursor}");
        let page = gateway.admin(Method::GET, &path, Value::Null).await;
        let got = page["events"].as_array().unwrap_or_else(|| panic!("the events API answered {page}"));
        let ours = |event: &&Value| event["device"] == device && event["type"] == "message.received";
        events.extend(got.iter().filter(ours).cloned());
        if events.len() >= n {
            return events;
        }
        if got.is_empty() {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} texts to {device} are in the events API after {} s; see target/bench/{LOG}",
                events.len(),
                DEADLINE.as_secs()
            );
            tokio::time::sleep(POLL).await;
        }
        after = page["next"].as_str().map(str::to_string);
    }
}

/// When `event` was recorded: the time in its id, a ULID (48 bits of milliseconds since the
/// Unix epoch in the first 10 characters, Crockford's base 32).
fn recorded_at(event: &Value) -> SystemTime {
    const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let id = event["id"].as_str().unwrap_or_else(|| panic!("an event without an id: {event}"));
    let digit = |c: char| ALPHABET.find(c).unwrap_or_else(|| panic!("event id {id} is not a ULID"));
    let millis = id.chars().take(10).fold(0, |millis, c| millis << 5 | digit(c) as u64);
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// A text's event as it arrived (in the events API, or at the webhook).
struct Got {
    /// Its chat.
    chat: String,
    /// Its number in the chat.
    seq: u64,
    /// The text's message id.
    message_id: String,
    /// When it arrived.
    at: SystemTime,
}

impl Got {
    /// The event's fields that the checks read, and `at`.
    fn new(event: &Value, at: SystemTime) -> Got {
        let field = |name: &str| event[name].clone();
        let (chat, seq, message_id) = (field("chat"), field("seq"), event["data"]["message_id"].clone());
        match (chat.as_str(), seq.as_u64(), message_id.as_str()) {
            (Some(chat), Some(seq), Some(id)) => Got { chat: chat.into(), seq, message_id: id.into(), at },
            _ => panic!("an event without a chat, seq or data.message_id: {event}"),
        }
    }
}

/// Texts that arrived, checked: when the first was sent, and each one's latency in the order
/// they arrived.
struct Run {
    started: SystemTime,
    latencies: Vec<Duration>,
    last: SystemTime,
}

impl Run {
    /// Checks that `got` has each text of `sent` once, each chat's in the order they were
    /// sent, numbered by consecutive `seq`s; ends the run with what is wrong otherwise.
    fn checked(what: &str, started: SystemTime, sent: &[Sent], got: &[Got]) -> Run {
        let by_id: HashMap<&str, &Sent> = sent.iter().map(|text| (text.id.as_str(), text)).collect();
        let mut seen = HashSet::new();
        let mut chats: HashMap<&str, (u64, &Sent)> = HashMap::new();
        let mut latencies = Vec::with_capacity(got.len());
        for event in got {
            let id = event.message_id.as_str();
            let text = by_id.get(id).unwrap_or_else(|| panic!("{what}: an event of message {id}, which was not sent"));
            assert!(seen.insert(id), "{what}: message {id} arrived twice; see target/bench/{LOG}");
            if let Some((seq, before)) = chats.get(event.chat.as_str()) {
                assert!(
                    event.seq == seq + 1 && (text.chat, text.index) == (before.chat, before.index + 1),
                    "{what}: in chat {}, text {} of account {} (seq {}) came after text {} of account {} (seq {seq})",
                    event.chat,
                    text.index,
                    text.chat,
                    event.seq,
                    before.index,
                    before.chat
                );
            }
            chats.insert(&event.chat, (event.seq, text));
            latencies.push(event.at.duration_since(text.at).unwrap_or_default());
        }
        let lost = sent.len() - seen.len();
        assert_eq!(lost, 0, "{what}: {lost} of {} texts lost; see target/bench/{LOG}", sent.len());
        let last = got.iter().map(|event| event.at).max().unwrap_or(started);
        latencies.sort_unstable();
        Run { started, latencies, last }
    }

    /// Texts per second, from the first send to the last arrival.
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.last.duration_since(self.started).unwrap_or_default().as_secs_f64()
    }

    /// The `percentile`th latency.
    fn latency(&self, percentile: usize) -> Duration {
        nearest_rank(&self.latencies, percentile)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p50, p99) = (elapsed(self.latency(50)), elapsed(self.latency(99)));
        write!(f, "{} at {:.0}/s, latency p50 {p50}, p99 {p99}", self.latencies.len(), self.per_second())
    }
}

/// The `percentile`th of `sorted` times, by nearest rank.
fn nearest_rank(sorted: &[Duration], percentile: usize) -> Duration {
    let rank = (sorted.len() * percentile).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// A webhook request as it arrived.
struct Delivery {
    /// When it arrived (its body read).
    at: SystemTime,
    /// Its body.
    event: Value,
    /// Whether it has the signature headers of Standard Webhooks (not checked further: the
    /// tests do), its `webhook-id` the event's id.
    signed: bool,
}

/// The webhook's endpoint: an HTTP server on loopback that answers every request 204 and keeps
/// it.
struct Receiver {
    /// Its URL.
    url: String,
    /// What arrived, in order.
    got: Arc<Mutex<Vec<Delivery>>>,
    /// Accepts connections until dropped.
    accepting: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts the endpoint on a free loopback port.
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}/hook", listener.local_addr().expect("the port's address"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = got.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let keep = keep.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let at = SystemTime::now();
                        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
                        let signed = header("webhook-id").is_some()
                            && header("webhook-id") == event["id"].as_str()
                            && header("webhook-timestamp").is_some()
                            && header("webhook-signature").is_some_and(|s| s.starts_with("v1,"));
                        keep.lock().unwrap().push(Delivery { at, event, signed });
                        let response = http::Response::builder().status(204).body(Empty::<Bytes>::new());
                        Ok::<_, hyper::Error>(response.expect("a 204"))
                    }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::spawn(connection);
            }
        });
        Receiver { url, got, accepting }
    }

    /// What arrived once `n` requests have; fails the run if they have not within [`DEADLINE`].
    async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let arrived = self.got.lock().unwrap().len();
            if arrived >= n {
                return std::mem::take(&mut *self.got.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "only {arrived} of {n} texts reached the webhook after {} s; see target/bench/{LOG}",
                DEADLINE.as_secs()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Receiver {
    /// Stops accepting connections.
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Requests made by concurrent clients: each answer with its time, and when the first was made.
struct Calls {
    /// Each answer and how long it took, by the request's number.
    replies: Vec<(Reply, Duration)>,
    /// The times of `replies`, sorted.
    latencies: Vec<Duration>,
    /// When the first request was made.
    started: Instant,
    /// From the first request to the last answer.
    took: Duration,
}

impl Calls {
    /// Makes requests 0 to `n` - 1 with `call` on `client` from `clients` concurrent clients,
    /// each making the next request as soon as its previous one is answered.
    async fn run<R>(client: &Client, clients: usize, n: usize, call: fn(Client, usize) -> R) -> Calls
    where
        R: Future<Output = Reply> + Send + 'static,
    {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut running = JoinSet::new();
        for _ in 0..clients {
            let (client, next) = (client.clone(), next.clone());
            running.spawn(async move {
                let mut replies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return replies;
                    }
                    let asked = Instant::now();
                    let reply = call(client.clone(), i).await;
                    replies.push((i, reply, asked.elapsed()));
                }
            });
        }
        let mut replies = Vec::with_capacity(n);
        while let Some(done) = running.join_next().await {
            replies.extend(done.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic())));
        }
        let took = started.elapsed();
        replies.sort_unstable_by_key(|(i, ..)| *i);
        let replies: Vec<(Reply, Duration)> = replies.into_iter().map(|(_, reply, time)| (reply, time)).collect();
        let mut latencies: Vec<Duration> = replies.iter().map(|(_, time)| *time).collect();
        latencies.sort_unstable();
        Calls { replies, latencies, started, took }
    }

    /// Ends the run unless every answer is `status`.
    fn assert_all(&self, what: &str, status: u16) {
        let failed: Vec<&Reply> = self.replies.iter().map(|(reply, _)| reply).filter(|r| r.status != status).collect();
        if let Some(first) = failed.first() {
            panic!(
                "{what}: {} of {} answers were not {status}, the first {}: {}; see target/bench/{LOG}",
                failed.len(),
                self.replies.len(),
                first.status,
                first.text.trim()
            );
        }
    }

    /// Answers per second.
    fn per_second(&self) -> f64 {
        self.replies.len() as f64 / self.took.as_secs_f64()
    }

    /// The `percentile`th answer time.
    fn latency(&self, percentile: usize) -> Duration {
        nearest_rank(&self.latencies, percentile)
    }
}

impl std::fmt::Display for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p50, p99) = (elapsed(self.latency(50)), elapsed(self.latency(99)));
        write!(f, "{} at {:.0}/s, latency p50 {p50}, p99 {p99}", self.replies.len(), self.per_second())
    }
}

/// Waits until the `chats`' inboxes hold every text of `expected` (message id → recipient,
/// text); returns when they did (at most [`ARRIVAL_POLL`] late). Ends the run when a text
/// arrived at another account or with another text, or one is missing after [`DEADLINE`].
async fn arrivals(sim: &WaSim, chats: &[String], expected: &HashMap<String, (String, String)>) -> Instant {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut arrived = 0;
        for phone in chats {
            for got in sim.received(phone) {
                if let Some((to, text)) = expected.get(&got.id) {
                    assert!(to == phone && &got.text == text, "{} arrived as {got:?}, not as {text:?} to {to}", got.id);
                    arrived += 1;
                }
            }
        }
        if arrived == expected.len() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "only {arrived} of {} sent texts arrived after {} s; see target/bench/{LOG}",
            expected.len(),
            DEADLINE.as_secs()
        );
        tokio::time::sleep(ARRIVAL_POLL).await;
    }
}

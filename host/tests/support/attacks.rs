//! Availability attacks on a running gateway, from a second loopback address so that the
//! gateway's per-client caps see the attacker and the victim's users as two clients, as on
//! the internet. The adversarial tests run each one and assert what the attacker gets; the
//! load benchmark runs each one while `wrk` measures the victim.
//!
//! An attack is a number of workers repeating one step (a connection, a request) until it is
//! stopped; every step ends in an outcome ("closed without an answer", "503 CAPACITY", …) and
//! the attack returns how often each came up.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The attacker's address; the victim's users come from 127.0.0.1.
pub const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The outcome of a step whose connection the server closed without answering.
pub const CLOSED: &str = "closed without an answer";

/// The outcome of a step still waiting when its attack was stopped.
pub const STOPPED: &str = "still open when stopped";

/// How long a slow attacker waits between two bytes.
const TRICKLE: Duration = Duration::from_millis(200);

/// A header larger than the listener's `max_header_bytes` (64 KiB by default).
const OVERSIZED_HEADER_BYTES: usize = 100 << 10;

/// One attack on a victim tenant.
#[derive(Debug, Clone)]
pub enum Attack {
    /// Slowloris: request headers sent a byte at a time, never finished.
    SlowHeaders,
    /// Connections that get one answer and then stay open without another request.
    IdleConnections,
    /// A new connection for every request: with many workers, more connections at once
    /// than one client may open.
    ConnectionFlood,
    /// Uploads without a token whose body comes a byte at a time.
    SlowUploads,
    /// Requests without a token, one after another on each worker's connection.
    AnonymousFlood,
    /// Requests with a header over the listener's size cap.
    OversizedHeaders,
    /// A hostile tenant's requests to its component that each hold an instance for `ms`.
    SlowRequests {
        /// The hostile tenant's API token.
        token: String,
        /// How long each request sleeps in its component.
        ms: u64,
    },
    /// A hostile tenant's requests to its component that spin until their deadline.
    CpuLoop {
        /// The hostile tenant's API token.
        token: String,
    },
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Attack::SlowHeaders => "slow headers (slowloris)",
            Attack::IdleConnections => "idle connections",
            Attack::ConnectionFlood => "connection flood",
            Attack::SlowUploads => "slow uploads without a token",
            Attack::AnonymousFlood => "anonymous flood",
            Attack::OversizedHeaders => "oversized headers",
            Attack::SlowRequests { .. } => "hostile tenant: slow requests (pool share)",
            Attack::CpuLoop { .. } => "hostile tenant: CPU loop",
        })
    }
}

/// Where the attacks aim: the gateway's API listener and the victim tenant's host name, which
/// is all a stranger needs to reach a tenant.
#[derive(Debug, Clone)]
pub struct Aim {
    /// The API listener.
    pub api: SocketAddr,
    /// A host name of the victim tenant.
    pub host: String,
}

impl Aim {
    /// The API listener of `base` (`http://IP:PORT`) and the victim's host name.
    pub fn new(base: &str, host: &str) -> Aim {
        let api = base.trim_start_matches("http://").parse().unwrap_or_else(|e| panic!("{base} is no address: {e}"));
        Aim { api, host: host.into() }
    }

    /// A new connection to the API listener from [`ATTACKER`].
    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(ATTACKER, 0))?;
        socket.connect(self.api).await
    }

    /// A request of `method` for `path` to the victim without a token, with `headers` (each
    /// line ending in CRLF) and no body.
    fn request(&self, method: &str, path: &str, headers: &str) -> String {
        format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}\r\n", self.host)
    }
}

/// How often each outcome came up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally(pub BTreeMap<String, usize>);

impl Tally {
    /// How often `outcome` came up.
    pub fn count(&self, outcome: &str) -> usize {
        self.0.get(outcome).copied().unwrap_or(0)
    }

    /// Steps in all.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// The outcomes other than `expected`.
    pub fn others(&self, expected: &[&str]) -> Tally {
        Tally(self.0.iter().filter(|(k, _)| !expected.contains(&k.as_str())).map(|(k, n)| (k.clone(), *n)).collect())
    }

    fn add(&mut self, outcome: String) {
        *self.0.entry(outcome).or_default() += 1;
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(outcome, n)| format!("{n} × {outcome}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// A running attack: stop it to get its tally.
pub struct Running {
    stop: watch::Sender<bool>,
    workers: JoinSet<Tally>,
}

impl Running {
    /// Stops every worker (steps in progress end as [`STOPPED`]) and returns the tally.
    pub async fn stop(mut self) -> Tally {
        let _ = self.stop.send(true);
        let mut tally = Tally::default();
        while let Some(worker) = self.workers.join_next().await {
            let worker = worker.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            for (outcome, n) in worker.0 {
                *tally.0.entry(outcome).or_default() += n;
            }
        }
        tally
    }
}

/// Starts `attack` on `aim` with `workers` workers, each repeating its step until stopped.
pub fn start(attack: &Attack, aim: &Aim, workers: usize) -> Running {
    let (stop, stopped) = watch::channel(false);
    let http = reqwest::Client::builder().local_address(ATTACKER).build().expect("an HTTP client");
    let mut running = JoinSet::new();
    for _ in 0..workers {
        let (attack, aim, http, mut stopped) = (attack.clone(), aim.clone(), http.clone(), stopped.clone());
        running.spawn(async move {
            let mut tally = Tally::default();
            while !*stopped.borrow() {
                tally.add(tokio::select! {
                    outcome = step(&attack, &aim, &http) => outcome,
                    _ = stopped.wait_for(|stop| *stop) => STOPPED.to_string(),
                });
            }
            tally
        });
    }
    Running { stop, workers: running }
}

/// One step of `attack`: its outcome.
async fn step(attack: &Attack, aim: &Aim, http: &reqwest::Client) -> String {
    const GROUPS: &str = "/devices/main/groups";
    match attack {
        Attack::SlowHeaders => {
            let Ok(mut stream) = aim.connect().await else { return CLOSED.into() };
            let head = format!("GET {GROUPS} HTTP/1.1\r\nHost: {}\r\nX-Slow: ", aim.host);
            trickle(&mut stream, head.as_bytes()).await
        }
        Attack::SlowUploads => {
            let Ok(mut stream) = aim.connect().await else { return CLOSED.into() };
            let head = aim.request("POST", GROUPS, "Content-Length: 100000\r\n");
            trickle(&mut stream, head.as_bytes()).await
        }
        Attack::IdleConnections => {
            let Ok(mut stream) = aim.connect().await else { return CLOSED.into() };
            let answered = exchange(&mut stream, &aim.request("GET", GROUPS, "")).await;
            // Then nothing more: the server must close it.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            format!("{answered}, then closed")
        }
        Attack::ConnectionFlood => {
            let Ok(mut stream) = aim.connect().await else { return CLOSED.into() };
            exchange(&mut stream, &aim.request("GET", GROUPS, "Connection: close\r\n")).await
        }
        Attack::OversizedHeaders => {
            let Ok(mut stream) = aim.connect().await else { return CLOSED.into() };
            let header = format!("X-Big: {}\r\n", "x".repeat(OVERSIZED_HEADER_BYTES));
            exchange(&mut stream, &aim.request("GET", GROUPS, &header)).await
        }
        Attack::AnonymousFlood => {
            let url = format!("http://{}{GROUPS}", aim.api);
            outcome(http.get(url).header("host", &aim.host)).await
        }
        Attack::SlowRequests { token, ms } => {
            outcome(http.get(format!("http://{}/probe/sleep?ms={ms}", aim.api)).bearer_auth(token)).await
        }
        Attack::CpuLoop { token } => {
            outcome(http.get(format!("http://{}/probe/loop", aim.api)).bearer_auth(token)).await
        }
    }
}

/// `status` and the JSON error code of `body`, if it has one: `503 CAPACITY`, `200`.
fn describe(status: u16, body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match json["error"]["code"].as_str() {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}

/// Sends `request` and returns the outcome of the request.
async fn outcome(request: reqwest::RequestBuilder) -> String {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            describe(status, &response.text().await.unwrap_or_default())
        }
        Err(e) if e.is_connect() => CLOSED.into(),
        Err(e) => format!("failed: {e}"),
    }
}

/// Writes `request` and reads one answer: its outcome ([`CLOSED`] if the server closed the
/// connection first).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    if stream.write_all(request.as_bytes()).await.is_err() {
        return CLOSED.into();
    }
    read_answer(stream).await.unwrap_or_else(|| CLOSED.into())
}

/// Writes `head`, then one more byte every [`TRICKLE`] until the server answers or closes the
/// connection: the answer's outcome, or [`CLOSED`].
async fn trickle(stream: &mut TcpStream, head: &[u8]) -> String {
    if stream.write_all(head).await.is_err() {
        return CLOSED.into();
    }
    let (mut reader, mut writer) = stream.split();
    let drip = async {
        loop {
            tokio::time::sleep(TRICKLE).await;
            if writer.write_all(b"a").await.is_err() {
                break;
            }
        }
        // The server stopped reading: its answer, if any, is still to be read.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        answer = read_answer(&mut reader) => answer.unwrap_or_else(|| CLOSED.into()),
        () = drip => unreachable!("the drip never ends"),
    }
}

/// Reads one HTTP/1.1 answer (head and a `Content-Length` body): its outcome, or `None` if
/// the connection ends before a whole head.
async fn read_answer(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    while received.len() < head_end + length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    Some(describe(status, &String::from_utf8_lossy(&received[head_end..])))
}

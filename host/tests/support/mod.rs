//! The real `waedge` binary as a child process: its listeners, its log, its CLI.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod attacks;
pub mod linked;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wa_sim::{Pattern, WaSim};

/// The binary under test: `waedge-sim` (the same command with the `wa-sim` feature, so that
/// `whatsapp_server` works) whenever this test build has it, else `waedge`. Never
/// `target/*/waedge` in a build with the feature: cargo copies whichever variant of `waedge`
/// was built last to that path, so a `cargo build --bin waedge` would swap it.
pub const WAEDGE: &str = match option_env!("CARGO_BIN_EXE_waedge-sim") {
    Some(path) => path,
    None => env!("CARGO_BIN_EXE_waedge"),
};

/// The account the live tests link devices to (Acme Support in the world).
pub const SELF_PHONE: &str = "6285550000001";

/// The wa-sim world of the live tests.
pub fn world() -> wa_sim::World {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e/fixtures/wa-world.toml");
    wa_sim::World::load(path).expect("the wa-sim world loads")
}

/// Every handshake the sim completed so far: how often clients connected.
pub fn handshakes(sim: &WaSim) -> usize {
    [Pattern::Xx, Pattern::Ik, Pattern::XxFallback].into_iter().map(|p| sim.handshakes(p)).sum()
}

/// A response with the body parsed as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON.
    pub json: Value,
    /// The body as text.
    pub text: String,
}

/// A running `waedge serve`.
pub struct Waedge {
    child: Child,
    /// The API listener's base URL.
    pub api: String,
    /// The admin listener's base URL.
    pub admin: String,
    log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

/// A configuration file in `dir` for a gateway on free loopback ports with its data in
/// `dir/data`, plus `extra` TOML.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("waedge.toml");
    let text = format!("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n{extra}\n");
    std::fs::write(&path, text).expect("writing the configuration");
    path
}

/// Runs `waedge ARGS` to completion with the admin connection in its environment.
pub fn cli(args: &[&str], admin: Option<(&str, &str)>) -> Output {
    let mut command = Command::new(WAEDGE);
    command.args(args).env_remove("WAEDGE_ADMIN_URL").env_remove("WAEDGE_ADMIN_TOKEN");
    if let Some((url, token)) = admin {
        command.env("WAEDGE_ADMIN_URL", url).env("WAEDGE_ADMIN_TOKEN", token);
    }
    command.output().expect("waedge runs")
}

/// Like [`cli`], asserting success; returns standard output.
pub fn cli_ok(args: &[&str], admin: Option<(&str, &str)>) -> String {
    let output = cli(args, admin);
    assert!(
        output.status.success(),
        "waedge {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Each device of `tenant`'s node (its name without the process suffix: `node-2`), as
/// `waedge cluster status` with the configuration `config` lists them.
pub fn device_nodes(config: &Path, tenant: &str) -> std::collections::BTreeMap<String, String> {
    let status = cli_ok(&["cluster", "status", "--config", config.to_str().unwrap()], None);
    let prefix = format!("{tenant}/");
    status
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let device = words.next()?.strip_prefix(&prefix)?;
            let (node, _) = words.next()?.split_once('#')?;
            Some((device.to_owned(), node.to_owned()))
        })
        .collect()
}

/// A new admin token for the store of `config`, made by the CLI.
pub fn admin_token(config: &Path) -> String {
    cli_ok(&["admin-token", "create", "--config", config.to_str().unwrap()], None).trim().to_string()
}

impl Waedge {
    /// Starts `waedge serve --config CONFIG` and waits until both listeners are up.
    pub fn start(config: &Path) -> Waedge {
        Self::start_with(config, &[])
    }

    /// Like [`Waedge::start`], with more arguments for `serve`.
    pub fn start_with(config: &Path, args: &[&str]) -> Waedge {
        let mut child = Command::new(WAEDGE)
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("waedge starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, listening) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("waedge listening on ").nth(1) {
                    let _ = found.send(rest.to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let line = listening.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("waedge did not start listening; its log:\n{}", log.lock().unwrap())
        });
        // "http://API (admin API on http://ADMIN)"
        let api = line.split_whitespace().next().expect("the API address").to_string();
        let admin = line.rsplit("on ").next().expect("the admin address").trim_end_matches(')').to_string();
        Waedge { child, api, admin, log, http: reqwest::Client::new() }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits for it.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for waedge") {
                assert!(status.success(), "waedge exited with {status} after SIGTERM:\n{}", self.log());
                break;
            }
            assert!(Instant::now() < deadline, "waedge did not stop after SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log()
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(mut self) -> String {
        self.child.kill().expect("killing waedge");
        let _ = self.child.wait();
        self.log()
    }

    /// Waits up to `seconds` until no WhatsApp client runs (`waedge_whatsapp_clients 0` in
    /// `/metrics`): a device without a client neither reconnects nor links by itself.
    pub async fn wait_for_no_client(&self, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let metrics = self.http.get(format!("{}/metrics", self.admin)).send().await.expect("GET /metrics");
            let metrics = metrics.text().await.expect("the metrics");
            if metrics.lines().any(|line| line == "waedge_whatsapp_clients 0") {
                return;
            }
            assert!(Instant::now() < deadline, "a WhatsApp client still runs:\n{metrics}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request to the API listener with an API token.
    pub async fn api(&self, path: &str, token: &str) -> Reply {
        reply(self.http.get(format!("{}{path}", self.api)).bearer_auth(token)).await
    }

    /// A POST of `body` as JSON to the API listener with an API token and `headers`.
    pub async fn api_post(&self, path: &str, token: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.http.post(format!("{}{path}", self.api)).bearer_auth(token);
        request = request.header("content-type", "application/json").body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request).await
    }

    /// A request to the admin listener with an admin token; `body` is JSON unless `Null`.
    pub async fn admin(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.admin)).bearer_auth(token);
        if !body.is_null() {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        reply(request).await
    }
}

impl Waedge {
    /// An admin call with an admin token that must answer `status`; returns its JSON.
    pub async fn admin_expect(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
        status: u16,
    ) -> Value {
        let reply = self.admin(method.clone(), path, token, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        reply.json
    }

    /// The state of `tenant`'s device `device` as the admin API shows it (`connected`, …).
    pub async fn device_state(&self, token: &str, tenant: &str, device: &str) -> String {
        let path = format!("/v1/tenants/{tenant}/devices/{device}");
        let status = self.admin_expect(reqwest::Method::GET, &path, token, Value::Null, 200).await;
        status["state"].as_str().unwrap_or_else(|| panic!("{path} has no state: {status}")).to_string()
    }

    /// Waits up to `patience` for the device to be in `state`, polling every 100 ms.
    pub async fn wait_for_device(&self, token: &str, tenant: &str, device: &str, state: &str, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let now = self.device_state(token, tenant, device).await;
            if now == state {
                return;
            }
            assert!(Instant::now() < deadline, "{tenant}/{device} is {now}, not {state}, after {patience:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates `tenant`'s device `device` and links it by QR code to the account `phone` of
    /// `sim`, waiting up to `patience` for each step; returns once it is connected.
    pub async fn link_new_device(
        &self,
        token: &str,
        sim: &WaSim,
        (tenant, device, phone): (&str, &str, &str),
        patience: Duration,
    ) {
        let devices = format!("/v1/tenants/{tenant}/devices");
        self.admin_expect(reqwest::Method::POST, &devices, token, serde_json::json!({ "id": device }), 201).await;
        // A new device is `connecting` until its (empty) session store is open.
        self.wait_for_device(token, tenant, device, "unlinked", patience).await;
        let path = format!("{devices}/{device}/link");
        let link = self.admin_expect(reqwest::Method::POST, &path, token, Value::Null, 200).await;
        let code =
            link["code"].as_str().unwrap_or_else(|| panic!("{path} shows no QR code ({link}); is wa-sim reachable?"));
        sim.scan_qr(code, phone).await.unwrap_or_else(|e| panic!("{path}: {phone} could not scan the QR code: {e}"));
        self.wait_for_device(token, tenant, device, "connected", patience).await;
    }

    /// Creates a user of `tenant` that may use `devices` and returns a new API token of it.
    pub async fn new_user_token(&self, token: &str, tenant: &str, devices: &[&str]) -> String {
        let users = format!("/v1/tenants/{tenant}/users");
        let user = self
            .admin_expect(reqwest::Method::POST, &users, token, serde_json::json!({ "devices": devices }), 201)
            .await;
        let id = user["id"].as_str().unwrap_or_else(|| panic!("a new user has an id: {user}"));
        let tokens = format!("{users}/{id}/tokens");
        let created = self.admin_expect(reqwest::Method::POST, &tokens, token, Value::Null, 201).await;
        created["token"].as_str().unwrap_or_else(|| panic!("a new token is shown once: {created}")).to_string()
    }

    /// Deploys `bytes` as `tenant`'s component `name` (activated at once) with the admin token
    /// `token`; returns the new version's JSON.
    pub async fn deploy(&self, token: &str, tenant: &str, name: &str, bytes: Vec<u8>) -> Value {
        let path = format!("/v1/tenants/{tenant}/components/{name}");
        let request = self.http.post(format!("{}{path}", self.admin)).bearer_auth(token);
        let deployed = reply(request.header("content-type", "application/wasm").body(bytes)).await;
        assert_eq!(deployed.status, 201, "POST {path}: {}", deployed.text);
        deployed.json
    }
}

impl Drop for Waedge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("waedge answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, json, text }
}

/// Reads `stream` until it has `count` events; returns each as (`id:`, `event:`, `data:` parsed).
pub async fn read_events(stream: &mut reqwest::Response, count: usize) -> Vec<(String, String, Value)> {
    let (mut text, mut events) = (String::new(), Vec::new());
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await;
        let chunk = chunk.expect("an event within 10 s").expect("the stream reads").expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::to_string);
            if let (Some(id), Some(kind), Some(data)) = (field("id: "), field("event: "), field("data: ")) {
                events.push((id, kind, serde_json::from_str(&data).expect("data is JSON")));
            }
        }
    }
    events
}

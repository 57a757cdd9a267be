//! The real `waedge` binary as a child process: its listeners, its log, its CLI.

#![allow(dead_code)] // Each test binary uses a different part of this module.

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

    /// A request to the API listener with an API token.
    pub async fn api(&self, path: &str, token: &str) -> Reply {
        reply(self.http.get(format!("{}{path}", self.api)).bearer_auth(token)).await
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

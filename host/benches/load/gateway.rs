//! The gateway under load: one `waedge serve` child process on a fresh data directory,
//! pointed at the sim, with the admin API calls the scenarios make and its resident memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wa_sim::WaSim;

use crate::report;
use crate::sim::Sim;
use crate::support::{self, Reply, Waedge};

/// The file (under `target/bench/`) a failed run leaves the gateway's log in.
pub const LOG: &str = "waedge.log";

/// A running gateway with an admin token.
pub struct Gateway {
    // Declared first so that the process ends before its data directory is removed.
    waedge: Waedge,
    admin_token: String,
    pid: u32,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The limits of every benchmark tenant, with `overrides` (an object of limits) on top:
/// WhatsApp's answers stay cached for the whole run, so the scenarios measure the gateway rather
/// than the sim; everything else is the default.
fn limits(overrides: Value) -> Value {
    let mut limits = json!({ "cache_ttl_seconds": 86_400 });
    if let (Some(limits), Value::Object(overrides)) = (limits.as_object_mut(), overrides) {
        limits.extend(overrides);
    }
    limits
}

impl Gateway {
    /// Starts `waedge serve` on a new data directory with its devices connecting to `sim`.
    pub async fn start(sim: &Sim) -> Arc<Gateway> {
        Gateway::start_with(sim, "").await
    }

    /// Like [`start`](Self::start), with `settings` (TOML) at the end of its configuration.
    pub async fn start_with(sim: &Sim, settings: &str) -> Arc<Gateway> {
        let settings = format!("whatsapp_server = \"{}\"\n{settings}", sim.url());
        let started = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let config = support::write_config(dir.path(), &settings);
            let admin_token = support::admin_token(&config);
            let waedge = Waedge::start(&config);
            let pid = waedge.pid();
            Gateway { waedge, admin_token, pid, config, _dir: dir }
        });
        Arc::new(started.await.expect("starting waedge"))
    }

    /// Its configuration file, for the CLI.
    pub fn config(&self) -> &std::path::Path {
        &self.config
    }

    /// Kills the process (SIGKILL), as a crash would.
    pub fn kill(&self) {
        let killed = std::process::Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        assert!(killed.is_ok_and(|status| status.success()), "killing waedge {}", self.pid);
    }

    /// The API listener's base URL.
    pub fn api(&self) -> &str {
        &self.waedge.api
    }

    /// `GET path` on the API listener with an API token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.waedge.api(path, token).await
    }

    /// `POST path` on the API listener with an API token, `body` as JSON and `headers`.
    pub async fn post(&self, path: &str, token: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.waedge.api_post(path, token, body, headers).await
    }

    /// An admin API call that must succeed; returns the answer's JSON.
    pub async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let reply = self.waedge.admin(method.clone(), path, &self.admin_token, body).await;
        succeeded(reply.status, &reply.text, reply.json, &format!("{method} {path}"))
    }

    /// The URL of `path` on the admin listener and an admin token, for calls made away from the
    /// bench's runtime.
    pub fn admin_call(&self, path: &str) -> (String, String) {
        (format!("{}{path}", self.waedge.admin), self.admin_token.clone())
    }

    /// Creates a tenant with the benchmark [`limits`].
    pub async fn create_tenant(&self, tenant: &str) {
        self.admin(Method::POST, "/v1/tenants", json!({ "id": tenant, "limits": limits(json!({})) })).await;
    }

    /// Sets the tenant's limits to the benchmark [`limits`] with `overrides` (an object of
    /// limits) on top; a limit neither names is back to the default.
    pub async fn set_limits(&self, tenant: &str, overrides: Value) {
        self.admin(Method::PATCH, &format!("/v1/tenants/{tenant}"), json!({ "limits": limits(overrides) })).await;
    }

    /// Sets the tenant's `requests_per_instance` (`None`: back to the default).
    pub async fn set_requests_per_instance(&self, tenant: &str, n: Option<u32>) {
        let overrides = n.map_or_else(|| json!({}), |n| json!({ "requests_per_instance": n }));
        self.set_limits(tenant, overrides).await;
    }

    /// Routes `prefix` of the tenant to `component`.
    pub async fn route(&self, tenant: &str, prefix: &str, component: &str) {
        let route = json!({ "prefix": prefix, "component": component });
        self.admin(Method::PUT, &format!("/v1/tenants/{tenant}/routes"), route).await;
    }

    /// Creates a user of the tenant that may use `devices`, and returns a new API token of it.
    pub async fn user_token(&self, tenant: &str, devices: &[&str]) -> String {
        self.waedge.new_user_token(&self.admin_token, tenant, devices).await
    }

    /// Deploys (and activates) `bytes` as version of the tenant's component `name`; returns
    /// its SHA-256.
    pub async fn deploy(&self, tenant: &str, name: &str, bytes: Vec<u8>) -> String {
        let version = self.waedge.deploy(&self.admin_token, tenant, name, bytes).await;
        version["sha256"].as_str().expect("a deployed version has a sha256").to_string()
    }

    /// Creates the tenant's device `device` and links it by QR code to the account `phone`
    /// of `sim`, waiting up to `patience` for each step of the linking.
    pub async fn link(&self, sim: &WaSim, (tenant, device, phone): (&str, &str, &str), patience: Duration) {
        self.waedge.link_new_device(&self.admin_token, sim, (tenant, device, phone), patience).await;
    }

    /// Activates version `sha256` of the tenant's component `name`.
    pub async fn activate(&self, tenant: &str, name: &str, sha256: &str) {
        let path = format!("/v1/tenants/{tenant}/components/{name}/versions/{sha256}/activate");
        self.admin(Method::POST, &path, Value::Null).await;
    }

    /// The gateway's Prometheus metrics.
    async fn metrics(&self) -> String {
        let metrics = self.waedge.admin(Method::GET, "/metrics", &self.admin_token, Value::Null).await;
        assert_eq!(metrics.status, 200, "GET /metrics answered {}; see target/bench/{LOG}", metrics.text);
        metrics.text
    }

    /// The sum of the samples in `/metrics` whose line starts with `prefix` (a metric name and
    /// the start of its labels).
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        let text = self.metrics().await;
        let value = |line: &str| line.strip_prefix(prefix)?.rsplit_once(' ')?.1.parse::<f64>().ok();
        text.lines().filter_map(value).sum()
    }

    /// The live state of each of the tenant's device sessions (`connected`, `connecting`, …) by
    /// id, from `waedge_device_state` in `/metrics`, which reads the sessions, not the store.
    pub async fn device_states(&self, tenant: &str) -> HashMap<String, String> {
        let metrics = self.metrics().await;
        let prefix = format!("waedge_device_state{{tenant=\"{tenant}\",device=\"");
        let state = |line: &str| {
            let (device, rest) = line.strip_prefix(&prefix)?.split_once("\",state=\"")?;
            Some((device.to_string(), rest.split_once('"')?.0.to_string()))
        };
        metrics.lines().filter_map(state).collect()
    }

    /// The process's resident memory (`VmRSS`) in megabytes (10⁶ bytes).
    pub fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status: has waedge exited?", self.pid));
        kib * 1024.0 / 1e6
    }

    /// The CPU time the process has used so far, user and system, in clock ticks (`USER_HZ`:
    /// 100 a second on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        waedge_e2e::process::cpu_ticks(&self.pid.to_string())
            .unwrap_or_else(|| panic!("no CPU times in /proc/{}/stat: has waedge exited?", self.pid))
    }
}

impl Drop for Gateway {
    /// When the run fails (or, with `WAEDGE_BENCH_KEEP_LOG` set, always), keeps the gateway's
    /// log for the one-line failure to point to (or to read its timings).
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("WAEDGE_BENCH_KEEP_LOG").is_some() {
            let path = report::output(LOG);
            match std::fs::write(&path, self.waedge.log()) {
                Ok(()) => eprintln!("load bench: waedge's log is in {}", path.display()),
                Err(e) => eprintln!("load bench: could not keep waedge's log in {}: {e}", path.display()),
            }
        }
    }
}

/// The JSON of a 2xx answer to `call`; anything else ends the run with the answer.
fn succeeded(status: u16, text: &str, json: Value, call: &str) -> Value {
    assert!(
        (200..300).contains(&status),
        "admin API {call} answered {status}: {}; see target/bench/{LOG}",
        text.trim()
    );
    json
}

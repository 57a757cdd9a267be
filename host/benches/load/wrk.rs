//! The load: `wrk` with a Lua script that rotates through (path, bearer token) pairs and
//! prints its summary as one JSON line.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

use crate::gateway::LOG;

/// The script after the `targets` table the bench writes in front of it. `done` prints one
/// line of JSON; latencies are in microseconds, `status` errors are answers of 400 and up.
const SCRIPT: &str = r#"
local prepared = {}
local cursor = 0

function init(args)
  for i, target in ipairs(targets) do
    prepared[i] = wrk.format("GET", target[1], { ["Authorization"] = "Bearer " .. target[2] })
  end
end

function request()
  cursor = cursor % #prepared + 1
  return prepared[cursor]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#;

/// How hard and how long `wrk` loads the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// `-t`: load threads.
    pub threads: u32,
    /// `-c`: open connections.
    pub connections: u32,
    /// `-d`: how long (whole seconds).
    pub duration: Duration,
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-t{} -c{} -d{}s", self.threads, self.connections, self.duration.as_secs())
    }
}

/// One request `wrk` sends in turn: a path with its query, and the API token for it.
pub struct Target {
    /// Path and query, e.g. `/devices/main/profile?jid=…`.
    pub path: String,
    /// The bearer token.
    pub token: String,
}

/// What one run (or several, combined) measured.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    /// Requests completed.
    pub requests: u64,
    /// How long the run took, in microseconds.
    pub duration_us: u64,
    /// Failed requests by kind: `connect`, `read`, `write`, `timeout` (socket errors) and
    /// `status` (answers of 400 and up).
    pub errors: BTreeMap<String, u64>,
    /// Latency percentiles.
    pub latency_us: Latency,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest request.
    pub max: u64,
}

impl Stats {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 * 1e6 / self.duration_us.max(1) as f64
    }

    /// Failed requests of every kind.
    pub fn failures(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Several runs as one: summed requests, time and errors; the median of each percentile
    /// (the maximum of `max`).
    pub fn combine(runs: &[Stats]) -> Stats {
        let median = |field: fn(&Latency) -> u64| {
            let mut values: Vec<u64> = runs.iter().map(|run| field(&run.latency_us)).collect();
            values.sort_unstable();
            values[values.len() / 2]
        };
        let mut errors = BTreeMap::new();
        for (kind, n) in runs.iter().flat_map(|run| &run.errors) {
            *errors.entry(kind.clone()).or_default() += n;
        }
        Stats {
            requests: runs.iter().map(|run| run.requests).sum(),
            duration_us: runs.iter().map(|run| run.duration_us).sum(),
            errors,
            latency_us: Latency {
                p50: median(|l| l.p50),
                p90: median(|l| l.p90),
                p99: median(|l| l.p99),
                max: runs.iter().map(|run| run.latency_us.max).max().unwrap_or_default(),
            },
        }
    }

    /// Panics when any request of `what` failed.
    pub fn assert_clean(&self, what: &str) {
        assert_eq!(self.failures(), 0, "{what}: failed requests ({self}); target/bench/{LOG} says why");
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        let latency = [l.p50, l.p90, l.p99, l.max].map(|us| format!("{:.2}", us as f64 / 1000.0)).join("/");
        let errors: Vec<String> = self.errors.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        let (rps, failed, errors) = (self.rps(), self.failures(), errors.join(", "));
        write!(f, "{rps:.0} req/s, p50/p90/p99/max {latency} ms, {failed} failed ({errors})")
    }
}

/// Whether `wrk` can be started.
pub fn installed() -> bool {
    std::process::Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Loads `api` (the gateway's base URL) with `targets` in turn and returns what `wrk` measured.
pub async fn run(api: &str, targets: &[Target], load: Load) -> Stats {
    let table: String = targets.iter().map(|t| format!("  {{{:?}, {:?}}},\n", t.path, t.token)).collect();
    let mut script = tempfile::Builder::new().suffix(".lua").tempfile().expect("a temporary file for the wrk script");
    write!(script, "targets = {{\n{table}}}\n{SCRIPT}").expect("writing the wrk script");
    let output = tokio::process::Command::new("wrk")
        .args(["-t", &load.threads.to_string(), "-c", &load.connections.to_string()])
        .args(["-d", &format!("{}s", load.duration.as_secs()), "--timeout", "5s", "-s"])
        .arg(script.path())
        .arg(api)
        .output()
        .await
        .expect("wrk starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().find(|line| line.starts_with("{\"requests\"")) {
        Some(line) if output.status.success() => serde_json::from_str(line).expect("wrk's summary line is JSON"),
        _ => panic!(
            "wrk against {api} failed ({}): {}; check that wrk runs by hand with the same arguments",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

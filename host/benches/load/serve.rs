//! Scenario 8, waedge against `wasmtime serve`: one plain `wasi:http` component
//! (`components/examples/hello-http`, which imports nothing of waedge's) served on a waedge
//! route and by `wasmtime serve` of the same wasmtime version, with a fresh instance per request
//! and with instances reused, in alternating rounds.
//!
//! `wasmtime-cli` is installed by `scripts/setup --bench-tools` into
//! `target/tools/wasmtime` (not by `scripts/test`): a run without it checks only that the
//! component answers on its waedge route and reports the comparison as skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::Sizes;
use crate::edge::{Bench, TENANT};
use crate::report::{Row, Table, per_second};
use crate::wrk::{self, Stats};

/// The route of the component on the waedge side, and the path asked of both.
const PATH: &str = "/hello";

/// Requests one instance serves in the "reuse" mode, on both sides: waedge's default
/// `requests_per_instance`.
const REUSE: u32 = 100;

/// The `wasmtime` binary `scripts/setup --bench-tools` installs.
fn wasmtime_cli() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/wasmtime/bin/wasmtime")
}

/// The wasmtime version waedge is built with, from the workspace's `Cargo.lock`.
fn wasmtime_version() -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
        .expect("the workspace's Cargo.lock");
    let mut lines = lock.lines();
    lines.find(|line| *line == "name = \"wasmtime\"").expect("wasmtime in Cargo.lock");
    let version = lines.next().and_then(|line| line.strip_prefix("version = \"")).expect("its version line");
    version.trim_end_matches('"').to_string()
}

/// Why the comparison cannot run here, if it cannot: no `wasmtime` of waedge's version.
fn missing(version: &str) -> Option<String> {
    let output = std::process::Command::new(wasmtime_cli()).arg("--version").output();
    match output {
        Ok(output) if String::from_utf8_lossy(&output.stdout).split_whitespace().nth(1) == Some(version) => None,
        Ok(output) => Some(format!(
            "{} is {}, not wasmtime-cli {version}; run scripts/setup --bench-tools",
            wasmtime_cli().display(),
            String::from_utf8_lossy(&output.stdout).trim()
        )),
        Err(_) => Some(format!("no wasmtime-cli {version} in target/tools/wasmtime; run scripts/setup --bench-tools")),
    }
}

/// A `wasmtime serve` process, killed when dropped (`kill_on_drop`).
struct Serve {
    child: tokio::process::Child,
    url: String,
}

impl Serve {
    /// Serves `component` with `wasmtime serve` on a free loopback port, `reuse` requests per
    /// instance, once it answers.
    async fn start(component: &Path, reuse: u32) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = tokio::process::Command::new(wasmtime_cli())
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--max-instance-reuse-count", &reuse.to_string()])
            .arg(component)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("wasmtime serve starts");
        let mut serve = Serve { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}{PATH}", serve.url)).await.is_err() {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("wasmtime serve exited ({status}); run it by hand with the same arguments to see why");
            }
            assert!(Instant::now() < deadline, "wasmtime serve did not answer on {} within 60 s", serve.url);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        serve
    }
}

/// Runs the scenario on `bench`'s gateway, or reports it skipped.
pub async fn run(bench: &Bench, sizes: &Sizes) -> Table {
    println!("\n8. waedge vs wasmtime serve");
    let title = "8. waedge vs `wasmtime serve`, one plain wasi:http component (baseline: wasmtime serve, measured: a \
                 waedge route)"
        .to_string();
    let bytes = waedge_e2e::guests::get("hello-http").to_vec();
    let gateway = &bench.gateway;
    gateway.deploy(TENANT, "hello-http", bytes.clone()).await;
    gateway.route(TENANT, PATH, "component:hello-http").await;
    let ours = gateway.get(PATH, &bench.token).await;
    assert_eq!((ours.status, ours.text.as_str()), (200, "Hello, world!\n"), "the plain wasi:http component on a route");
    let version = wasmtime_version();
    if let Some(why) = missing(&version) {
        println!("  comparison skipped: {why}");
        return Table { title, rows: vec![], notes: vec![format!("Skipped: {why}.")] };
    }
    let file = tempfile::Builder::new().suffix(".wasm").tempfile().expect("a temporary file");
    std::fs::write(file.path(), &bytes).expect("writing the component");
    let target = [bench.target(PATH)];
    // `wasmtime serve` has no CPU budget: neither has the tenant here (all the machine's cores).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;

    let mut rows = Vec::new();
    for (mode, reuse) in [("fresh instance per request", 1), ("instances reused", REUSE)] {
        let serve = Serve::start(file.path(), reuse).await;
        let limits = serde_json::json!({ "cpu_millicores": 1000 * cores, "requests_per_instance": reuse });
        gateway.set_limits(TENANT, limits).await;
        let ours = gateway.get(PATH, &bench.token).await;
        let theirs = reqwest::get(format!("{}{PATH}", serve.url)).await.expect("wasmtime serve answers");
        assert_eq!((ours.status, theirs.status().as_u16()), (200, 200), "waedge: {}", ours.text);
        assert_eq!(ours.text, theirs.text().await.expect("its body"), "both serve the same component");
        let (mut waedge_runs, mut serve_runs) = (Vec::new(), Vec::new());
        for round in 1..=sizes.rounds {
            // Alternating which goes first, so that drift hits both alike.
            let theirs_first = round % 2 == 1;
            if theirs_first {
                serve_runs.push(wrk::run(&serve.url, &target, sizes.load).await);
            }
            waedge_runs.push(wrk::run(gateway.api(), &target, sizes.load).await);
            if !theirs_first {
                serve_runs.push(wrk::run(&serve.url, &target, sizes.load).await);
            }
            let (theirs, ours) = (&serve_runs[round - 1], &waedge_runs[round - 1]);
            println!("  {mode}, round {round}/{}: wasmtime serve {theirs}", sizes.rounds);
            println!("  {mode}, round {round}/{}: waedge         {ours}", sizes.rounds);
        }
        let (theirs, ours) = (Stats::combine(&serve_runs), Stats::combine(&waedge_runs));
        if !sizes.full {
            theirs.assert_clean("wasmtime serve");
            ours.assert_clean("the waedge route");
        }
        let ratio = ours.rps() / theirs.rps();
        rows.push(
            Row::info(format!("throughput, {mode}"), per_second(theirs.rps()), per_second(ours.rps()), Some(ratio))
                .target("≥ 1.00×", ratio >= 1.0),
        );
        let p99 = ours.latency_us.p99 as f64 / theirs.latency_us.p99.max(1) as f64;
        rows.push(Row::info(
            format!("p99 latency, {mode}"),
            crate::report::millis(theirs.latency_us.p99),
            crate::report::millis(ours.latency_us.p99),
            Some(p99),
        ));
        let failures = ours.failures() + theirs.failures();
        rows.push(
            Row::info(
                format!("failed requests, {mode}"),
                theirs.failures().to_string(),
                ours.failures().to_string(),
                None,
            )
            .target("0", failures == 0),
        );
    }
    gateway.set_limits(TENANT, serde_json::json!({})).await;
    Table {
        title,
        rows,
        notes: vec![format!(
            "`GET {PATH}` answered `Hello, world!` by `components/examples/hello-http` (imports only `wasi:http`), on \
             a waedge route of tenant `{TENANT}` (with its user token, by which waedge picks the tenant; the component \
             ignores it, and `wasmtime serve` gets the same header) and by `wasmtime serve` {version} (`--max-instance-reuse-count N`, its \
             default engine settings); {} rounds of wrk {} per mode, each side first in turn. Fresh: N = \
             `requests_per_instance` = 1; reused: N = {REUSE} on both. The tenant's `cpu_millicores` is all the \
             cores, as `wasmtime serve` has no CPU budget; what waedge does on top stays: the tenant's lookup by \
             the token's hash, routing, admission, epoch deadlines and CPU accounting, an access log line and \
             metrics per request, the response read whole before it is sent. Failed = status ≥ 400 or socket \
             errors.",
            sizes.rounds, sizes.load
        )],
    }
}

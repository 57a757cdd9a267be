//! The load benchmark: the real `waedge` binary as a child process, wa-sim in this process as
//! its WhatsApp, and `wrk` as the load.
//!
//! `cargo bench` (which passes `--bench`) runs it at full size in a release build;
//! `cargo test` runs it at tiny sizes as a smoke run that asserts what must hold at any size
//! (no failed requests, the swaps happen, every device comes back), so it cannot rot.
//! Eight scenarios, each a table of figures next to a baseline measured in the same run:
//!
//! 1. [`edge`]: a component against the native baseline of the same endpoint.
//! 2. [`hot_swap`]: the same load while a tenant component is swapped every 100 ms.
//! 3. [`sessions`]: memory per device session, and the reconnect after a WhatsApp outage.
//! 4. [`tenants`]: memory and latency with a component of its own per tenant.
//! 5. [`attacks`]: a victim tenant's users while each availability attack runs.
//! 6. and 7. [`messages`]: texts from WhatsApp to a webhook against the same texts only
//!    recorded, and texts sent through the devices API against as many lookups.
//! 8. [`serve`]: a plain `wasi:http` component on a waedge route against `wasmtime serve`.
//! 9. [`cluster`]: three nodes on one PostgreSQL against one: spread load, forwarded calls,
//!    the takeover of a killed node's devices.
//!
//! Arguments that are not options choose the scenarios whose name contains one of them (`edge`,
//! `hot-swap`, `sessions`, `tenants`, `attacks`, `messages`, `serve`, `cluster`): `cargo bench --bench load --
//! messages`. Every run fails on a lost, duplicated or reordered event and on a failed send.
//!
//! The report goes to `target/bench/report.md` (`report-smoke.md` for a smoke run; the names of
//! a run of chosen scenarios end with their arguments: `report-messages.md`). A failed run
//! keeps the log of the gateway it failed on in `target/bench/waedge.log`; with
//! `WAEDGE_BENCH_KEEP_LOG` set, every run keeps its last gateway's log there, whose lines say
//! how long the gateway itself took to answer each call (`micros`).

#[path = "../../tests/support/mod.rs"]
mod support;

mod attacks;
mod cluster;
mod edge;
mod gateway;
mod hot_swap;
mod link;
mod messages;
mod report;
mod serve;
mod sessions;
mod sim;
mod tenants;
mod versions;
mod wrk;

use std::time::Duration;

use report::Table;
use sim::Sim;
use wrk::Load;

/// How big a run is.
pub struct Sizes {
    /// A full run (`cargo bench`), or a smoke run that asserts instead of only reporting.
    pub full: bool,
    /// Alternating native/component rounds in scenario 1.
    pub rounds: usize,
    /// Every `wrk` run's threads, connections and duration.
    pub load: Load,
    /// Device counts at which scenario 3 measures memory, in increasing order.
    pub devices: &'static [usize],
    /// Tenants in scenario 4.
    pub tenants: usize,
    /// How long the gateway is left idle before its memory is measured.
    pub settle: Duration,
    /// How long scenario 3 waits for every device to come back after the outage.
    pub reconnect_deadline: Duration,
    /// Idle admin device lists scenario 3 asks for before the outage: at least as many as it
    /// answers during the outage and the reconnect (one every 100 ms), which are compared
    /// with as many of them.
    pub idle_lists: usize,
    /// Texts from WhatsApp in scenario 6, to each of its two devices.
    pub texts: usize,
    /// Sends, and lookups, in scenario 7.
    pub sends: usize,
    /// Concurrent clients making them.
    pub send_clients: usize,
    /// Devices of the cluster in scenario 9.
    pub cluster_devices: usize,
}

/// `cargo bench`. `wrk -t2 -c32`: on two cores one `wrk` thread (its Lua `request()` per
/// request) capped the native baseline at about 16k req/s where two reach about 22k, while
/// the component's figures stayed the same. 800 texts: a device uploads 812 one-time pre-keys,
/// and the sim uses one up for each text it encrypts to the device.
const FULL: Sizes = Sizes {
    full: true,
    rounds: 3,
    load: Load { threads: 2, connections: 32, duration: Duration::from_secs(10) },
    devices: &[100, 1000],
    tenants: 100,
    settle: Duration::from_secs(5),
    reconnect_deadline: Duration::from_secs(120),
    idle_lists: 100,
    texts: 800,
    sends: 2_000,
    send_clients: 16,
    cluster_devices: 1_000,
};

/// `cargo test`: the same program at sizes a debug build gets through in seconds.
const SMOKE: Sizes = Sizes {
    full: false,
    rounds: 1,
    load: Load { threads: 1, connections: 4, duration: Duration::from_secs(1) },
    devices: &[3],
    tenants: 3,
    settle: Duration::from_secs(1),
    reconnect_deadline: Duration::from_secs(30),
    idle_lists: 50,
    texts: 8,
    sends: 20,
    send_clients: 4,
    cluster_devices: 3,
};

/// The scenarios a run chose: their names contain one of these arguments (all without any).
struct Chosen(Vec<String>);

impl Chosen {
    /// The arguments that are not options (`cargo bench` adds `--bench`, `scripts/test`
    /// `--include-ignored`).
    fn from_args() -> Chosen {
        Chosen(std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect())
    }

    /// Whether scenario `name` runs.
    fn runs(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|arg| name.contains(arg.as_str()))
    }

    /// The report's file name: `stem.md`, or with the arguments (`stem-messages.md`).
    fn report(&self, stem: &str) -> String {
        self.0.iter().fold(stem.to_string(), |name, arg| format!("{name}-{arg}")) + ".md"
    }
}

/// Runs the chosen scenarios at the sizes of this run and writes the report.
#[tokio::main]
async fn main() {
    let sizes = if std::env::args().any(|arg| arg == "--bench") { &FULL } else { &SMOKE };
    let mode = if sizes.full { "full" } else { "smoke" };
    let chosen = Chosen::from_args();
    let edge_gateway = ["edge", "hot-swap", "attacks", "serve"].iter().any(|name| chosen.runs(name));
    let wrk_needed = edge_gateway || chosen.runs("tenants") || chosen.runs("cluster");
    if wrk_needed && !wrk::installed() {
        let missing = "wrk is not installed (apt-get install wrk)";
        if sizes.full || std::env::var_os("CI").is_some() {
            eprintln!("load bench failed: {missing}");
            std::process::exit(1);
        }
        println!("load bench skipped: {missing}");
        return;
    }
    // wa-sim, in this process, holds a connection per device (a thousand in a full run).
    if let Err(e) = waedge::server::raise_open_files_limit() {
        eprintln!("load bench: cannot raise the open-files limit ({e}); with many devices raise it first (ulimit -n)");
    }
    println!("waedge load bench ({mode} run, wrk {}): {}", sizes.load, report::machine());
    let most_devices = sizes.devices.last().copied().unwrap_or(0);
    let accounts = 1 + most_devices + sizes.tenants + messages::ACCOUNTS + sizes.cluster_devices;
    let mut sim = Sim::start(accounts).await;
    let mut tables = Vec::new();
    // Scenario 5 runs on scenario 1's gateway, but comes after scenario 4 in the report.
    let mut attack_table = None;
    // Scenario 8 too, and comes last.
    let mut serve_table = None;
    if edge_gateway {
        let bench = edge::Bench::setup(&mut sim).await;
        if chosen.runs("edge") {
            tables.push(shown(edge::run(&bench, sizes).await));
        }
        if chosen.runs("hot-swap") {
            tables.push(shown(hot_swap::run(&bench, sizes).await));
        }
        if chosen.runs("attacks") {
            attack_table = Some(shown(attacks::run(&bench, sizes).await));
        }
        if chosen.runs("serve") {
            serve_table = Some(shown(serve::run(&bench, sizes).await));
        }
    }
    if chosen.runs("sessions") {
        tables.push(shown(sessions::run(&mut sim, sizes).await));
    }
    if chosen.runs("tenants") {
        tables.push(shown(tenants::run(&mut sim, sizes).await));
    }
    tables.extend(attack_table);
    if chosen.runs("messages") {
        tables.extend(messages::run(&mut sim, sizes).await.map(shown));
    }
    tables.extend(serve_table);
    if chosen.runs("cluster") {
        tables.extend(cluster::run(&mut sim, sizes).await.map(shown));
    }
    let heading = format!("waedge load benchmark ({mode} run, wrk {})", sizes.load);
    let file = chosen.report(if sizes.full { "report" } else { "report-smoke" });
    println!("report written to {}", report::write(&heading, &tables, &file).display());
}

/// Prints a scenario's table as it finishes.
fn shown(table: Table) -> Table {
    println!("\n{}", table.markdown());
    table
}

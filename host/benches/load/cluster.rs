//! Scenario 9, several nodes: three `waedge serve` processes on one PostgreSQL against one.
//!
//! The tenant's devices are linked on node 1 alone, which then serves the contact profile
//! through every device (the baseline). Node 1 is killed (`kill -9`) and nodes 2 and 3,
//! started at once, take every device over: timed until wa-sim sees each connected again.
//! Node 1 joins again and gets its share by hand-offs, and the same load is spread over the
//! three, each node forwarding the calls on the devices it does not run. Then, on node 1, the
//! profile through a device it runs against one another node runs (the cost of forwarding);
//! and node 3 is killed, its share taken over by the two others, timed the same way. Nothing is
//! cached in front of WhatsApp here (`cache_ttl_seconds = 0`): every request is a call on
//! a device session, local or forwarded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use waedge_test_postgres::Postgres;

use crate::Sizes;
use crate::gateway::Gateway;
use crate::link::{self, Link};
use crate::report::{Row, Table, millis, per_second};
use crate::sim::{CONTACT, Sim};
use crate::support::device_nodes;
use crate::wrk::{self, Stats, Target};

/// The tenant of this scenario.
const TENANT: &str = "cluster";
/// The secret of the benchmark's cluster.
const SECRET: &str = "load-bench-cluster-secret-0123456789";
/// Forwarded calls that got their answer, in a node's `/metrics`.
const FORWARDED: &str = "waedge_forwarded_call_duration_seconds_count{outcome=\"answered\"}";

/// Runs the scenario, or says why it cannot (no PostgreSQL server) and returns `None`.
pub async fn run(sim: &mut Sim, sizes: &Sizes) -> Option<Table> {
    println!("\n9. Three nodes on PostgreSQL vs one");
    let server = match Postgres::shared() {
        Ok(server) => server,
        Err(e) if !sizes.full && std::env::var_os("CI").is_none() => {
            println!(
                "  skipped: no PostgreSQL server ({e:#}); scripts/setup --test-tools or --bench-tools installs one"
            );
            return None;
        }
        Err(e) => panic!(
            "scenario 9 needs a PostgreSQL server (scripts/setup --test-tools or --bench-tools installs one): {e:#}"
        ),
    };
    let url = server.create_database().expect("a database for the cluster");
    let node = |name: &str| {
        let cluster = format!("node = \"{name}\"\nlease_ms = 6000\nlisten = \"127.0.0.1:0\"\nsecret = \"{SECRET}\"");
        format!("store = \"{url}\"\n[cluster]\n{cluster}")
    };
    let one = Gateway::start_with(sim, &node("node-1")).await;
    one.create_tenant(TENANT).await;
    one.set_limits(TENANT, json!({ "cache_ttl_seconds": 0 })).await;
    one.route(TENANT, "/devices", "builtin:devices-api").await;
    let devices: Vec<String> = (0..sizes.cluster_devices).map(|i| format!("d{i}")).collect();
    let phones = sim.phones(devices.len());
    let links = devices.iter().zip(&phones);
    let links =
        links.map(|(device, phone)| Link { tenant: TENANT.into(), device: device.clone(), phone: phone.clone() });
    link::link_all(&one, sim, links.collect()).await;
    let names: Vec<&str> = devices.iter().map(String::as_str).collect();
    let token = one.user_token(TENANT, &names).await;
    let profile =
        |device: &str| Target { path: format!("/devices/{device}/profile?jid={CONTACT}"), token: token.clone() };
    let every_device: Vec<Target> = devices.iter().map(|device| profile(device)).collect();

    let alone = wrk::run(one.api(), &every_device, sizes.load).await;
    println!("  one node:    {alone}");

    // Node 1, running every device, dies; two nodes started at once take them all over.
    let killed = Instant::now();
    one.kill();
    disconnected(sim, &phones, sizes.reconnect_deadline).await;
    let (node_2, node_3) = (node("node-2"), node("node-3"));
    let (two, three) = tokio::join!(Gateway::start_with(sim, &node_2), Gateway::start_with(sim, &node_3));
    let (all_back, all_taken_over) = reconnected(sim, &phones, killed, sizes.reconnect_deadline).await;
    println!(
        "  {all_back} of node 1's {} devices connected again {:.1} s after its kill",
        phones.len(),
        all_taken_over.as_secs_f64()
    );

    let one = Gateway::start_with(sim, &node("node-1")).await;
    let nodes = [one.clone(), two, three];
    let spread = spread_over(&nodes, devices.len(), sizes.reconnect_deadline).await;
    for node in &nodes {
        for target in &every_device {
            answered(node, target, sizes.reconnect_deadline).await;
        }
    }
    println!(
        "  clients spread in {:.1} s by hand-offs; every device then answered on every node",
        spread.as_secs_f64()
    );
    let forwarded_before = forwarded(&nodes).await;
    let runs = load_each(&nodes, &every_device, sizes).await;
    let forwarded_per_request =
        (forwarded(&nodes).await - forwarded_before) / runs.iter().map(|run| run.requests).sum::<u64>().max(1) as f64;
    let together = Stats::combine(&runs);
    let three_rps: f64 = runs.iter().map(Stats::rps).sum();
    println!("  three nodes: {together} ({} together)", per_second(three_rps));

    // Node 1's calls on a device it runs against one another node runs, alternating.
    let owners = device_nodes(one.config(), TENANT);
    let local = owners.iter().find(|(_, node)| node.as_str() == "node-1").map(|(device, _)| profile(device));
    let remote = owners.iter().find(|(_, node)| node.as_str() != "node-1").map(|(device, _)| profile(device));
    let (local, remote) = (local.expect("a device node 1 runs"), remote.expect("a device another node runs"));
    let (mut local_runs, mut remote_runs) = (Vec::new(), Vec::new());
    for _ in 0..sizes.rounds {
        local_runs.push(wrk::run(one.api(), std::slice::from_ref(&local), sizes.load).await);
        remote_runs.push(wrk::run(one.api(), std::slice::from_ref(&remote), sizes.load).await);
    }
    let (local_stats, remote_stats) = (Stats::combine(&local_runs), Stats::combine(&remote_runs));
    println!("  node 1, a device it runs:        {local_stats}");
    println!("  node 1, a device another runs:   {remote_stats}");

    // Node 3 dies: its devices are taken over by the two others.
    let victims: Vec<&String> =
        devices.iter().filter(|device| owners.get(*device).is_some_and(|node| node == "node-3")).collect();
    let victim_phones: Vec<String> =
        victims.iter().map(|device| phones[devices.iter().position(|d| d == *device).unwrap()].clone()).collect();
    let killed = Instant::now();
    nodes[2].kill();
    disconnected(sim, &victim_phones, sizes.reconnect_deadline).await;
    let (back, taken_over) = reconnected(sim, &victim_phones, killed, sizes.reconnect_deadline).await;
    println!(
        "  {back} of node 3's {} devices connected again {:.1} s after its kill",
        victims.len(),
        taken_over.as_secs_f64()
    );
    let doubled = phones.iter().filter(|phone| sim.server().peak_connections_of(phone) > 1).count();

    let failures = alone.failures() + together.failures() + local_stats.failures() + remote_stats.failures();
    if !sizes.full {
        alone.assert_clean("one node");
        together.assert_clean("three nodes");
        local_stats.assert_clean("node 1, a device it runs");
        remote_stats.assert_clean("node 1, a device another node runs");
        assert_eq!(all_back, phones.len(), "node 1's devices are taken over");
        assert_eq!(back, victims.len(), "node 3's devices are taken over");
        assert_eq!(doubled, 0, "no device had two clients at once");
    }
    let throughput = three_rps / alone.rps();
    let latency = |figure: &str, of: fn(&Stats) -> u64| {
        Row::info(
            figure,
            millis(of(&local_stats)),
            millis(of(&remote_stats)),
            Some(of(&remote_stats) as f64 / of(&local_stats).max(1) as f64),
        )
    };
    Some(Table {
        title: "9. Three nodes on PostgreSQL vs one (baseline: one node, or a device the node runs)".into(),
        rows: vec![
            Row::info(
                "throughput: a wrk on each node (three times the clients)",
                per_second(alone.rps()),
                per_second(three_rps),
                Some(throughput),
            ),
            Row::info(
                "device calls forwarded per request (a profile makes several)",
                "0",
                format!("{forwarded_per_request:.2}"),
                None,
            ),
            latency("p50 latency, a device another node runs", |s| s.latency_us.p50),
            latency("p99 latency, a device another node runs", |s| s.latency_us.p99),
            Row::info(
                format!("takeover of all {} devices after kill -9 of their node", phones.len()),
                "—",
                format!("{:.1} s", all_taken_over.as_secs_f64()),
                None,
            )
            .target("≤ 10 s", all_back == phones.len() && all_taken_over <= Duration::from_secs(10)),
            Row::info(
                format!("takeover of node 3's {} devices after kill -9", victims.len()),
                "—",
                format!("{:.1} s", taken_over.as_secs_f64()),
                None,
            )
            .target("≤ 10 s", back == victims.len() && taken_over <= Duration::from_secs(10)),
            Row::info("devices with two clients at once", "—", doubled.to_string(), None).target("0", doubled == 0),
            Row::info("failed requests", alone.failures().to_string(), (failures - alone.failures()).to_string(), None)
                .target("0", failures == 0),
        ],
        notes: vec![format!(
            "{} devices linked on node 1, one PostgreSQL, wa-sim in the bench process, no cache in front of WhatsApp: \
             `GET /devices/{{d}}/profile?jid={CONTACT}` rotating over the devices, wrk {} against node 1 alone, then \
             against each of the three nodes at once (their sum); node 1 then alternates {} rounds on a device it runs \
             and one another node runs. A takeover is timed from the kill until wa-sim sees every device of the \
             killed node connected again (leases of 6 s): first node 1, running every device, with nodes 2 and 3 \
             started right after the kill; later node 3 of three. All processes share this machine's cores.",
            devices.len(),
            sizes.load,
            sizes.rounds
        )],
    })
}

/// Waits until wa-sim sees none of the accounts `phones` connected (their node was killed).
async fn disconnected(sim: &Sim, phones: &[String], patience: Duration) {
    let started = Instant::now();
    while phones.iter().any(|phone| sim.server().connections_of(phone) > 0) {
        assert!(started.elapsed() < patience, "the killed node's clients are still connected");
        tokio::time::sleep(link::POLL).await;
    }
}

/// Waits until wa-sim sees each of the accounts `phones` with one connection again, or until
/// `patience` has passed since `killed`; returns how many it then sees connected, and how
/// long after `killed`.
async fn reconnected(sim: &Sim, phones: &[String], killed: Instant, patience: Duration) -> (usize, Duration) {
    let connected = || phones.iter().filter(|phone| sim.server().connections_of(phone) == 1).count();
    while connected() < phones.len() && killed.elapsed() < patience {
        tokio::time::sleep(link::POLL).await;
    }
    (connected(), killed.elapsed())
}

/// Waits until the clients of the `devices` are spread over `nodes` (none runs more than its
/// fair share, the devices over the nodes rounded up, by `waedge_whatsapp_clients`); returns
/// how long it took.
async fn spread_over(nodes: &[Arc<Gateway>], devices: usize, patience: Duration) -> Duration {
    let started = Instant::now();
    let share = devices.div_ceil(nodes.len());
    loop {
        let mut clients = Vec::new();
        for node in nodes {
            clients.push(node.metric_sum("waedge_whatsapp_clients").await as usize);
        }
        if clients.iter().sum::<usize>() == devices && clients.iter().all(|&runs| runs <= share) {
            return started.elapsed();
        }
        assert!(started.elapsed() < patience, "the devices are not spread over the nodes: clients {clients:?}");
        tokio::time::sleep(link::POLL).await;
    }
}

/// Waits until `node` answers `target` with 200 (a device handed over answers
/// `DEVICE_NOT_CONNECTED` for a moment).
async fn answered(node: &Gateway, target: &Target, patience: Duration) {
    let started = Instant::now();
    loop {
        let reply = node.get(&target.path, &target.token).await;
        if reply.status == 200 {
            return;
        }
        assert!(started.elapsed() < patience, "GET {} is not answered: {}", target.path, reply.text);
        tokio::time::sleep(link::POLL).await;
    }
}

/// The forwarded calls answered on all `nodes` so far.
async fn forwarded(nodes: &[Arc<Gateway>]) -> f64 {
    let mut sum = 0.0;
    for node in nodes {
        sum += node.metric_sum(FORWARDED).await;
    }
    sum
}

/// `targets` under load on each of the three `nodes` at once: a `wrk` of its own each.
async fn load_each(nodes: &[Arc<Gateway>; 3], targets: &[Target], sizes: &Sizes) -> Vec<Stats> {
    let (a, b, c) = tokio::join!(
        wrk::run(nodes[0].api(), targets, sizes.load),
        wrk::run(nodes[1].api(), targets, sizes.load),
        wrk::run(nodes[2].api(), targets, sizes.load),
    );
    vec![a, b, c]
}

//! A tenant's busy components cannot take the machine: its guests get the CPU time of its
//! `cpu_millicores` and wait for more, while another tenant keeps being served.
//!
//! The CPU time is the process's own (`/proc/self/stat`), measured around the attack: it is
//! what the other tenants, the device sessions and the admin API would have lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::process::cpu_ticks;
use waedge_e2e::server::{Neighbour, TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, EVE, config};

/// CPU time this process has used, user and system (clock ticks of 10 ms on Linux).
fn process_cpu() -> Duration {
    Duration::from_millis(cpu_ticks("self").expect("/proc/self/stat (Linux)") * 10)
}

/// The value of `series` in a Prometheus text, e.g. `waedge_x{tenant="acme"}`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A gateway where globex serves the probe with a tenth of a core (a second's worth of burst:
/// ten ticks) and requests of `timeout_ms`.
async fn gateway_with_a_tenth_of_a_core_for_globex(timeout_ms: u64) -> Arc<TestGateway> {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = Arc::new(TestGateway::start(&config(None), &world).await);
    gw.deploy_probe().await;
    let limits = json!({"limits": {"request_timeout_ms": timeout_ms, "cpu_millicores": 100}});
    assert_eq!(gw.admin(Method::PATCH, "/v1/tenants/globex", limits).await.status, 200);
    gw
}

/// How many of globex's requests spin at once: sixteen per worker of the test's runtime.
const SPINNERS: usize = 64;

/// The tests of this file take turns: each measures the whole process's CPU time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_over_its_cpu_budget_is_slowed_down_and_the_others_are_not() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // globex's probe spins for the whole of its 3 s deadline.
    let gw = gateway_with_a_tenth_of_a_core_for_globex(3000).await;

    // acme's users come every 50 ms all along, and are served.
    let neighbour = Neighbour::start(&gw, "/devices/main/groups", ALICE, Duration::from_millis(50));

    let before = process_cpu();
    let started = Instant::now();
    // Many more guests than workers, as an attacker would send: each waits in tokio's queue
    // behind the others between its slices, and that wait must not hide its running time.
    let spinners: Vec<_> = (0..SPINNERS)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.get("/probe/loop", Some(EVE)).await })
        })
        .collect();
    for spinner in spinners {
        let reply = spinner.await.unwrap();
        assert_eq!(
            (reply.status, reply.json["error"]["code"].as_str()),
            (504, Some("COMPONENT_TIMEOUT")),
            "{}",
            reply.text
        );
    }
    let (wall, used) = (started.elapsed(), process_cpu() - before);
    eprintln!("the process used {used:?} of CPU in {wall:?}");
    assert!(neighbour.stop().await >= 10, "acme was served while globex spun");

    // The spinning guests would keep every core busy for the 3 s. Held to a tenth of a core
    // (plus its burst: a second of that rate), globex's share is a few tenths of a second; acme,
    // the test's own client and the gateway take the rest of the allowance.
    let allowance = wall.mul_f64(0.1) + Duration::from_millis(1500);
    assert!(used < allowance, "the process used {used:?} of CPU in {wall:?}; allowed {allowance:?}");

    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    let throttled = |tenant: &str| {
        metric(&metrics, &format!("waedge_guest_cpu_throttled_seconds_total{{tenant=\"{tenant}\"}}"))
            .unwrap_or_else(|| panic!("no throttled series for {tenant}: {metrics}"))
    };
    assert!(throttled("globex") > 1.0, "globex's guests waited: {metrics}");
    assert_eq!(throttled("acme"), 0.0, "acme never went over its share: {metrics}");
    let charged = metric(&metrics, "waedge_guest_cpu_seconds_total{tenant=\"globex\"}").expect("globex's CPU");
    assert!(charged > 0.1, "globex was charged for its spinning: {metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_a_guest_spends_waiting_on_the_host_is_not_charged() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let gw = gateway_with_a_tenth_of_a_core_for_globex(5000).await;
    // Thirty requests that each wait 300 ms in a host call, and compute next to nothing.
    // Charged a tick each for the wait (its epoch deadline goes by meanwhile), they would
    // overrun the burst threefold and wait for the budget.
    let sleepers: Vec<_> = (0..30)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.get("/probe/sleep?ms=300", Some(EVE)).await })
        })
        .collect();
    for sleeper in sleepers {
        let reply = sleeper.await.unwrap();
        assert_eq!((reply.status, reply.json["slept_ms"].as_u64()), (200, Some(300)), "{}", reply.text);
    }
    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    let series = "waedge_guest_cpu_throttled_seconds_total{tenant=\"globex\"}";
    assert_eq!(metric(&metrics, series), Some(0.0), "{metrics}");
}

//! Scenario 2, hot swap under load: the tenant's own copy of the devices API, in two versions,
//! serves the profile; the same `wrk` run as a steady baseline and then while the other
//! version is activated every 100 ms through the admin API.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use waedge::gateway::COMPONENT_HEADER;

use crate::Sizes;
use crate::edge::{Bench, TENANT};
use crate::gateway::{Gateway, LOG};
use crate::report::{Row, Table, millis, per_second};
use crate::sim::contact_profile;
use crate::versions;
use crate::wrk;

/// The tenant component's name.
const COMPONENT: &str = "profile";
/// How often the active version changes.
const SWAP_EVERY: Duration = Duration::from_millis(100);

/// Runs the scenario on `bench` (after scenario 1).
pub async fn run(bench: &Bench, sizes: &Sizes) -> Table {
    println!("\n2. Hot swap under load");
    let gateway = &bench.gateway;
    let first = gateway.deploy(TENANT, COMPONENT, versions::devices_api("swap-a")).await;
    let second = gateway.deploy(TENANT, COMPONENT, versions::devices_api("swap-b")).await;
    gateway.route(TENANT, "/devices", &format!("component:{COMPONENT}")).await;
    let path = contact_profile();
    let warm = gateway.get(&path, &bench.token).await;
    let served_by = warm.headers.get(COMPONENT_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let ours = format!("{TENANT}/{COMPONENT}@");
    assert!(
        warm.status == 200 && served_by.starts_with(&ours),
        "not served by {ours}… but `{served_by}`: {}",
        warm.text
    );

    let load = [bench.target(&path)];
    let steady = wrk::run(gateway.api(), &load, sizes.load).await;
    println!("  steady:   {steady}");
    // The second version is active: the swaps start with the first.
    let mut swaps = 0;
    let swapping = tokio::select! {
        stats = wrk::run(gateway.api(), &load, sizes.load) => stats,
        never = swap_forever(gateway, [&first, &second], &mut swaps) => match never {},
    };
    println!("  swapping: {swapping}; {swaps} swaps");
    if !sizes.full {
        steady.assert_clean("steady state");
        swapping.assert_clean("during swaps");
        assert!(
            swaps >= 3,
            "only {swaps} swaps in {:?}: activations are slow; see target/bench/{LOG}",
            sizes.load.duration
        );
    }
    let p99 = swapping.latency_us.p99 as f64 / steady.latency_us.p99.max(1) as f64;
    let failures = steady.failures() + swapping.failures();
    Table {
        title: "2. Hot swap under load (baseline: steady, measured: swapping)".into(),
        rows: vec![
            Row::info(
                "throughput",
                per_second(steady.rps()),
                per_second(swapping.rps()),
                Some(swapping.rps() / steady.rps()),
            ),
            Row::info("p99 latency", millis(steady.latency_us.p99), millis(swapping.latency_us.p99), Some(p99))
                .target("≤ 2.00×", p99 <= 2.0),
            Row::info("failed requests", steady.failures().to_string(), swapping.failures().to_string(), None)
                .target("0", failures == 0),
            Row::info("swaps done", "—", swaps.to_string(), None).target("≥ 3", swaps >= 3),
        ],
        notes: vec![format!(
            "`GET {path}` on `component:{COMPONENT}` (the devices API as a tenant component), wrk {}; \
             during the second run the other version is activated every {} ms.",
            sizes.load,
            SWAP_EVERY.as_millis()
        )],
    }
}

/// Activates `versions` in turn every [`SWAP_EVERY`], counting the activations in `swaps`,
/// until it is dropped.
async fn swap_forever(gateway: &Gateway, versions: [&str; 2], swaps: &mut usize) -> Infallible {
    let mut tick = tokio::time::interval(SWAP_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        gateway.activate(TENANT, COMPONENT, versions[*swaps % 2]).await;
        *swaps += 1;
    }
}

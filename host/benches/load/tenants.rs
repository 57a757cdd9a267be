//! Scenario 4, many tenants: each with a linked device and a token, first all on the shared
//! built-in devices API, then each on a component of its own (a distinct compiled artefact);
//! memory and latency with `wrk` rotating through every tenant's requests.

use crate::Sizes;
use crate::gateway::Gateway;
use crate::link::{self, Link};
use crate::report::{Progress, Row, Table, megabytes, millis, per_second};
use crate::sim::{Sim, contact_profile};
use crate::versions;
use crate::wrk::{self, Stats, Target};

/// Runs the scenario on a fresh gateway.
pub async fn run(sim: &mut Sim, sizes: &Sizes) -> Table {
    let count = sizes.tenants;
    println!("\n4. Many tenants ({count})");
    let gateway = Gateway::start(sim).await;
    let tenants: Vec<String> = (0..count).map(|i| format!("t{i:03}")).collect();
    for tenant in &tenants {
        gateway.create_tenant(tenant).await;
        gateway.route(tenant, "/devices", "builtin:devices-api").await;
    }
    let phones = sim.phones(count);
    let links =
        tenants.iter().zip(phones).map(|(tenant, phone)| Link { tenant: tenant.clone(), device: "main".into(), phone });
    link::link_all(&gateway, sim, links.collect()).await;
    let mut targets = Vec::new();
    for tenant in &tenants {
        targets.push(Target { path: contact_profile(), token: gateway.user_token(tenant, &["main"]).await });
    }

    let (shared, shared_rss) = measure(&gateway, &targets, sizes, "shared built-in").await;
    let mut progress = Progress::new("components deployed", count);
    for tenant in &tenants {
        gateway.deploy(tenant, "profile", versions::devices_api(tenant)).await;
        gateway.route(tenant, "/devices", "component:profile").await;
        progress.step();
    }
    let (own, own_rss) = measure(&gateway, &targets, sizes, "own components").await;
    let per_tenant = (own_rss - shared_rss) / count as f64;
    let p99 = own.latency_us.p99 as f64 / shared.latency_us.p99.max(1) as f64;
    Table {
        title: format!(
            "4. Many tenants: {count} (baseline: all on the shared built-in, measured: each its own component)"
        ),
        rows: vec![
            Row::info("RSS", megabytes(shared_rss), megabytes(own_rss), Some(own_rss / shared_rss)),
            Row::info("RSS per tenant component", "—", megabytes(per_tenant), None),
            Row::info("throughput", per_second(shared.rps()), per_second(own.rps()), Some(own.rps() / shared.rps())),
            Row::info("p99 latency", millis(shared.latency_us.p99), millis(own.latency_us.p99), Some(p99)),
            Row::info("failed requests", shared.failures().to_string(), own.failures().to_string(), None)
                .target("0", shared.failures() + own.failures() == 0),
        ],
        notes: vec![format!(
            "wrk {} rotating through the {count} tenants' `GET {}` with each tenant's token; \
             RSS (VmRSS of waedge) right after each run.",
            sizes.load,
            contact_profile()
        )],
    }
}

/// Warms every target with one request, loads them all in turn, and returns what `wrk`
/// measured and the gateway's memory right after.
async fn measure(gateway: &Gateway, targets: &[Target], sizes: &Sizes, what: &str) -> (Stats, f64) {
    for target in targets {
        let reply = gateway.get(&target.path, &target.token).await;
        assert_eq!(reply.status, 200, "{what}: {} answered {}", target.path, reply.text);
    }
    let stats = wrk::run(gateway.api(), targets, sizes.load).await;
    let rss = gateway.rss_mb();
    println!("  {what}: {stats}; RSS {}", megabytes(rss));
    if !sizes.full {
        stats.assert_clean(what);
    }
    (stats, rss)
}

//! Scenario 1, the Wasm edge: the built-in devices API's contact profile served by its
//! component against the native port of the same endpoint (`/native/…`, `bench` feature) on
//! the same gateway, tenant, token and cached session — alternating runs, so drift hits both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Sizes;
use crate::gateway::Gateway;
use crate::link::{self, Link};
use crate::report::{Row, Table, millis, per_second};
use crate::sim::{CONTACT, Sim, contact_profile};
use crate::wrk::{self, Stats, Target};

/// Instantiations of the built-in devices API, in `/metrics`.
const INSTANTIATIONS: &str = "waedge_component_instantiation_seconds_count{component=\"builtin:devices-api\"}";

/// The tenant of scenarios 1 and 2.
pub const TENANT: &str = "bench";

/// Tenant [`TENANT`] on its own gateway: device `main` linked, a token that may use it, and
/// `/devices` routed to the built-in devices API and `/native` to its native port.
pub struct Bench {
    /// Its gateway.
    pub gateway: Arc<Gateway>,
    /// The API token.
    pub token: String,
}

impl Bench {
    /// Starts the gateway and sets the tenant up; the contact writes to the device first, which
    /// is how it learns the contact's push name for a full profile.
    pub async fn setup(sim: &mut Sim) -> Bench {
        let gateway = Gateway::start(sim).await;
        gateway.create_tenant(TENANT).await;
        let phone = sim.phones(1).remove(0);
        let main = Link { tenant: TENANT.into(), device: "main".into(), phone: phone.clone() };
        link::link_all(&gateway, sim, vec![main]).await;
        let token = gateway.user_token(TENANT, &["main"]).await;
        gateway.route(TENANT, "/devices", "builtin:devices-api").await;
        gateway.route(TENANT, "/native", "native:devices-profile").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(sim.server().send_text(CONTACT, &phone, "hello").await, Ok(sent) if sent.devices > 0) {
            assert!(Instant::now() < deadline, "the contact's text never reached device main; see wa-sim's warnings");
            tokio::time::sleep(link::POLL).await;
        }
        loop {
            let reply = gateway.get(&contact_profile(), &token).await;
            if reply.json["data"]["profile"]["push_name"].is_string() {
                return Bench { gateway, token };
            }
            assert!(Instant::now() < deadline, "no push name for the contact after its text: {}", reply.text);
            tokio::time::sleep(link::POLL).await;
        }
    }

    /// `path` with this tenant's token, for `wrk`.
    pub fn target(&self, path: &str) -> Target {
        Target { path: path.into(), token: self.token.clone() }
    }
}

/// Runs the scenario on `bench`.
pub async fn run(bench: &Bench, sizes: &Sizes) -> Table {
    println!("\n1. Wasm edge vs native");
    let gateway = &bench.gateway;
    let component_path = contact_profile();
    let native_path = format!("/native{component_path}");
    let component = gateway.get(&component_path, &bench.token).await;
    let native = gateway.get(&native_path, &bench.token).await;
    assert_eq!((component.status, native.status), (200, 200), "component: {}\nnative: {}", component.text, native.text);
    assert_eq!(component.json, native.json, "the native baseline must answer exactly what the component answers");

    let (native_load, component_load) = ([bench.target(&native_path)], [bench.target(&component_path)]);
    let (mut native_runs, mut component_runs) = (Vec::new(), Vec::new());
    let instantiated_before = gateway.metric_sum(INSTANTIATIONS).await;
    for round in 1..=sizes.rounds {
        let native = wrk::run(gateway.api(), &native_load, sizes.load).await;
        println!("  round {round}/{}: native    {native}", sizes.rounds);
        let component = wrk::run(gateway.api(), &component_load, sizes.load).await;
        println!("  round {round}/{}: component {component}", sizes.rounds);
        native_runs.push(native);
        component_runs.push(component);
    }
    let (native, component) = (Stats::combine(&native_runs), Stats::combine(&component_runs));
    let instantiated = gateway.metric_sum(INSTANTIATIONS).await - instantiated_before;
    let served: u64 = component_runs.iter().map(|run| run.requests).sum();
    let instances_per_1000 = 1000.0 * instantiated / served.max(1) as f64;
    gateway.set_requests_per_instance(TENANT, Some(1)).await;
    let fresh = wrk::run(gateway.api(), &component_load, sizes.load).await;
    gateway.set_requests_per_instance(TENANT, None).await;
    println!("  fresh instance per request: {fresh}");
    if !sizes.full {
        native.assert_clean("native");
        component.assert_clean("component");
        fresh.assert_clean("component with requests_per_instance = 1");
    }
    let throughput = component.rps() / native.rps();
    let fresh_throughput = fresh.rps() / native.rps();
    let latency = |figure: &str, of: fn(&Stats) -> u64, measured: &Stats| {
        Row::info(
            figure,
            millis(of(&native)),
            millis(of(measured)),
            Some(of(measured) as f64 / of(&native).max(1) as f64),
        )
    };
    let failures = component.failures() + native.failures();
    Table {
        title: "1. Wasm edge vs native (baseline: native, measured: component)".into(),
        rows: vec![
            Row::info("throughput", per_second(native.rps()), per_second(component.rps()), Some(throughput))
                .target("≥ 0.85×", throughput >= 0.85),
            latency("p50 latency", |s| s.latency_us.p50, &component),
            latency("p99 latency", |s| s.latency_us.p99, &component),
            Row::info("instances made per 1000 component requests", "—", format!("{instances_per_1000:.1}"), None),
            Row::info("failed requests", native.failures().to_string(), component.failures().to_string(), None)
                .target("0", failures == 0),
            Row::info(
                "throughput, fresh instance per request",
                per_second(native.rps()),
                per_second(fresh.rps()),
                Some(fresh_throughput),
            ),
            latency("p99 latency, fresh instance per request", |s| s.latency_us.p99, &fresh),
        ],
        notes: vec![format!(
            "`GET {component_path}` against `/native{component_path}`: {} alternating rounds of wrk {} each (median latencies); \
             the last two rows with the tenant's `requests_per_instance = 1`. Failed = status ≥ 400 or socket errors.",
            sizes.rounds, sizes.load
        )],
    }
}

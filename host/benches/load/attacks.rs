//! Scenario 5, under attack: the victim tenant's users under `wrk` while each availability
//! attack of `tests/support/attacks.rs` runs (strangers from another address, or a hostile
//! tenant on the same gateway), against the same load with no attack, measured first in the
//! same run.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use waedge::runtime::capacity;

use crate::Sizes;
use crate::edge::{Bench, TENANT};
use crate::report::{Row, Table, millis, per_second};
use crate::sim::contact_profile;
use crate::support::attacks::{self, Aim, Attack, Tally};
use crate::wrk::{self, Stats};

/// The victim tenant's host name: all a stranger needs to aim at it.
const VICTIM_HOST: &str = "victim.test";
/// The hostile tenant.
const HOSTILE: &str = "hostile";
/// Tenants on the gateway in all (the victim, the hostile one and idle ones), between which
/// the instance pool's slots for requests in flight are split evenly.
const TENANTS: usize = 8;
/// The hostile tenant's request deadline: its CPU loops spin this long each, and its requests
/// may go on this long after their attack is stopped.
const HOSTILE_TIMEOUT_MS: u64 = 1_000;
/// Victim throughput under attack against idle that meets the target.
const THROUGHPUT_TARGET: f64 = 0.5;

/// Runs the scenario on `bench` (after scenarios 1 and 2) with a hostile tenant added.
pub async fn run(bench: &Bench, sizes: &Sizes) -> Table {
    println!("\n5. Under attack");
    let gateway = &bench.gateway;
    let tenant = format!("/v1/tenants/{TENANT}");
    gateway.admin(Method::PATCH, &tenant, json!({ "hosts": [VICTIM_HOST] })).await;
    gateway.route(TENANT, "/devices", "builtin:devices-api").await;
    gateway.create_tenant(HOSTILE).await;
    let limits = json!({ "limits": { "request_timeout_ms": HOSTILE_TIMEOUT_MS } });
    gateway.admin(Method::PATCH, &format!("/v1/tenants/{HOSTILE}"), limits).await;
    gateway.deploy(HOSTILE, "probe", waedge_e2e::guests::get("probe").to_vec()).await;
    gateway.route(HOSTILE, "/probe", "component:probe").await;
    let hostile = gateway.user_token(HOSTILE, &[]).await;
    for idle in 2..TENANTS {
        gateway.create_tenant(&format!("idle{idle}")).await;
    }
    let hello = gateway.get("/probe/hello", &hostile).await;
    assert_eq!(hello.status, 200, "the hostile tenant's probe: {}", hello.text);

    let path = contact_profile();
    let load = [bench.target(&path)];
    let aim = Aim::new(gateway.api(), VICTIM_HOST);
    let idle = wrk::run(gateway.api(), &load, sizes.load).await;
    println!("  idle: {idle}");
    if !sizes.full {
        idle.assert_clean("the victim, idle");
    }
    let share = capacity::split(capacity::SLOTS).1 / TENANTS;
    let attacks = [
        (Attack::SlowHeaders, 200),
        (Attack::ConnectionFlood, 512),
        (Attack::AnonymousFlood, 32),
        (Attack::SlowRequests { token: hostile.clone(), ms: HOSTILE_TIMEOUT_MS * 3 / 4 }, share + 32),
        (Attack::CpuLoop { token: hostile }, 64),
    ];
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "The victim: `GET {path}` with a user's token, wrk {} from 127.0.0.1; idle first, then during each attack \
         (started {} ms before wrk, stopped after it). The attackers come from 127.0.0.2 with the victim's host name \
         `{VICTIM_HOST}` and no token, or are tenant `{HOSTILE}` (the probe component of `tests/guests`, request \
         deadline {HOSTILE_TIMEOUT_MS} ms) on the same gateway; {TENANTS} tenants in all, so each tenant's share of \
         the instance pool is {share} instances. Default `[connections]` and limits otherwise. Each attack's workers \
         repeat one step: slowloris, a connection sending its headers a byte every 200 ms; connection flood, a new \
         connection for one request; anonymous flood, requests without a token on a kept-alive connection; slow \
         requests, the hostile tenant's `/probe/sleep` for 3/4 of its deadline; CPU loop, its `/probe/loop`. \
         Failed = status ≥ 400 or socket errors. What the attackers got:",
        sizes.load,
        ramp_up(sizes).as_millis()
    )];
    let mut after_hostile = false;
    for (attack, workers) in attacks {
        if after_hostile {
            // A request whose client has gone may hold its instance until it ends, at the
            // latest at its deadline: this measurement starts once the hostile tenant's are over.
            tokio::time::sleep(Duration::from_millis(HOSTILE_TIMEOUT_MS)).await;
        }
        after_hostile = matches!(attack, Attack::SlowRequests { .. } | Attack::CpuLoop { .. });
        let (victim, tally) = under(&attack, workers, &aim, gateway.api(), &load, sizes).await;
        println!("  {attack} ({workers} workers): victim {victim}; attacker {tally}");
        if !sizes.full {
            victim.assert_clean(&format!("the victim under {attack}"));
        }
        let throughput = victim.rps() / idle.rps();
        let p99 = victim.latency_us.p99 as f64 / idle.latency_us.p99.max(1) as f64;
        rows.push(
            Row::info(
                format!("throughput, {attack}"),
                per_second(idle.rps()),
                per_second(victim.rps()),
                Some(throughput),
            )
            .target(&format!("≥ {THROUGHPUT_TARGET:.2}×"), throughput >= THROUGHPUT_TARGET),
        );
        rows.push(Row::info(
            format!("p99 latency, {attack}"),
            millis(idle.latency_us.p99),
            millis(victim.latency_us.p99),
            Some(p99),
        ));
        rows.push(
            Row::info(
                format!("failed requests, {attack}"),
                idle.failures().to_string(),
                victim.failures().to_string(),
                None,
            )
            .target("0", idle.failures() + victim.failures() == 0),
        );
        notes.push(format!("- {attack}, {workers} workers: {tally}."));
    }
    let state = gateway.device_states(TENANT).await.remove("main").unwrap_or_default();
    if !sizes.full {
        assert_eq!(state, "connected", "the victim's device after the attacks");
    }
    rows.push(
        Row::info("victim's device after the attacks", "connected", state.clone(), None)
            .target("connected", state == "connected"),
    );
    Table {
        title: "5. Under attack (baseline: the victim idle, measured: the victim during each attack)".into(),
        rows,
        notes: vec![notes.join("\n")],
    }
}

/// How long an attack runs before `wrk` starts.
fn ramp_up(sizes: &Sizes) -> Duration {
    sizes.load.duration / 10
}

/// `wrk` on the victim's `load` while `attack` runs with `workers`: what it measured and what
/// the attacker got.
async fn under(
    attack: &Attack,
    workers: usize,
    aim: &Aim,
    api: &str,
    load: &[wrk::Target],
    sizes: &Sizes,
) -> (Stats, Tally) {
    let running = attacks::start(attack, aim, workers);
    tokio::time::sleep(ramp_up(sizes)).await;
    let victim = wrk::run(api, load, sizes.load).await;
    (victim, running.stop().await)
}

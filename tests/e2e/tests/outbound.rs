//! Outbound HTTP by host name, against a DNS server of the test's own (the test-only
//! `dns_server` setting): a name is looked up once and the connection goes to the address that
//! was checked, whatever the name answers next (DNS rebinding); an internal address inside an
//! IPv6 form is refused; and a DNS server that never answers costs the calling request its
//! deadline — with a DNS timeout its component can still report — and nobody else anything.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::dns::{DnsServer, Question};
use waedge_e2e::fixture::World;
use waedge_e2e::server::{Reply, TestGateway, fixtures};
use waedge_e2e::stub::{self, Stub};
use waedge_e2e::tenants::{ALICE, EVE, config};

/// A gateway whose outbound lookups go to `dns` (with `extra` top-level settings), and globex
/// serving the probe component at `/probe` under `tenant` (a tenant PATCH).
async fn gateway(dns: &DnsServer, extra: &str, tenant: Value) -> TestGateway {
    let settings = format!("dns_server = \"{}\"\n{extra}\n{}", dns.address(), config(None));
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&settings, &world).await;
    gw.deploy_probe().await;
    let patched = gw.admin(Method::PATCH, "/v1/tenants/globex", tenant).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    gw
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Two stubs on one port: one at 127.0.0.2, one at 127.0.0.1.
async fn stub_pair() -> (Stub, Stub) {
    for _ in 0..20 {
        let public = stub::listen(ip("127.0.0.2"), 0, "\"public\"").await.expect("a port on 127.0.0.2");
        if let Ok(loopback) = stub::listen(ip("127.0.0.1"), public.port, "\"loopback\"").await {
            return (public, loopback);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

fn fetched_bytes(reply: &Reply) -> Option<u64> {
    (reply.status == 200).then(|| reply.json["bytes"].as_u64()).flatten()
}

fn assert_refused(reply: &Reply, code: &str) {
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert!(reply.json["error"].as_str().unwrap_or_default().contains(code), "{code} in {}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_name_is_looked_up_once_and_only_the_checked_address_is_connected_to() {
    // `rebind.test` answers a "public" address first and loopback after that, with TTL 0: the
    // review's rebinding attack. No test may send traffic off this machine, so the public
    // address is 127.0.0.2, which this test build is told to treat as public
    // (`public_test_addresses`); it stands for any address that passes the check. A listener
    // on each address, on the same port, shows where the connection went. The check itself is
    // proven by the second request, and every address class by the unit tests of
    // `capability::outbound::address`.
    let dns = DnsServer::start(|name, question, nth| match (name, question) {
        ("rebind.test", Question::A) => Some(vec![ip(if nth == 1 { "127.0.0.2" } else { "127.0.0.1" })]),
        ("nat64.test", Question::Aaaa) => Some(vec![ip("64:ff9b::7f00:1")]), // NAT64 of 127.0.0.1
        ("private.test", Question::A) => Some(vec![ip("127.0.0.1")]),
        _ => Some(vec![]),
    })
    .await;
    let (public, loopback) = stub_pair().await;
    let tenant = json!({"outbound_hosts": ["rebind.test", "nat64.test", "private.test"]});
    let gw = gateway(&dns, "public_test_addresses = [\"127.0.0.2\"]", tenant).await;
    let fetch = |host: &str, port: u16| format!("/probe/fetch?url=http://{host}:{port}/");

    // The first request: one lookup, and the connection goes to the address it checked.
    let first = gw.get(&fetch("rebind.test", public.port), Some(EVE)).await;
    assert_eq!(fetched_bytes(&first), Some("\"public\"".len() as u64), "{}", first.text);
    assert_eq!(dns.asked("rebind.test", Question::A), 1, "looked up once, not again to connect");
    assert_eq!((public.connections(), loopback.connections()), (1, 0));

    // The next lookup answers loopback: refused, and nothing reaches the loopback listener.
    let second = gw.get(&fetch("rebind.test", public.port), Some(EVE)).await;
    assert_refused(&second, "DestinationIpProhibited");
    assert_eq!(dns.asked("rebind.test", Question::A), 2);
    assert_eq!((public.connections(), loopback.connections()), (1, 0), "the loopback listener heard nothing");

    // Loopback inside an IPv6 form is found out too.
    assert_refused(&gw.get(&fetch("nat64.test", loopback.port), Some(EVE)).await, "DestinationIpProhibited");
    assert_eq!(loopback.connections(), 0);

    // A host on the tenant's private allow-list may resolve to loopback, and is connected to.
    let private =
        gw.admin(Method::PATCH, "/v1/tenants/globex", json!({"outbound_private_hosts": ["private.test"]})).await;
    assert_eq!(private.status, 200, "{}", private.text);
    let reached = gw.get(&fetch("private.test", loopback.port), Some(EVE)).await;
    assert_eq!(fetched_bytes(&reached), Some("\"loopback\"".len() as u64), "{}", reached.text);
    assert_eq!(loopback.connections(), 1);

    let metrics = gw.admin_as(Method::GET, "/metrics", None, Value::Null).await.text;
    let refusals = metrics
        .lines()
        .find(|line| {
            line.starts_with("waedge_sandbox_violations_total{tenant=\"globex\"")
                && line.contains("limit=\"outbound_address\"")
        })
        .unwrap_or_else(|| panic!("an outbound_address violation in\n{metrics}"));
    assert!(refusals.ends_with(" 2"), "{refusals}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_dns_server_costs_the_caller_its_deadline_and_nobody_else_anything() {
    let dns = DnsServer::start(|_, _, _| None).await;
    let tenant = json!({"limits": {"request_timeout_ms": 2000}, "outbound_hosts": ["slow.test"]});
    let gw = Arc::new(gateway(&dns, "", tenant).await);

    // 32 of globex's requests wait on lookups that are never answered…
    let started = Instant::now();
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let reply = gw.get("/probe/fetch?url=http://slow.test/", Some(EVE)).await;
                (reply, started.elapsed())
            })
        })
        .collect();

    // …while acme's requests and the admin listener's readiness check answer promptly.
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1500) {
        let asked = Instant::now();
        let acme = gw.get("/devices/main/groups", Some(ALICE)).await;
        assert_eq!(acme.status, 200, "{}", acme.text);
        let ready = gw.admin_as(Method::GET, "/readyz", None, Value::Null).await;
        assert_eq!(ready.status, 200, "{}", ready.text);
        slowest = slowest.max(asked.elapsed());
    }
    assert!(slowest < Duration::from_secs(1), "acme and /readyz took up to {slowest:?}");

    // Each lookup gave up just before its request's 2 s deadline, and the component answered
    // with the DNS timeout.
    for caller in callers {
        let (reply, elapsed) = caller.await.unwrap();
        assert_refused(&reply, "DnsTimeout");
        assert!(elapsed > Duration::from_millis(1500) && elapsed < Duration::from_millis(3000), "{elapsed:?}");
    }
    assert!(dns.asked("slow.test", Question::A) >= 1, "the lookups reached the DNS server");
}

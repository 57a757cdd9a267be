//! What all tenants share stays shared: one tenant filling its part of the instance pool, or
//! piling up host memory through `wasi:http` resources, is stopped with a named limit while
//! another tenant's requests keep succeeding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use waedge::runtime::Runtime;
use waedge_e2e::guests;
use waedge_e2e::host::{Answer, Host};
use waedge_e2e::tenants::{ALICE, EVE};

/// Held by each test of this file: the memory one measures is the gateway's, not the other
/// test's.
static ALONE: Mutex<()> = Mutex::const_new(());

/// acme's requests, one after another until `stop` is set: every answer.
fn neighbour(host: &Arc<Host>, stop: &Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Answer>> {
    let (host, stop) = (host.clone(), stop.clone());
    tokio::spawn(async move {
        let mut answers = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            answers.push(host.get("/devices/main/groups", ALICE).await);
        }
        answers
    })
}

/// Checks that acme was served, and only with 200s.
fn assert_all_served(answers: &[Answer]) {
    assert!(answers.len() > 5, "acme was served throughout: {} requests", answers.len());
    if let Some(failed) = answers.iter().find(|a| a.status != 200) {
        panic!("acme failed while globex filled what they share: {failed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenant_cannot_take_the_instance_pool() {
    let _alone = ALONE.lock().await;
    // 16 slots: 4 for idle instances, 12 for requests in flight, 6 for each of the 2 tenants.
    let host = Arc::new(Host::new(Runtime::with_slots(16).expect("the runtime starts")));
    host.deploy("globex", "probe", guests::get("probe"));

    let fillers: Vec<_> = (0..20)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.get("/probe/sleep?ms=2000", EVE).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acme = neighbour(&host, &stop);
    let mut filled = Vec::new();
    for filler in fillers {
        filled.push(filler.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    assert_all_served(&acme.await.unwrap());

    let served = filled.iter().filter(|a| a.status == 200).count();
    let refused: Vec<_> = filled.iter().filter(|a| a.status != 200).collect();
    assert_eq!(served, 6, "globex's share is 6 instances: {filled:?}");
    for answer in &refused {
        assert_eq!((answer.status, answer.error_code().as_deref()), (503, Some("CAPACITY")), "{answer:?}");
        assert!(answer.text.contains("share of the instance pool"), "{answer:?}");
    }
}

/// The resident memory of this process (the gateway runs in it), and its peak since
/// [`reset_peak`], in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() << 10
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak resident memory to the current one.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("the peak resident memory can be reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_memory_held_for_a_component_is_bounded() {
    let _alone = ALONE.lock().await;
    let host = Arc::new(Host::new(Runtime::new().expect("the runtime starts")));
    host.deploy("globex", "probe", guests::get("probe"));

    // A header larger than the fields limit stops the component with the named limit.
    let large = host.get("/probe/fields?n=1&kb=16", EVE).await;
    assert_eq!((large.status, large.error_code().as_deref()), (500, Some("COMPONENT_RESOURCE_LIMIT")), "{large:?}");
    assert!(large.text.contains("headers or trailers larger than 8192 bytes"), "{large:?}");
    // Warm the allocator and the instance pool up, so growth below is the bombs' alone.
    assert_eq!(host.get("/probe/fields?n=100&kb=4", EVE).await.status, 200);

    reset_peak();
    let (before, _) = memory();
    let stop = Arc::new(AtomicBool::new(false));
    let acme = neighbour(&host, &stop);
    // 8 requests at once, each making 10,000 fields of 4 KiB and keeping every one.
    let bombs: Vec<_> = (0..8)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.get("/probe/fields?n=10000&kb=4", EVE).await })
        })
        .collect();
    for bomb in bombs {
        let answer = bomb.await.unwrap();
        assert_eq!(
            (answer.status, answer.error_code().as_deref()),
            (500, Some("COMPONENT_RESOURCE_LIMIT")),
            "{answer:?}"
        );
    }
    let (_, peak) = memory();
    stop.store(true, Ordering::Relaxed);
    assert_all_served(&acme.await.unwrap());
    // Each request may hold 1,000 fields of at most 8 KiB: 8 MiB, 64 MiB for all 8.
    let grown = peak.saturating_sub(before);
    assert!(grown < 96 << 20, "the gateway grew by {} MiB", grown >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsent_bodies_hold_little_host_memory() {
    let _alone = ALONE.lock().await;
    let host = Arc::new(Host::new(Runtime::new().expect("the runtime starts")));
    host.deploy("globex", "probe", guests::get("probe"));
    // Warm up, so growth below is the bodies' alone.
    assert_eq!(host.get("/probe/bodies?n=10&kb=1024", EVE).await.status, 200);

    reset_peak();
    let (before, _) = memory();
    // 4 requests, each writing 1 MiB into each of 200 bodies it never sends.
    for _ in 0..4 {
        let answer = host.get("/probe/bodies?n=200&kb=1024", EVE).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let json: serde_json::Value = serde_json::from_str(&answer.text).unwrap();
        let taken = json["taken"].as_u64().unwrap();
        assert!(taken <= (200 * 16) << 10, "the host buffered {taken} bytes of unsent bodies");
    }
    let (_, peak) = memory();
    let grown = peak.saturating_sub(before);
    assert!(grown < 64 << 20, "the gateway grew by {} MiB", grown >> 20);
}

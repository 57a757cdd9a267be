//! Ownership with fencing, on a PostgreSQL server of the test's own: a device's lease is
//! held by one node at a time, a takeover waits for expiry, and the former owner's writes are
//! refused from the takeover on.

use std::sync::Arc;
use std::time::Duration;

use wacore::store::error::StoreError;
use wacore::store::traits::{DeviceStore, ProtocolStore, SignalStore};
use waedge_device_pg::{Database, DeviceState, Error, Lease, Leases};
use waedge_test_postgres::Postgres;

/// A server and a database on it, with `nodes` nodes connected, each with leases of `ttl`.
async fn cluster(nodes: usize, ttl: Duration) -> (Postgres, Arc<Database>, Vec<Leases>) {
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap().expect("PostgreSQL starts");
    let url = server.create_database().expect("a database");
    let db = Arc::new(Database::connect(&url, 2).await.expect("connects and migrates"));
    let leases = (0..nodes).map(|n| Leases::new(db.clone(), format!("node-{n}"), ttl)).collect();
    (server, db, leases)
}

fn is_fenced(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(source) if matches!(source.downcast_ref::<Error>(), Some(Error::Fenced { .. })))
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn one_owner_at_a_time_and_the_former_owner_is_fenced() {
    let (_server, db, nodes) = cluster(2, Duration::from_millis(600)).await;
    let first = nodes[0].acquire("acme", "main").await.unwrap().expect("a free device is taken");
    assert_eq!(nodes[1].acquire("acme", "main").await.unwrap(), None, "a held lease is not taken");
    let old = DeviceState::new(db.clone(), &first);
    old.put_session("123@s.whatsapp.net", b"ratchet 1").await.unwrap();
    let mut fenced = old.fenced();
    assert!(!*fenced.borrow());

    // The first node stops renewing: once the lease expired, the second one takes it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = nodes[1].acquire("acme", "main").await.unwrap().expect("an expired lease is taken");
    assert_eq!((second.id, second.epoch), (first.id, first.epoch + 1), "a takeover moves the epoch on");
    assert!(nodes[0].renew().await.unwrap().is_empty(), "the former owner learns it lost the lease");

    // Its state is the former owner's: nothing to pair again.
    let new = DeviceState::new(db.clone(), &second);
    assert_eq!(new.get_session("123@s.whatsapp.net").await.unwrap().as_deref(), Some(&b"ratchet 1"[..]));

    // Every kind of write of the former owner is refused, and it is told to stop.
    let refused = old.put_session("123@s.whatsapp.net", b"stale ratchet").await.unwrap_err();
    assert!(is_fenced(&refused), "a stale upsert is refused: {refused:?}");
    assert!(*fenced.borrow_and_update(), "the former owner is told");
    assert!(is_fenced(&old.delete_session("123@s.whatsapp.net").await.unwrap_err()));
    assert!(is_fenced(&old.delete_expired_sent_messages(i64::MAX).await.unwrap_err()));
    assert!(is_fenced(&old.save(&wacore::store::Device::new()).await.unwrap_err()));
    assert_eq!(
        new.get_session("123@s.whatsapp.net").await.unwrap().as_deref(),
        Some(&b"ratchet 1"[..]),
        "no stale write landed"
    );
    new.put_session("123@s.whatsapp.net", b"ratchet 2").await.unwrap();
    assert_eq!(new.get_session("123@s.whatsapp.net").await.unwrap().as_deref(), Some(&b"ratchet 2"[..]));
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_fresh_state_refuses_a_stale_epoch_it_never_wrote_with() {
    let (_server, db, nodes) = cluster(1, Duration::from_secs(30)).await;
    let lease = nodes[0].acquire("acme", "main").await.unwrap().unwrap();
    nodes[0].release(&lease).await.unwrap();
    let again = nodes[0].acquire("acme", "main").await.unwrap().expect("a released lease is free at once");
    assert_eq!(again.epoch, lease.epoch + 1);
    let stale = DeviceState::new(db.clone(), &lease);
    // A statement that writes nothing anyway (nothing expired) still learns the epoch moved.
    assert!(is_fenced(&stale.delete_expired_pending_inbound(0).await.unwrap_err()));
    let current = DeviceState::new(db, &again);
    assert_eq!(current.delete_expired_pending_inbound(0).await.unwrap(), 0, "the owner's no-op is no error");
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn renewing_keeps_every_lease_a_node_holds() {
    let (_server, _db, nodes) = cluster(2, Duration::from_millis(800)).await;
    let mut held = vec![
        nodes[0].acquire("acme", "main").await.unwrap().unwrap(),
        nodes[0].acquire("acme", "support").await.unwrap().unwrap(),
        nodes[0].acquire("globex", "main").await.unwrap().unwrap(),
    ];
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut renewed = nodes[0].renew().await.unwrap();
        renewed.sort_by_key(|lease| lease.id);
        held.sort_by_key(|lease| lease.id);
        assert_eq!(renewed, held, "all three renewed, epochs unchanged");
        assert_eq!(nodes[1].acquire("acme", "support").await.unwrap(), None, "a renewed lease is not taken");
    }
    // Leases are per device: another tenant's device of the same name is another lease.
    assert_ne!(held[0].id, held[2].id);
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn writes_racing_a_takeover_never_land_after_it() {
    let (_server, db, nodes) = cluster(2, Duration::from_millis(300)).await;
    let first = nodes[0].acquire("acme", "main").await.unwrap().unwrap();
    let old = Arc::new(DeviceState::new(db.clone(), &first));
    // The former owner writes as fast as it can, counting up, until it is refused.
    let writer = tokio::spawn({
        let old = old.clone();
        async move {
            let mut n = 0u64;
            loop {
                n += 1;
                match old.put_session("race@s.whatsapp.net", n.to_string().as_bytes()).await {
                    Ok(()) => {}
                    Err(e) if is_fenced(&e) => return n,
                    Err(e) => panic!("unexpected error: {e:?}"),
                }
            }
        }
    });
    let second = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(lease) = nodes[1].acquire("acme", "main").await.unwrap() {
            break lease;
        }
    };
    let new = DeviceState::new(db.clone(), &second);
    let at_takeover = new.get_session("race@s.whatsapp.net").await.unwrap();
    let refused_at = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the former owner's writes are refused after the takeover")
        .unwrap();
    assert!(refused_at > 1, "the former owner wrote before the takeover");
    assert_eq!(
        new.get_session("race@s.whatsapp.net").await.unwrap(),
        at_takeover,
        "a write of the former owner landed after the takeover"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn nodes_starting_together_migrate_once_and_a_device_outlives_its_node() {
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap().unwrap();
    let url = server.create_database().unwrap();
    let (a, b, c) = tokio::join!(Database::connect(&url, 1), Database::connect(&url, 1), Database::connect(&url, 1));
    let (a, _b, _c) = (Arc::new(a.unwrap()), b.unwrap(), c.unwrap());

    let leases = Leases::new(a.clone(), "node-a", Duration::from_secs(30));
    let lease = leases.acquire("acme", "main").await.unwrap().unwrap();
    let state = DeviceState::new(a.clone(), &lease);
    assert!(!state.exists().await.unwrap());
    assert_eq!(i64::from(state.create().await.unwrap()), lease.id);
    let mut device = state.load().await.unwrap().expect("created");
    device.pn = Some("15551234567@s.whatsapp.net".parse().unwrap());
    device.push_name = "Front desk".into();
    state.save(&device).await.unwrap();
    leases.release(&lease).await.unwrap();
    drop((state, leases, a));

    // Another node, with connections of its own, takes the device and finds it linked.
    let db = Arc::new(Database::connect(&url, 1).await.unwrap());
    let other: Lease =
        Leases::new(db.clone(), "node-b", Duration::from_secs(30)).acquire("acme", "main").await.unwrap().unwrap();
    let loaded = DeviceState::new(db, &other).load().await.unwrap().expect("the device is there");
    assert_eq!(loaded.pn, device.pn);
    assert_eq!(loaded.push_name, "Front desk");
    assert_eq!(loaded.identity_key.public_key.public_key_bytes(), device.identity_key.public_key.public_key_bytes());
    assert_eq!(loaded.registration_id, device.registration_id);
}

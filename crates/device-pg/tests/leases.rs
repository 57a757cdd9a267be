//! Ownership with fencing, on a PostgreSQL server of the test's own: a device's lease is
//! held by one node at a time, a takeover waits for expiry (or a release), and the former
//! owner's writes are refused from the takeover on — even the ones under way at that moment.

mod common;

use std::sync::Arc;
use std::time::Duration;

use wacore::store::error::StoreError;
use wacore::store::traits::{DeviceStore, MsgSecretEntry, MsgSecretStore, ProtocolStore, SignalStore};
use waedge_device_pg::{Database, DeviceState, Error, Lease, Leases};

use common::{database, expire, raw};

/// Leases that never expire by themselves in a test: expiry is forced ([`expire`]).
const LONG: Duration = Duration::from_secs(120);

fn is_fenced(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(source) if matches!(source.downcast_ref::<Error>(), Some(Error::Fenced { .. })))
}

fn node(db: &Arc<Database>, name: &str) -> Leases {
    Leases::new(db.clone(), name, LONG)
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn one_owner_at_a_time_and_every_write_of_the_former_owner_is_refused() {
    let (_server, url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let first = a.acquire("acme", "main").await.unwrap().expect("a free device is taken");
    assert_eq!(b.acquire("acme", "main").await.unwrap(), None, "a held lease is not taken");
    let old = DeviceState::new(db.clone(), &first);
    old.create().await.unwrap();
    old.put_session("123@s.whatsapp.net", b"ratchet 1").await.unwrap();
    old.store_sent_message("123@s.whatsapp.net", "m1", b"payload").await.unwrap();
    old.store_received_tc_token("123@lid", b"token", 100).await.unwrap();
    let mut fenced = old.fenced();
    assert!(!*fenced.borrow());

    // A stops renewing: once its lease expired, B takes it with the next epoch.
    expire(&url, "acme", "main").await;
    let second = b.acquire("acme", "main").await.unwrap().expect("an expired lease is taken");
    assert_eq!((second.id, second.epoch), (first.id, first.epoch + 1), "a takeover moves the epoch on");
    assert!(a.renew().await.unwrap().is_empty(), "the former owner learns it lost the lease");

    // The state is the former owner's: nothing to pair again.
    let new = DeviceState::new(db.clone(), &second);
    assert_eq!(new.get_session("123@s.whatsapp.net").await.unwrap().as_deref(), Some(&b"ratchet 1"[..]));

    // Every kind of write of the former owner is refused — upserts, batches, deletes, a take,
    // an upsert that would not have fired, an insert that would have done nothing — and it is
    // told to stop.
    let refused = old.put_session("123@s.whatsapp.net", b"stale ratchet").await.unwrap_err();
    assert!(is_fenced(&refused), "a stale upsert is refused: {refused:?}");
    assert!(*fenced.borrow_and_update(), "the former owner is told");
    let writes: Vec<Result<(), StoreError>> = vec![
        old.delete_session("123@s.whatsapp.net").await,
        old.put_sessions_batch(&[("9@s.whatsapp.net".into(), bytes::Bytes::from_static(b"x"))]).await,
        old.take_sent_message("123@s.whatsapp.net", "m1").await.map(drop),
        old.store_received_tc_token("123@lid", b"older", 50).await,
        old.create().await.map(drop),
        old.save(&wacore::store::Device::new()).await,
        old.delete_expired_sent_messages(0).await.map(drop),
        old.put_msg_secrets(vec![MsgSecretEntry::new(
            &"123@s.whatsapp.net".parse().unwrap(),
            &"123@s.whatsapp.net".parse().unwrap(),
            "m2",
            [1; 32],
            0,
            0,
        )])
        .await
        .map(drop),
    ];
    for (n, write) in writes.into_iter().enumerate() {
        assert!(write.as_ref().is_err_and(is_fenced), "write {n} of the former owner: {write:?}");
    }
    assert_eq!(new.get_session("123@s.whatsapp.net").await.unwrap().as_deref(), Some(&b"ratchet 1"[..]));
    assert_eq!(new.take_sent_message("123@s.whatsapp.net", "m1").await.unwrap().as_deref(), Some(&b"payload"[..]));
    new.put_session("123@s.whatsapp.net", b"ratchet 2").await.unwrap();
    assert_eq!(new.get_session("123@s.whatsapp.net").await.unwrap().as_deref(), Some(&b"ratchet 2"[..]));
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_release_fences_at_once_and_only_the_owner_can_release() {
    let (_server, _url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let lease = a.acquire("acme", "main").await.unwrap().unwrap();
    let state = DeviceState::new(db.clone(), &lease);
    b.release(&lease).await.unwrap();
    assert_eq!(b.acquire("acme", "main").await.unwrap(), None, "another node's release changes nothing");
    state.put_identity("1@s.whatsapp.net", [1; 32]).await.unwrap();

    a.release(&lease).await.unwrap();
    // Even a statement that writes nothing anyway learns the epoch moved.
    let refused = state.delete_expired_pending_inbound(0).await.unwrap_err();
    assert!(is_fenced(&refused), "{refused:?}");
    let again = b.acquire("acme", "main").await.unwrap().expect("a released lease is free at once");
    assert_eq!(again.epoch, lease.epoch + 2, "the release and the takeover each moved the epoch on");
    let current = DeviceState::new(db, &again);
    assert_eq!(current.delete_expired_pending_inbound(0).await.unwrap(), 0, "the owner's no-op is no error");
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn renewing_keeps_a_nodes_leases_and_not_an_expired_one_or_a_former_lifes() {
    let (_server, url, db) = database().await;
    let a = node(&db, "a");
    let mut held =
        vec![a.acquire("acme", "main").await.unwrap().unwrap(), a.acquire("globex", "main").await.unwrap().unwrap()];
    let mut renewed = a.renew().await.unwrap();
    renewed.sort_by_key(|lease| lease.id);
    held.sort_by_key(|lease| lease.id);
    assert_eq!(renewed, held, "both renewed, epochs unchanged; a tenant's device is a lease of its own");

    // A lease that expired is not renewed, even if nobody took it.
    expire(&url, "globex", "main").await;
    assert_eq!(a.renew().await.unwrap(), held[..1].to_vec());

    // Node a restarts under the same name: its former life's lease is not its own.
    let restarted = node(&db, "a");
    assert!(restarted.renew().await.unwrap().is_empty());
    assert_eq!(restarted.acquire("acme", "main").await.unwrap(), None, "held until it expires");
    expire(&url, "acme", "main").await;
    assert!(restarted.acquire("acme", "main").await.unwrap().is_some());
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn of_nodes_racing_for_a_device_exactly_one_wins() {
    let (_server, _url, db) = database().await;
    node(&db, "registrar").register("acme", "main").await.unwrap();
    let mut racing = tokio::task::JoinSet::new();
    for n in 0..6 {
        let node = node(&db, &format!("node-{n}"));
        racing.spawn(async move { node.acquire("acme", "main").await.unwrap() });
    }
    let won: Vec<Option<Lease>> = racing.join_all().await;
    assert_eq!(won.iter().filter(|lease| lease.is_some()).count(), 1, "{won:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_takeover_waits_for_a_write_under_way_and_a_write_waits_for_a_takeover_under_way() {
    let (_server, url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let first = a.acquire("acme", "main").await.unwrap().unwrap();

    // A write under way holds the lease row FOR KEY SHARE, as every fenced write does: a
    // takeover (an epoch change, a key update) waits for it.
    let mut writer = raw(&url).await;
    let write = writer.transaction().await.unwrap();
    write
        .query_one("SELECT id FROM wa_devices WHERE id = $1 AND epoch = $2 FOR KEY SHARE", &[&first.id, &first.epoch])
        .await
        .unwrap();
    expire(&url, "acme", "main").await;
    let takeover = tokio::spawn(async move { b.acquire("acme", "main").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!takeover.is_finished(), "the takeover waits for the write under way");
    write.commit().await.unwrap();
    let second = takeover.await.unwrap().unwrap().expect("and then takes the device");

    // A takeover under way (an uncommitted epoch change): a write waits for it, then is refused.
    let state = DeviceState::new(db.clone(), &second);
    let mut taker = raw(&url).await;
    let takeover = taker.transaction().await.unwrap();
    takeover.execute("UPDATE wa_devices SET epoch = epoch + 1 WHERE id = $1", &[&second.id]).await.unwrap();
    let write = tokio::spawn(async move { state.put_session("1@s.whatsapp.net", b"late").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the write waits for the takeover under way");
    takeover.commit().await.unwrap();
    assert!(is_fenced(&write.await.unwrap().unwrap_err()), "and is then refused");
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn writes_racing_a_takeover_never_land_after_it() {
    let (_server, url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let first = a.acquire("acme", "main").await.unwrap().unwrap();
    let old = Arc::new(DeviceState::new(db.clone(), &first));
    // The former owner writes as fast as it can until it is refused.
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    expire(&url, "acme", "main").await;
    let second = b.acquire("acme", "main").await.unwrap().expect("the expired lease is taken");
    // The new owner's first write must be the last word: no write of the former owner lands
    // after it.
    let new = DeviceState::new(db.clone(), &second);
    new.put_session("race@s.whatsapp.net", b"new owner").await.unwrap();
    let refused_at = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the former owner's writes are refused after the takeover")
        .unwrap();
    assert!(refused_at > 1, "the former owner wrote before the takeover");
    assert_eq!(new.get_session("race@s.whatsapp.net").await.unwrap().as_deref(), Some(&b"new owner"[..]));
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn nodes_starting_together_migrate_once_and_a_device_outlives_its_node() {
    let (_server, url, _db) = database().await;
    let (a, b, c) = tokio::join!(Database::connect(&url, 1), Database::connect(&url, 1), Database::connect(&url, 1));
    let (a, _b, _c) = (Arc::new(a.unwrap()), b.unwrap(), c.unwrap());

    let leases = node(&a, "a");
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
    let other = node(&db, "b").acquire("acme", "main").await.unwrap().unwrap();
    let loaded = DeviceState::new(db, &other).load().await.unwrap().expect("the device is there");
    assert_eq!(loaded.pn, device.pn);
    assert_eq!(loaded.push_name, "Front desk");
    assert_eq!(loaded.identity_key.public_key.public_key_bytes(), device.identity_key.public_key.public_key_bytes());
    assert_eq!(loaded.registration_id, device.registration_id);
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn clearing_a_state_leaves_it_as_never_linked_and_only_its_owner_can() {
    let (_server, url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let main = a.acquire("acme", "main").await.unwrap().unwrap();
    let other = a.acquire("acme", "other").await.unwrap().unwrap();
    let (state, neighbour) = (DeviceState::new(db.clone(), &main), DeviceState::new(db.clone(), &other));
    for device in [&state, &neighbour] {
        device.create().await.unwrap();
        device.put_session("1@s.whatsapp.net", b"ratchet").await.unwrap();
        device.store_prekey(7, b"prekey", true).await.unwrap();
        device.set_sender_key_status("g@g.us", &[("1:2@s.whatsapp.net", true)]).await.unwrap();
    }
    state.clear().await.unwrap();
    assert!(!state.exists().await.unwrap(), "no device data");
    assert_eq!(state.get_session("1@s.whatsapp.net").await.unwrap(), None);
    assert_eq!(state.load_prekey(7).await.unwrap(), None);
    assert!(state.get_sender_key_devices("g@g.us").await.unwrap().is_empty());
    assert!(neighbour.exists().await.unwrap(), "another device keeps its state");
    assert!(neighbour.get_session("1@s.whatsapp.net").await.unwrap().is_some());

    expire(&url, "acme", "other").await;
    b.acquire("acme", "other").await.unwrap().unwrap();
    assert!(is_fenced(&neighbour.clear().await.unwrap_err()), "a former owner cannot clear");
    assert!(DeviceState::new(db, &b.renew().await.unwrap()[0]).exists().await.unwrap());
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_forgotten_device_is_gone_and_its_former_owner_is_fenced() {
    let (_server, _url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let lease = a.acquire("acme", "main").await.unwrap().unwrap();
    let state = DeviceState::new(db.clone(), &lease);
    state.create().await.unwrap();
    b.forget("acme", "main").await.unwrap();
    assert!(is_fenced(&state.put_session("1@s.whatsapp.net", b"x").await.unwrap_err()));
    assert!(a.renew().await.unwrap().is_empty());
    let again = b.acquire("acme", "main").await.unwrap().expect("a new device of the same name");
    assert!(!DeviceState::new(db, &again).exists().await.unwrap(), "with none of the old state");
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn the_state_a_device_stopped_in_reaches_its_next_holder_and_only_the_holder_records_it() {
    let (_server, _url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let lease = a.acquire("acme", "main").await.unwrap().unwrap();
    assert_eq!(lease.stopped_as, None);
    b.stopped_as(&lease, Some("replaced")).await.unwrap();
    a.stopped_as(&lease, Some("logged-out")).await.unwrap();
    a.release(&lease).await.unwrap();
    let next = b.acquire("acme", "main").await.unwrap().unwrap();
    assert_eq!(next.stopped_as.as_deref(), Some("logged-out"), "the holder's record, not another node's");
    b.stopped_as(&next, None).await.unwrap();
    assert_eq!(b.renew().await.unwrap()[0].stopped_as, None, "cleared once it connects again");
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn holdings_show_who_holds_each_device_until_when() {
    let (_server, url, db) = database().await;
    let (a, b) = (node(&db, "a"), node(&db, "b"));
    let main = a.acquire("acme", "main").await.unwrap().unwrap();
    b.acquire("acme", "backup").await.unwrap().unwrap();
    a.register("globex", "main").await.unwrap();
    expire(&url, "acme", "backup").await;

    let holdings = a.holdings().await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> =
        holdings.iter().map(|h| (h.tenant.as_str(), h.device.as_str(), h.owner.as_deref())).collect();
    let owner = seen[1].2.expect("acme/main is held");
    assert!(owner.starts_with("a#") && owner.len() == "a#".len() + 8, "{owner}");
    assert_eq!(seen, [("acme", "backup", None), ("acme", "main", Some(owner)), ("globex", "main", None)]);
    assert_eq!(holdings[1].epoch, main.epoch);
    let left = holdings[1].expires_in.expect("a lease held has time left");
    assert!(left > LONG - Duration::from_secs(30) && left <= LONG, "{left:?}");
    assert_eq!(holdings[0].expires_in, None, "an expired lease has none");
}

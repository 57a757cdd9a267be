//! The storage behaviour whatsapp-rust relies on, written once and run against every
//! [`Backend`]: whatsapp-rust's own SQLite store (the reference, `tests/sqlite.rs`) and the
//! PostgreSQL backend of this crate, which must behave the same.
//!
//! Every check is a `pub async fn` taking a `&dyn Backend` that panics with a message naming
//! the operation and the mismatch. Each check uses keys no other check uses, so they can run
//! one after another on one backend instance; [`all`] does exactly that. [`fresh`] pins the
//! empty state and must run first, on a backend nothing has written to. [`isolated`] takes two
//! backends that share one database but belong to different devices.
//!
//! Where the SQLite store does something a reader would not guess from the trait docs, the
//! check pins what SQLite does (the PostgreSQL backend has to match it) and its doc or an
//! inline comment says "SQLite". Operations whose result depends on the store's wall clock
//! (the age of sent messages and buffered inbound messages) are checked with cutoffs ten years
//! away from now, so neither clock skew nor a slow run can flip them.
//!
//! Every batch write is also checked with the same key twice in one batch (the
//! `*_batch_duplicates` checks, and `msg_secret_merge` for `put_msg_secrets`): SQLite applies the
//! rows one after the other, so a backend that sends a batch as one multi-row upsert has to merge
//! it per key first (PostgreSQL refuses to let `ON CONFLICT DO UPDATE` touch a row twice).

// This module is compiled into several test binaries, and not every binary calls every check
// (a binary without a second device never calls `isolated`).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::client_profile::ClientProfile;
use wacore::store::device::DEVICE_PROPS;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry, PendingInboundKey,
    PendingInboundRow, TcTokenEntry,
};
use wacore::store::{CachedNoiseCert, CachedServerCertChain, Device};
use whatsapp_rust::waproto::whatsapp::{ADVSignedDeviceIdentity, DeviceProps};

/// A realistic unix-seconds timestamp (2023-11-14) that the caller-supplied timestamps of the
/// checks are offsets from.
const T0: i64 = 1_700_000_000;

/// Ten years in seconds: how far from "now" the wall-clock-dependent cutoffs are placed.
const TEN_YEARS: i64 = 10 * 365 * 24 * 60 * 60;

/// A cutoff later than every caller-supplied timestamp the checks write (2100-01-01), used to
/// sweep a table clean before a check that counts deleted rows.
const SWEEP_ALL: i64 = 4_102_444_800;

/// Unwraps a store result, panicking with the operation's name and the error's full chain.
trait Must<T> {
    fn must(self, op: &str) -> T;
}

impl<T> Must<T> for wacore::store::error::Result<T> {
    #[track_caller]
    fn must(self, op: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => panic!("{op} failed: {error:?}"),
        }
    }
}

fn now_secs() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("clock fits in i64")
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

/// One row of a `put_sessions_batch` / `put_sender_keys_batch` call.
fn batch_row(address: &str, record: &[u8]) -> (Arc<str>, Bytes) {
    (Arc::from(address), Bytes::copy_from_slice(record))
}

fn mac(index: &[u8; 32], value: &[u8]) -> AppStateMutationMAC {
    AppStateMutationMAC { index_mac: index.to_vec(), value_mac: value.to_vec() }
}

fn lid_entry(lid: &str, phone: &str, created_at: i64, updated_at: i64, source: &str) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.to_string(),
        phone_number: phone.to_string(),
        created_at,
        updated_at,
        learning_source: source.to_string(),
    }
}

fn assert_lid_entry(actual: Option<LidPnMappingEntry>, expected: &LidPnMappingEntry, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what}: no mapping, expected {expected:?}"));
    let fields = |e: &LidPnMappingEntry| {
        (e.lid.clone(), e.phone_number.clone(), e.created_at, e.updated_at, e.learning_source.clone())
    };
    assert_eq!(
        fields(&actual),
        fields(expected),
        "{what}: (lid, phone_number, created_at, updated_at, learning_source)"
    );
}

fn tc(token: &[u8], token_timestamp: i64, sender_timestamp: Option<i64>) -> TcTokenEntry {
    TcTokenEntry { token: token.to_vec(), token_timestamp, sender_timestamp }
}

/// `(token, token_timestamp, sender_timestamp)` of a stored tc token, for comparisons.
async fn tc_state(backend: &dyn Backend, jid: &str) -> Option<(Vec<u8>, i64, Option<i64>)> {
    backend
        .get_tc_token(jid)
        .await
        .must("get_tc_token")
        .map(|entry| (entry.token, entry.token_timestamp, entry.sender_timestamp))
}

fn secret_entry(
    chat: &str,
    sender: &str,
    msg_id: &str,
    secret: [u8; 32],
    expires_at: i64,
    message_ts: i64,
) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: Arc::from(chat),
        sender: Arc::from(sender),
        msg_id: Arc::from(msg_id),
        secret,
        expires_at,
        message_ts,
    }
}

/// `(device_id, key_index, is_hosted)` of every device in a registry record, in stored order.
fn device_tuples(devices: &[DeviceInfo]) -> Vec<(u32, Option<u32>, bool)> {
    devices.iter().map(|d| (d.device_id, d.key_index, d.is_hosted)).collect()
}

fn assert_device_list(actual: Option<DeviceListRecord>, expected: &DeviceListRecord, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what}: no device list, expected {expected:?}"));
    assert_eq!(actual.user, expected.user, "{what}: user");
    assert_eq!(
        device_tuples(&actual.devices),
        device_tuples(&expected.devices),
        "{what}: devices (device_id, key_index, is_hosted), in order"
    );
    assert_eq!(actual.timestamp, expected.timestamp, "{what}: timestamp");
    assert_eq!(actual.phash, expected.phash, "{what}: phash");
    assert_eq!(actual.raw_id, expected.raw_id, "{what}: raw_id");
}

fn assert_hash_state(actual: &HashState, expected: &HashState, what: &str) {
    assert_eq!(actual.version, expected.version, "{what}: version");
    assert_eq!(actual.hash, expected.hash, "{what}: hash");
    assert_eq!(actual.index_value_map, expected.index_value_map, "{what}: index_value_map");
    assert_eq!(actual.mac_mismatch_fatal, expected.mac_mismatch_fatal, "{what}: mac_mismatch_fatal");
}

/// Every serializable field of a device (the ones a store must persist; the runtime-only
/// ones are `#[serde(skip)]`), keyed by field name.
fn device_fields(device: &Device) -> BTreeMap<String, Value> {
    match serde_json::to_value(device).expect("Device serializes to JSON") {
        Value::Object(fields) => fields.into_iter().collect(),
        other => panic!("Device serialized to a non-object: {other}"),
    }
}

fn assert_same_device(loaded: &Device, saved: &Device, what: &str) {
    let loaded = device_fields(loaded);
    let saved = device_fields(saved);
    for (field, expected) in &saved {
        assert_eq!(loaded.get(field), Some(expected), "{what}: device field `{field}` differs from what was saved");
    }
    assert_eq!(loaded.keys().collect::<Vec<_>>(), saved.keys().collect::<Vec<_>>(), "{what}: device field set");
}

/// The runtime-only fields of a loaded device (`#[serde(skip)]`, not stored): SQLite's `load`
/// sets `device_props` to `DEVICE_PROPS` and `client_profile` to `ClientProfile::web()`,
/// whatever the saved device carried; a backend that forgot them would leave an empty
/// `DeviceProps`.
fn assert_runtime_defaults(loaded: &Device, what: &str) {
    assert_eq!(*loaded.device_props, *DEVICE_PROPS, "{what}: device_props must be DEVICE_PROPS (SQLite)");
    // ClientProfile has no PartialEq; its derived Debug shows every field.
    assert_eq!(
        format!("{:?}", loaded.client_profile),
        format!("{:?}", ClientProfile::web()),
        "{what}: client_profile must be ClientProfile::web() (SQLite)"
    );
}

/// Runs every single-backend check except [`fresh`], in order, on one backend.
///
/// The device round trip goes first: it saves the device row, and SQLite's LID-mapping table
/// has a foreign key to that row (`put_lid_mapping` fails without it), so the suite also runs
/// on a backend where `fresh` did not `create()` one.
pub async fn all(backend: &dyn Backend) {
    device_round_trip(backend).await;
    identities(backend).await;
    identities_batch_duplicates(backend).await;
    sessions(backend).await;
    sessions_batch_duplicates(backend).await;
    signal_state_for_user(backend).await;
    prekeys(backend).await;
    prekeys_batch_duplicates(backend).await;
    signed_prekeys(backend).await;
    sender_keys(backend).await;
    sender_keys_batch_duplicates(backend).await;
    app_state_sync_keys(backend).await;
    app_state_sync_key_validation(backend).await;
    app_state_versions(backend).await;
    mutation_macs(backend).await;
    mutation_macs_batch_duplicates(backend).await;
    sender_key_devices(backend).await;
    sender_key_status_batch_duplicates(backend).await;
    lid_pn_mappings(backend).await;
    lid_mappings_batch_duplicates(backend).await;
    base_keys(backend).await;
    device_registry(backend).await;
    device_lists_batch_duplicates(backend).await;
    group_metadata(backend).await;
    tc_tokens(backend).await;
    tc_token_expiry(backend).await;
    tc_token_sender_timestamp(backend).await;
    tc_token_received(backend).await;
    sent_messages(backend).await;
    pending_inbound(backend).await;
    pending_inbound_batch_duplicates(backend).await;
    msg_secrets(backend).await;
    msg_secret_merge(backend).await;
    msg_secret_expiry(backend).await;
}

/// The state of a backend nothing has written to, and the device row's life cycle: every read
/// is empty (no prekeys means `get_max_prekey_id` is 0, an unknown collection's version is
/// `HashState::default()`, every sweep deletes 0 rows); `exists()` is false and `load()` is
/// `None` until `create()`, after which `exists()` is true and `load()` returns an unpaired
/// device without JIDs. Must run first, on a fresh backend.
pub async fn fresh(backend: &dyn Backend) {
    let b = backend;
    assert_eq!(b.get_max_prekey_id().await.must("get_max_prekey_id"), 0, "get_max_prekey_id when empty");
    assert!(
        b.load_all_signed_prekeys().await.must("load_all_signed_prekeys").is_empty(),
        "load_all_signed_prekeys when empty"
    );
    assert_eq!(
        b.get_latest_sync_key_id().await.must("get_latest_sync_key_id"),
        None,
        "get_latest_sync_key_id when empty"
    );
    assert!(b.get_all_lid_mappings().await.must("get_all_lid_mappings").is_empty(), "get_all_lid_mappings when empty");
    assert!(
        b.get_all_tc_token_jids().await.must("get_all_tc_token_jids").is_empty(),
        "get_all_tc_token_jids when empty"
    );
    assert!(
        !b.has_signal_state_for_user("15550000000").await.must("has_signal_state_for_user"),
        "has_signal_state_for_user when empty"
    );
    assert_hash_state(
        &b.get_version("regular").await.must("get_version"),
        &HashState::default(),
        "get_version when empty",
    );
    let far_future = now_secs() + TEN_YEARS;
    assert_eq!(
        b.delete_expired_sent_messages(far_future).await.must("delete_expired_sent_messages"),
        0,
        "delete_expired_sent_messages when empty"
    );
    assert_eq!(
        b.delete_expired_pending_inbound(far_future).await.must("delete_expired_pending_inbound"),
        0,
        "delete_expired_pending_inbound when empty"
    );
    assert_eq!(
        b.delete_expired_msg_secrets(SWEEP_ALL).await.must("delete_expired_msg_secrets"),
        0,
        "delete_expired_msg_secrets when empty"
    );
    assert_eq!(
        b.delete_expired_tc_tokens(SWEEP_ALL, SWEEP_ALL).await.must("delete_expired_tc_tokens"),
        0,
        "delete_expired_tc_tokens when empty"
    );

    assert!(!b.exists().await.must("exists"), "exists() before create()");
    assert!(b.load().await.must("load").is_none(), "load() before create()");
    b.create().await.must("create");
    assert!(b.exists().await.must("exists"), "exists() after create()");
    let created = b.load().await.must("load").unwrap_or_else(|| panic!("load() after create() returned None"));
    assert_eq!(created.pn, None, "a created device has no phone-number JID yet");
    assert_eq!(created.lid, None, "a created device has no LID yet");
    assert_ne!(created.registration_id, 0, "a created device has a registration id");
    assert!(created.account.is_none(), "a created device is not paired");
    assert_runtime_defaults(&created, "load() after create()");
}

/// Identity keys: put/load/overwrite/delete per exact address (`user:1@…` and `user:2@…` are
/// different keys), and `put_identities_batch` stores every row of the batch, upserting ones
/// that exist.
pub async fn identities(backend: &dyn Backend) {
    let b = backend;
    let dev1 = "15550100001:1@s.whatsapp.net";
    let dev2 = "15550100001:2@s.whatsapp.net";
    let primary = "15550100001@s.whatsapp.net";

    assert_eq!(b.load_identity(dev1).await.must("load_identity"), None, "unknown identity");
    b.put_identity(dev1, [0x11; 32]).await.must("put_identity");
    b.put_identity(dev2, [0x12; 32]).await.must("put_identity");
    assert_eq!(b.load_identity(dev1).await.must("load_identity"), Some([0x11; 32]), "identity of {dev1}");
    assert_eq!(b.load_identity(dev2).await.must("load_identity"), Some([0x12; 32]), "identity of {dev2}");
    assert_eq!(
        b.load_identity(primary).await.must("load_identity"),
        None,
        "{primary} shares the user but is another address"
    );

    b.put_identity(dev1, [0x13; 32]).await.must("put_identity");
    assert_eq!(b.load_identity(dev1).await.must("load_identity"), Some([0x13; 32]), "put_identity overwrites");

    b.delete_identity(dev1).await.must("delete_identity");
    assert_eq!(b.load_identity(dev1).await.must("load_identity"), None, "deleted identity");
    assert_eq!(
        b.load_identity(dev2).await.must("load_identity"),
        Some([0x12; 32]),
        "deleting {dev1} must not touch {dev2}"
    );
    b.delete_identity(dev1).await.must("delete_identity of an absent address");

    let batch_a = "15550100002@s.whatsapp.net";
    let batch_b = "15550100002:3@s.whatsapp.net";
    let batch_c = "100000100002:3@lid";
    b.put_identities_batch(&[]).await.must("put_identities_batch(empty)");
    b.put_identities_batch(&[
        (Arc::from(batch_a), [0x21; 32]),
        (Arc::from(batch_b), [0x22; 32]),
        (Arc::from(dev2), [0x23; 32]),
        (Arc::from(batch_c), [0x24; 32]),
    ])
    .await
    .must("put_identities_batch");
    for (address, key) in [(batch_a, 0x21), (batch_b, 0x22), (dev2, 0x23), (batch_c, 0x24)] {
        assert_eq!(
            b.load_identity(address).await.must("load_identity"),
            Some([key; 32]),
            "identity of {address} after put_identities_batch"
        );
    }
}

/// `put_identities_batch` with an address twice in one batch, for a new address and for one
/// already stored: as if the rows were written one after the other, so the last row wins.
/// SQLite: one upsert per row, in order, in one transaction.
pub async fn identities_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let stored = "15552100001:1@s.whatsapp.net";
    let new = "15552100002@s.whatsapp.net";
    let once = "100002100003:4@lid";
    b.put_identity(stored, [0x21; 32]).await.must("put_identity");
    b.put_identities_batch(&[
        (Arc::from(new), [0x22; 32]),
        (Arc::from(stored), [0x23; 32]),
        (Arc::from(once), [0x24; 32]),
        (Arc::from(new), [0x25; 32]),
        (Arc::from(stored), [0x26; 32]),
    ])
    .await
    .must("put_identities_batch with duplicate addresses");
    for (address, key) in [(new, 0x25), (stored, 0x26), (once, 0x24)] {
        assert_eq!(
            b.load_identity(address).await.must("load_identity"),
            Some([key; 32]),
            "identity of {address} after a put_identities_batch with duplicates: the last row wins (SQLite)"
        );
    }
}

/// Sessions: put/get/has/overwrite/delete per exact address, device-scoped (`user:1@…`,
/// `user:2@…` and `user@…` are three sessions), separate from identities; and
/// `put_sessions_batch` stores every row, upserting ones that exist.
pub async fn sessions(backend: &dyn Backend) {
    let b = backend;
    let dev1 = "15550200001:1@s.whatsapp.net";
    let dev2 = "15550200001:2@s.whatsapp.net";
    let primary = "15550200001@s.whatsapp.net";

    assert_eq!(b.get_session(dev1).await.must("get_session"), None, "unknown session");
    assert!(!b.has_session(dev1).await.must("has_session"), "has_session of an unknown address");

    b.put_session(dev1, b"session-1").await.must("put_session");
    b.put_session(dev2, b"session-2").await.must("put_session");
    assert_eq!(b.get_session(dev1).await.must("get_session").as_deref(), Some(&b"session-1"[..]), "session of {dev1}");
    assert_eq!(b.get_session(dev2).await.must("get_session").as_deref(), Some(&b"session-2"[..]), "session of {dev2}");
    assert!(b.has_session(dev1).await.must("has_session"), "has_session after put_session");
    assert!(!b.has_session(primary).await.must("has_session"), "{primary} shares the user but has no session");

    b.put_identity(primary, [0x31; 32]).await.must("put_identity");
    assert!(!b.has_session(primary).await.must("has_session"), "an identity is not a session");

    b.put_session(dev1, b"session-1b").await.must("put_session");
    assert_eq!(
        b.get_session(dev1).await.must("get_session").as_deref(),
        Some(&b"session-1b"[..]),
        "put_session overwrites"
    );

    b.delete_session(dev1).await.must("delete_session");
    assert_eq!(b.get_session(dev1).await.must("get_session"), None, "deleted session");
    assert!(!b.has_session(dev1).await.must("has_session"), "has_session after delete_session");
    assert!(b.has_session(dev2).await.must("has_session"), "deleting {dev1} must not touch {dev2}");
    b.delete_session(dev1).await.must("delete_session of an absent address");

    let batch_a = "15550200002@s.whatsapp.net";
    let batch_b = "15550200002:5@s.whatsapp.net";
    let batch_c = "100000200002@lid";
    b.put_sessions_batch(&[]).await.must("put_sessions_batch(empty)");
    b.put_sessions_batch(&[
        batch_row(batch_a, b"batch-a"),
        batch_row(dev2, b"session-2b"),
        batch_row(batch_b, b"batch-b"),
        batch_row(batch_c, b"batch-c"),
    ])
    .await
    .must("put_sessions_batch");
    for (address, record) in
        [(batch_a, &b"batch-a"[..]), (dev2, b"session-2b"), (batch_b, b"batch-b"), (batch_c, b"batch-c")]
    {
        assert_eq!(
            b.get_session(address).await.must("get_session").as_deref(),
            Some(record),
            "session of {address} after put_sessions_batch"
        );
        assert!(b.has_session(address).await.must("has_session"), "has_session of {address}");
    }
}

/// `put_sessions_batch` with an address twice in one batch, for a new address and for one
/// already stored: the last row wins (SQLite: one upsert per row, in order).
pub async fn sessions_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let stored = "15552200001:1@s.whatsapp.net";
    let new = "100002200002:3@lid";
    let once = "15552200003@s.whatsapp.net";
    b.put_session(stored, b"stored-1").await.must("put_session");
    b.put_sessions_batch(&[
        batch_row(stored, b"stored-2"),
        batch_row(new, b"new-1"),
        batch_row(stored, b"stored-3"),
        batch_row(once, b"once"),
        batch_row(new, b"new-2"),
    ])
    .await
    .must("put_sessions_batch with duplicate addresses");
    for (address, record) in [(stored, &b"stored-3"[..]), (new, b"new-2"), (once, b"once")] {
        assert_eq!(
            b.get_session(address).await.must("get_session").as_deref(),
            Some(record),
            "session of {address} after a put_sessions_batch with duplicates: the last row wins (SQLite)"
        );
    }
}

/// `has_signal_state_for_user(user)`: true when a session OR an identity exists under
/// `user@server` or `user:dev@server` (any server, any device), false otherwise; the user must
/// match a whole user part, so `1555030001` is not fooled by state for `15550300012` or
/// `11555030001`.
pub async fn signal_state_for_user(backend: &dyn Backend) {
    let b = backend;
    let has =
        |user: &'static str| async move { b.has_signal_state_for_user(user).await.must("has_signal_state_for_user") };
    let user = "1555030001";

    // State for users that merely contain `user`: a longer user, a user with a prefix.
    b.put_session("15550300012@s.whatsapp.net", b"s").await.must("put_session");
    b.put_identity("15550300013:2@s.whatsapp.net", [1; 32]).await.must("put_identity");
    b.put_session("11555030001@s.whatsapp.net", b"s").await.must("put_session");
    b.put_identity("11555030001:4@lid", [2; 32]).await.must("put_identity");
    assert!(!has(user).await, "{user} has no state; 15550300012 / 11555030001 must not count");
    assert!(!has("155503000").await, "a shorter prefix of a user with state");

    assert!(has("15550300012").await, "session at user@server");
    assert!(has("15550300013").await, "identity at user:dev@server");
    assert!(has("11555030001").await, "session and identity");

    b.put_session("1555030001:7@s.whatsapp.net", b"s").await.must("put_session");
    assert!(has(user).await, "session at user:dev@server");
    b.delete_session("1555030001:7@s.whatsapp.net").await.must("delete_session");
    assert!(!has(user).await, "after the only session was deleted");

    b.put_identity("1555030001@lid", [3; 32]).await.must("put_identity");
    assert!(has(user).await, "identity at user@server (another server)");
    b.delete_identity("1555030001@lid").await.must("delete_identity");
    assert!(!has(user).await, "after the only identity was deleted");
}

/// One-time prekeys: store (single and batch, both upserts), load, `load_prekeys_batch`
/// returning exactly the requested ids that exist, remove, `mark_prekeys_uploaded` never
/// resurrecting a removed (or inventing an unknown) key and not altering a stored record, and
/// `get_max_prekey_id` being the largest id currently stored (not a high-water mark).
pub async fn prekeys(backend: &dyn Backend) {
    let b = backend;
    b.store_prekey(1001, b"pk-1001", false).await.must("store_prekey");
    assert_eq!(b.load_prekey(1001).await.must("load_prekey").as_deref(), Some(&b"pk-1001"[..]), "prekey 1001");
    assert_eq!(b.load_prekey(1999).await.must("load_prekey"), None, "unknown prekey");

    b.store_prekeys_batch(&[], true).await.must("store_prekeys_batch(empty)");
    b.store_prekeys_batch(
        &[
            (1002, Bytes::from_static(b"pk-1002")),
            (1003, Bytes::from_static(b"pk-1003")),
            (1004, Bytes::from_static(b"pk-1004")),
        ],
        true,
    )
    .await
    .must("store_prekeys_batch");
    for id in [1002u32, 1003, 1004] {
        assert_eq!(
            b.load_prekey(id).await.must("load_prekey").as_deref(),
            Some(format!("pk-{id}").as_bytes()),
            "prekey {id} after store_prekeys_batch"
        );
    }

    b.store_prekey(1001, b"pk-1001b", true).await.must("store_prekey");
    assert_eq!(
        b.load_prekey(1001).await.must("load_prekey").as_deref(),
        Some(&b"pk-1001b"[..]),
        "store_prekey overwrites"
    );
    b.store_prekeys_batch(&[(1003, Bytes::from_static(b"pk-1003b"))], false).await.must("store_prekeys_batch");
    assert_eq!(
        b.load_prekey(1003).await.must("load_prekey").as_deref(),
        Some(&b"pk-1003b"[..]),
        "store_prekeys_batch overwrites"
    );
    assert_eq!(b.get_max_prekey_id().await.must("get_max_prekey_id"), 1004, "get_max_prekey_id");

    let loaded = b.load_prekeys_batch(&[1001, 1999, 1003, 1002]).await.must("load_prekeys_batch");
    let loaded: Vec<(u32, Vec<u8>)> = sorted(loaded.into_iter().map(|(id, r)| (id, r.to_vec())).collect());
    assert_eq!(
        loaded,
        vec![(1001, b"pk-1001b".to_vec()), (1002, b"pk-1002".to_vec()), (1003, b"pk-1003b".to_vec())],
        "load_prekeys_batch returns exactly the requested ids that exist"
    );
    assert!(
        b.load_prekeys_batch(&[]).await.must("load_prekeys_batch(empty)").is_empty(),
        "load_prekeys_batch of no ids"
    );

    b.remove_prekey(1002).await.must("remove_prekey");
    assert_eq!(b.load_prekey(1002).await.must("load_prekey"), None, "removed prekey");
    b.remove_prekey(1002).await.must("remove_prekey of an absent id");

    // The upload snapshot held 1002 (consumed since), 1003, and 1005 (never stored).
    b.mark_prekeys_uploaded(&[1002, 1003, 1005]).await.must("mark_prekeys_uploaded");
    b.mark_prekeys_uploaded(&[]).await.must("mark_prekeys_uploaded(empty)");
    assert_eq!(
        b.load_prekey(1002).await.must("load_prekey"),
        None,
        "mark_prekeys_uploaded resurrected removed prekey 1002"
    );
    assert_eq!(
        b.load_prekey(1005).await.must("load_prekey"),
        None,
        "mark_prekeys_uploaded created never-stored prekey 1005"
    );
    assert_eq!(
        b.load_prekey(1003).await.must("load_prekey").as_deref(),
        Some(&b"pk-1003b"[..]),
        "mark_prekeys_uploaded must keep the record"
    );
    let loaded = b.load_prekeys_batch(&[1001, 1002, 1003, 1004, 1005]).await.must("load_prekeys_batch");
    assert_eq!(
        sorted(loaded.into_iter().map(|(id, _)| id).collect()),
        vec![1001, 1003, 1004],
        "load_prekeys_batch after remove / mark_prekeys_uploaded"
    );

    b.remove_prekey(1004).await.must("remove_prekey");
    assert_eq!(
        b.get_max_prekey_id().await.must("get_max_prekey_id"),
        1003,
        "get_max_prekey_id is the largest id still stored"
    );
}

/// `store_prekeys_batch` with an id twice in one batch, for a new id and for one already
/// stored: the last row wins and the id is stored once (SQLite: one upsert per row, in order).
pub async fn prekeys_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    b.store_prekey(2301, b"pk-2301", false).await.must("store_prekey");
    b.store_prekeys_batch(
        &[
            (2302, Bytes::from_static(b"pk-2302a")),
            (2301, Bytes::from_static(b"pk-2301b")),
            (2302, Bytes::from_static(b"pk-2302b")),
            (2301, Bytes::from_static(b"pk-2301c")),
        ],
        true,
    )
    .await
    .must("store_prekeys_batch with duplicate ids");
    let loaded = b.load_prekeys_batch(&[2301, 2302]).await.must("load_prekeys_batch");
    assert_eq!(
        sorted(loaded.into_iter().map(|(id, record)| (id, record.to_vec())).collect()),
        vec![(2301, b"pk-2301c".to_vec()), (2302, b"pk-2302b".to_vec())],
        "ids twice in one store_prekeys_batch: one row each, the last record wins (SQLite)"
    );
}

/// Signed prekeys: store/load/overwrite, `load_all_signed_prekeys` returning every stored
/// (id, record) and nothing else, and remove.
pub async fn signed_prekeys(backend: &dyn Backend) {
    let b = backend;
    assert_eq!(b.load_signed_prekey(11).await.must("load_signed_prekey"), None, "unknown signed prekey");
    b.store_signed_prekey(11, b"spk-11").await.must("store_signed_prekey");
    b.store_signed_prekey(12, b"spk-12").await.must("store_signed_prekey");
    assert_eq!(
        b.load_signed_prekey(11).await.must("load_signed_prekey").as_deref(),
        Some(&b"spk-11"[..]),
        "signed prekey 11"
    );
    b.store_signed_prekey(11, b"spk-11b").await.must("store_signed_prekey");
    assert_eq!(
        b.load_signed_prekey(11).await.must("load_signed_prekey").as_deref(),
        Some(&b"spk-11b"[..]),
        "store_signed_prekey overwrites"
    );
    assert_eq!(
        sorted(b.load_all_signed_prekeys().await.must("load_all_signed_prekeys")),
        vec![(11, b"spk-11b".to_vec()), (12, b"spk-12".to_vec())],
        "load_all_signed_prekeys"
    );
    b.remove_signed_prekey(12).await.must("remove_signed_prekey");
    assert_eq!(b.load_signed_prekey(12).await.must("load_signed_prekey"), None, "removed signed prekey");
    assert_eq!(
        b.load_all_signed_prekeys().await.must("load_all_signed_prekeys"),
        vec![(11, b"spk-11b".to_vec())],
        "load_all_signed_prekeys after remove"
    );
    b.remove_signed_prekey(12).await.must("remove_signed_prekey of an absent id");
}

/// Group sender keys: put/get/overwrite/delete per exact address (one group, two senders are
/// two keys), and `put_sender_keys_batch` stores every row, upserting ones that exist.
pub async fn sender_keys(backend: &dyn Backend) {
    let b = backend;
    let alice = "120363000000000401@g.us::15550400001:1@s.whatsapp.net";
    let bob = "120363000000000401@g.us::15550400002:0@s.whatsapp.net";
    let other_group = "120363000000000402@g.us::15550400001:1@s.whatsapp.net";

    assert_eq!(b.get_sender_key(alice).await.must("get_sender_key"), None, "unknown sender key");
    b.put_sender_key(alice, b"sk-alice").await.must("put_sender_key");
    b.put_sender_key(bob, b"sk-bob").await.must("put_sender_key");
    assert_eq!(
        b.get_sender_key(alice).await.must("get_sender_key").as_deref(),
        Some(&b"sk-alice"[..]),
        "sender key of alice"
    );
    assert_eq!(b.get_sender_key(other_group).await.must("get_sender_key"), None, "same sender in another group");
    b.put_sender_key(alice, b"sk-alice-2").await.must("put_sender_key");
    assert_eq!(
        b.get_sender_key(alice).await.must("get_sender_key").as_deref(),
        Some(&b"sk-alice-2"[..]),
        "put_sender_key overwrites"
    );
    b.delete_sender_key(alice).await.must("delete_sender_key");
    assert_eq!(b.get_sender_key(alice).await.must("get_sender_key"), None, "deleted sender key");
    assert_eq!(
        b.get_sender_key(bob).await.must("get_sender_key").as_deref(),
        Some(&b"sk-bob"[..]),
        "deleting alice's key must not touch bob's"
    );

    let carol = "120363000000000403@g.us::100000400003:2@lid";
    b.put_sender_keys_batch(&[]).await.must("put_sender_keys_batch(empty)");
    b.put_sender_keys_batch(&[
        batch_row(other_group, b"sk-other"),
        batch_row(bob, b"sk-bob-2"),
        batch_row(carol, b"sk-carol"),
    ])
    .await
    .must("put_sender_keys_batch");
    for (address, record) in [(other_group, &b"sk-other"[..]), (bob, b"sk-bob-2"), (carol, b"sk-carol")] {
        assert_eq!(
            b.get_sender_key(address).await.must("get_sender_key").as_deref(),
            Some(record),
            "sender key of {address} after put_sender_keys_batch"
        );
    }
}

/// `put_sender_keys_batch` with an address twice in one batch, for a new address and for one
/// already stored: the last row wins (SQLite: one upsert per row, in order).
pub async fn sender_keys_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let stored = "120363000000002401@g.us::15552400001:1@s.whatsapp.net";
    let new = "120363000000002401@g.us::100002400002:2@lid";
    b.put_sender_key(stored, b"sk-stored-1").await.must("put_sender_key");
    b.put_sender_keys_batch(&[
        batch_row(new, b"sk-new-1"),
        batch_row(stored, b"sk-stored-2"),
        batch_row(new, b"sk-new-2"),
        batch_row(stored, b"sk-stored-3"),
    ])
    .await
    .must("put_sender_keys_batch with duplicate addresses");
    for (address, record) in [(stored, &b"sk-stored-3"[..]), (new, b"sk-new-2")] {
        assert_eq!(
            b.get_sender_key(address).await.must("get_sender_key").as_deref(),
            Some(record),
            "sender key {address} after a put_sender_keys_batch with duplicates: the last row wins (SQLite)"
        );
    }
}

/// App-state sync keys: set/get round trip of all three fields, overwrite, and
/// `get_latest_sync_key_id` being the greatest key id in byte order among the stored keys
/// (SQLite: `ORDER BY key_id DESC`) — not the most recently set key and not the newest
/// `timestamp`.
pub async fn app_state_sync_keys(backend: &dyn Backend) {
    let b = backend;
    let unknown: &[u8] = &[0x7e, 0, 0, 0, 0x01];
    assert!(b.get_sync_key(unknown).await.must("get_sync_key").is_none(), "unknown sync key");

    let key = |byte: u8, timestamp: i64| AppStateSyncKey {
        key_data: vec![byte; 32],
        fingerprint: vec![byte, 0xf0, 0x0d],
        timestamp,
    };
    let mid: &[u8] = &[0x7e, 0, 0, 0, 0x05];
    let greatest: &[u8] = &[0x7e, 0, 0, 0, 0x09];
    let newest: &[u8] = &[0x7e, 0, 0, 0, 0x07];
    let longer_but_smaller: &[u8] = &[0x7e, 0, 0, 0, 0x08, 0xff];
    b.set_sync_key(mid, key(0x05, T0 + 100)).await.must("set_sync_key");
    b.set_sync_key(greatest, key(0x09, T0 + 50)).await.must("set_sync_key");
    b.set_sync_key(longer_but_smaller, key(0x08, T0 + 60)).await.must("set_sync_key");
    // Set last and carrying the newest timestamp, but not the greatest id. SQLite: "latest" is
    // `ORDER BY key_id DESC` (byte-wise, a longer id with a smaller prefix sorts lower).
    b.set_sync_key(newest, key(0x07, T0 + 200)).await.must("set_sync_key");

    let stored = b.get_sync_key(mid).await.must("get_sync_key").unwrap_or_else(|| panic!("sync key {mid:?} not found"));
    assert_eq!(stored.key_data, vec![0x05; 32], "sync key key_data");
    assert_eq!(stored.fingerprint, vec![0x05, 0xf0, 0x0d], "sync key fingerprint");
    assert_eq!(stored.timestamp, T0 + 100, "sync key timestamp");

    assert_eq!(
        b.get_latest_sync_key_id().await.must("get_latest_sync_key_id").as_deref(),
        Some(greatest),
        "get_latest_sync_key_id is the greatest key id in byte order (SQLite), not the last set \
         ({newest:?}) nor the newest timestamp"
    );

    b.set_sync_key(mid, key(0x55, T0 + 300)).await.must("set_sync_key");
    let stored = b
        .get_sync_key(mid)
        .await
        .must("get_sync_key")
        .unwrap_or_else(|| panic!("sync key {mid:?} not found after overwrite"));
    assert_eq!(
        (stored.key_data, stored.fingerprint, stored.timestamp),
        (vec![0x55; 32], vec![0x55, 0xf0, 0x0d], T0 + 300),
        "set_sync_key overwrites"
    );
    assert_eq!(
        b.get_latest_sync_key_id().await.must("get_latest_sync_key_id").as_deref(),
        Some(greatest),
        "overwriting a smaller id does not make it the latest"
    );
}

/// SQLite treats a stored app-state sync key whose `key_data` is not 32 bytes (an app-state
/// master key is always 32) as absent: `get_sync_key` returns `None` and
/// `get_latest_sync_key_id` skips it, so the key is re-requested instead of used. Stores only
/// such invalid keys, under ids greater than any valid key the other checks write.
pub async fn app_state_sync_key_validation(backend: &dyn Backend) {
    let b = backend;
    let short: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 0x01];
    let long: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 0x02];
    for (key_id, len) in [(short, 16), (long, 33)] {
        b.set_sync_key(
            key_id,
            AppStateSyncKey { key_data: vec![0xab; len], fingerprint: vec![1, 2, 3], timestamp: T0 },
        )
        .await
        .must("set_sync_key");
        // SQLite: a key whose key_data is not 32 bytes reads back as absent.
        assert!(
            b.get_sync_key(key_id).await.must("get_sync_key").is_none(),
            "a sync key with {len}-byte key_data must read as absent (SQLite)"
        );
    }
    let latest = b.get_latest_sync_key_id().await.must("get_latest_sync_key_id");
    assert!(
        latest.as_deref() != Some(short) && latest.as_deref() != Some(long),
        "get_latest_sync_key_id must skip keys whose key_data is not 32 bytes (SQLite), got {latest:?}"
    );
}

/// App-state versions: an unknown collection reads as `HashState::default()` (version 0,
/// zero hash, empty map, not latched); `set_version` then `get_version` round-trips every field
/// of a non-trivial state (large version, patterned hash, index_value_map with an empty value,
/// `mac_mismatch_fatal`); a later set replaces the whole state (map entries are not merged);
/// collections are independent.
pub async fn app_state_versions(backend: &dyn Backend) {
    let b = backend;
    assert_hash_state(
        &b.get_version("conformance_unknown").await.must("get_version"),
        &HashState::default(),
        "get_version of an unknown collection",
    );

    let mut hash = [0u8; 128];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(37).wrapping_add(1);
    }
    let first = HashState {
        version: (1 << 40) + 7,
        hash,
        index_value_map: HashMap::from([
            ("aW5kZXgtYQ==".to_string(), vec![1, 2, 3, 255]),
            ("aW5kZXgtYg==".to_string(), Vec::new()),
        ]),
        mac_mismatch_fatal: true,
    };
    b.set_version("conformance_regular_high", first.clone()).await.must("set_version");
    assert_hash_state(
        &b.get_version("conformance_regular_high").await.must("get_version"),
        &first,
        "get_version after set_version",
    );

    let other = HashState {
        version: 3,
        hash: [0x5a; 128],
        index_value_map: HashMap::from([("b3RoZXI=".to_string(), vec![9])]),
        mac_mismatch_fatal: false,
    };
    b.set_version("conformance_critical_block", other.clone()).await.must("set_version");

    let second = HashState {
        version: (1 << 40) + 8,
        hash: [0xc3; 128],
        index_value_map: HashMap::from([("aW5kZXgtYw==".to_string(), vec![7; 40])]),
        mac_mismatch_fatal: false,
    };
    b.set_version("conformance_regular_high", second.clone()).await.must("set_version");
    assert_hash_state(
        &b.get_version("conformance_regular_high").await.must("get_version"),
        &second,
        "set_version replaces the whole state",
    );
    assert_hash_state(
        &b.get_version("conformance_critical_block").await.must("get_version"),
        &other,
        "another collection is untouched",
    );
}

/// Mutation MACs: `put_mutation_macs` stores every row (upserting an index MAC already stored
/// for the collection), scoped by collection name; `get_mutation_mac`; `get_mutation_macs`
/// returns exactly the requested index MACs that exist (missing ones absent);
/// `delete_mutation_macs` removes only the listed ones; `clear_mutation_macs` empties one
/// collection without touching another.
pub async fn mutation_macs(backend: &dyn Backend) {
    let b = backend;
    let (regular, archive) = ("conformance_macs_regular", "conformance_macs_archive");
    let [i1, i2, i3, i4, missing] = [[0xa1u8; 32], [0xa2; 32], [0xa3; 32], [0xa4; 32], [0xaf; 32]];

    b.put_mutation_macs(regular, 1, &[]).await.must("put_mutation_macs(empty)");
    b.put_mutation_macs(regular, 1, &[mac(&i1, b"v1"), mac(&i2, b"v2"), mac(&i3, b"v3")])
        .await
        .must("put_mutation_macs");
    b.put_mutation_macs(archive, 1, &[mac(&i1, b"archive-v1"), mac(&i4, b"archive-v4")])
        .await
        .must("put_mutation_macs");
    assert_eq!(
        b.get_mutation_mac(regular, &i1).await.must("get_mutation_mac").as_deref(),
        Some(&b"v1"[..]),
        "mutation MAC i1 in {regular}"
    );
    assert_eq!(
        b.get_mutation_mac(archive, &i1).await.must("get_mutation_mac").as_deref(),
        Some(&b"archive-v1"[..]),
        "the same index MAC in another collection is another row"
    );
    assert_eq!(b.get_mutation_mac(regular, &i4).await.must("get_mutation_mac"), None, "i4 exists only in {archive}");

    b.put_mutation_macs(regular, 2, &[mac(&i2, b"v2-new")]).await.must("put_mutation_macs");
    assert_eq!(
        b.get_mutation_mac(regular, &i2).await.must("get_mutation_mac").as_deref(),
        Some(&b"v2-new"[..]),
        "put_mutation_macs upserts"
    );

    let batch = b.get_mutation_macs(regular, &[i1, missing, i2, i3, i4]).await.must("get_mutation_macs");
    assert_eq!(
        batch.into_iter().collect::<BTreeMap<_, _>>(),
        BTreeMap::from([(i1, b"v1".to_vec()), (i2, b"v2-new".to_vec()), (i3, b"v3".to_vec())]),
        "get_mutation_macs returns exactly the requested index MACs stored in {regular}"
    );
    assert!(
        b.get_mutation_macs(regular, &[]).await.must("get_mutation_macs(empty)").is_empty(),
        "get_mutation_macs of no index MACs"
    );

    b.delete_mutation_macs(regular, &[i1.to_vec(), missing.to_vec()]).await.must("delete_mutation_macs");
    b.delete_mutation_macs(regular, &[]).await.must("delete_mutation_macs(empty)");
    assert_eq!(b.get_mutation_mac(regular, &i1).await.must("get_mutation_mac"), None, "deleted MAC");
    assert!(
        b.get_mutation_mac(regular, &i3).await.must("get_mutation_mac").is_some(),
        "delete_mutation_macs removed an unlisted MAC"
    );
    assert!(
        b.get_mutation_mac(archive, &i1).await.must("get_mutation_mac").is_some(),
        "delete_mutation_macs removed the same index MAC from another collection"
    );

    b.clear_mutation_macs(regular).await.must("clear_mutation_macs");
    assert!(
        b.get_mutation_macs(regular, &[i1, i2, i3]).await.must("get_mutation_macs").is_empty(),
        "clear_mutation_macs left rows in {regular}"
    );
    assert_eq!(
        b.get_mutation_macs(archive, &[i1, i4]).await.must("get_mutation_macs").len(),
        2,
        "clear_mutation_macs({regular}) touched {archive}"
    );
}

/// `put_mutation_macs` with an index MAC twice in one batch, for a new index MAC and for one
/// already stored in the collection: the last value MAC wins. SQLite: one multi-row
/// `INSERT … ON CONFLICT DO UPDATE`, whose rows SQLite applies one after the other.
pub async fn mutation_macs_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let name = "conformance_macs_duplicates";
    let [stored, new, once] = [[0xb1u8; 32], [0xb2; 32], [0xb3; 32]];
    b.put_mutation_macs(name, 1, &[mac(&stored, b"stored-1")]).await.must("put_mutation_macs");
    b.put_mutation_macs(
        name,
        2,
        &[
            mac(&new, b"new-1"),
            mac(&stored, b"stored-2"),
            mac(&once, b"once"),
            mac(&new, b"new-2"),
            mac(&stored, b"stored-3"),
        ],
    )
    .await
    .must("put_mutation_macs with duplicate index MACs");
    let macs = b.get_mutation_macs(name, &[stored, new, once]).await.must("get_mutation_macs");
    assert_eq!(
        macs.into_iter().collect::<BTreeMap<_, _>>(),
        BTreeMap::from([(stored, b"stored-3".to_vec()), (new, b"new-2".to_vec()), (once, b"once".to_vec())]),
        "index MACs twice in one put_mutation_macs: the last value MAC wins (SQLite)"
    );
}

/// Sender-key distribution status per (group, device JID): set, read back per group, overwrite
/// (including `true` -> `false`), `clear_sender_key_devices` for one group only,
/// `delete_sender_key_device_rows` removing the listed device JIDs from every group and nothing
/// else, `clear_all_sender_key_devices` emptying every group.
pub async fn sender_key_devices(backend: &dyn Backend) {
    let b = backend;
    let (g1, g2, g3) = ("120363000000000601@g.us", "120363000000000602@g.us", "120363000000000603@g.us");
    let (d1, d2, d3) = ("15550600001:1@s.whatsapp.net", "15550600002@s.whatsapp.net", "100000600003:4@lid");
    let devices = |group: &'static str| async move {
        sorted(b.get_sender_key_devices(group).await.must("get_sender_key_devices"))
    };
    let row = |jid: &str, has_key: bool| (jid.to_string(), has_key);

    assert!(devices(g1).await.is_empty(), "unknown group");
    b.set_sender_key_status(g1, &[]).await.must("set_sender_key_status(empty)");
    b.set_sender_key_status(g1, &[(d1, true), (d2, false)]).await.must("set_sender_key_status");
    b.set_sender_key_status(g2, &[(d1, true), (d3, true)]).await.must("set_sender_key_status");
    b.set_sender_key_status(g3, &[(d2, true)]).await.must("set_sender_key_status");
    assert_eq!(devices(g1).await, sorted(vec![row(d1, true), row(d2, false)]), "status of {g1}");
    assert_eq!(devices(g2).await, sorted(vec![row(d1, true), row(d3, true)]), "status of {g2}");

    b.set_sender_key_status(g1, &[(d1, false), (d2, true), (d3, false)]).await.must("set_sender_key_status");
    assert_eq!(
        devices(g1).await,
        sorted(vec![row(d1, false), row(d2, true), row(d3, false)]),
        "set_sender_key_status overwrites and adds"
    );
    assert_eq!(devices(g2).await, sorted(vec![row(d1, true), row(d3, true)]), "{g2} untouched by a write to {g1}");

    b.clear_sender_key_devices(g3).await.must("clear_sender_key_devices");
    assert!(devices(g3).await.is_empty(), "clear_sender_key_devices({g3})");
    assert_eq!(devices(g1).await.len(), 3, "clear_sender_key_devices({g3}) touched {g1}");

    b.delete_sender_key_device_rows(&[d1, "15550699999@s.whatsapp.net"]).await.must("delete_sender_key_device_rows");
    b.delete_sender_key_device_rows(&[]).await.must("delete_sender_key_device_rows(empty)");
    assert_eq!(devices(g1).await, sorted(vec![row(d2, true), row(d3, false)]), "delete_sender_key_device_rows in {g1}");
    assert_eq!(devices(g2).await, vec![row(d3, true)], "delete_sender_key_device_rows in {g2}");

    b.clear_all_sender_key_devices().await.must("clear_all_sender_key_devices");
    for group in [g1, g2, g3] {
        assert!(devices(group).await.is_empty(), "clear_all_sender_key_devices left {group}");
    }
}

/// `set_sender_key_status` with a device JID twice in one call, for a new device and for one
/// already stored in the group: the last status wins and the device is listed once. SQLite:
/// one multi-row `INSERT … ON CONFLICT DO UPDATE`, whose rows SQLite applies one after the
/// other.
pub async fn sender_key_status_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let group = "120363000000002601@g.us";
    let (stored, new, once) = ("15552600001:1@s.whatsapp.net", "100002600002:2@lid", "15552600003@s.whatsapp.net");
    b.set_sender_key_status(group, &[(stored, false)]).await.must("set_sender_key_status");
    b.set_sender_key_status(group, &[(new, true), (stored, false), (once, true), (new, false), (stored, true)])
        .await
        .must("set_sender_key_status with duplicate device JIDs");
    assert_eq!(
        sorted(b.get_sender_key_devices(group).await.must("get_sender_key_devices")),
        sorted(vec![(stored.to_string(), true), (new.to_string(), false), (once.to_string(), true)]),
        "device JIDs twice in one set_sender_key_status: one row each, the last status wins (SQLite)"
    );
}

/// LID <-> phone-number mappings: put and get by LID with every field; get by phone number
/// returns the mapping with the greatest `updated_at` for that phone (not the one put last);
/// re-putting a LID updates phone, source and `updated_at` but keeps the first `created_at`
/// (SQLite); `put_lid_mappings` stores every row; `get_all_lid_mappings` returns every mapping
/// exactly once.
pub async fn lid_pn_mappings(backend: &dyn Backend) {
    let b = backend;
    let (phone1, phone2) = ("15550700001", "15550700002");
    let (lid1, lid2, lid3) = ("100000700001", "100000700002", "100000700003");

    assert!(b.get_lid_mapping(lid1).await.must("get_lid_mapping").is_none(), "unknown LID");
    assert!(b.get_pn_mapping(phone1).await.must("get_pn_mapping").is_none(), "unknown phone");

    let m1 = lid_entry(lid1, phone1, T0, T0 + 100, "usync");
    b.put_lid_mapping(&m1).await.must("put_lid_mapping");
    assert_lid_entry(b.get_lid_mapping(lid1).await.must("get_lid_mapping"), &m1, "get_lid_mapping");
    assert_lid_entry(b.get_pn_mapping(phone1).await.must("get_pn_mapping"), &m1, "get_pn_mapping");

    // phone1 gets a newer LID, then an older one is learned late: the newer stays current.
    // SQLite: `ORDER BY updated_at DESC` among the phone's mappings.
    let m2 = lid_entry(lid2, phone1, T0 + 10, T0 + 300, "peer_pn_message");
    let m3 = lid_entry(lid3, phone1, T0 + 20, T0 + 200, "history_sync");
    b.put_lid_mapping(&m2).await.must("put_lid_mapping");
    b.put_lid_mapping(&m3).await.must("put_lid_mapping");
    assert_lid_entry(
        b.get_pn_mapping(phone1).await.must("get_pn_mapping"),
        &m2,
        "get_pn_mapping returns the most recently updated LID, not the last put",
    );

    // lid1 moves to phone2 with a newer update; SQLite keeps the original created_at.
    b.put_lid_mapping(&lid_entry(lid1, phone2, T0 + 999, T0 + 400, "usync_update")).await.must("put_lid_mapping");
    let moved = lid_entry(lid1, phone2, T0, T0 + 400, "usync_update");
    assert_lid_entry(
        b.get_lid_mapping(lid1).await.must("get_lid_mapping"),
        &moved,
        "re-put of a LID (SQLite keeps the first created_at)",
    );
    assert_lid_entry(b.get_pn_mapping(phone2).await.must("get_pn_mapping"), &moved, "new phone");
    assert_lid_entry(
        b.get_pn_mapping(phone1).await.must("get_pn_mapping"),
        &m2,
        "the old phone no longer resolves to the moved LID",
    );

    let m4 = lid_entry("100000700004", "15550700004", T0 + 1, T0 + 2, "pairing");
    let m5 = lid_entry("100000700005", "15550700005", T0 + 3, T0 + 4, "usync");
    b.put_lid_mappings(&[]).await.must("put_lid_mappings(empty)");
    b.put_lid_mappings(&[m4.clone(), m5.clone()]).await.must("put_lid_mappings");
    assert_lid_entry(b.get_lid_mapping(&m4.lid).await.must("get_lid_mapping"), &m4, "batch row 1");
    assert_lid_entry(b.get_lid_mapping(&m5.lid).await.must("get_lid_mapping"), &m5, "batch row 2");
    assert_lid_entry(b.get_pn_mapping(&m5.phone_number).await.must("get_pn_mapping"), &m5, "batch row 2 by phone");

    let all = b.get_all_lid_mappings().await.must("get_all_lid_mappings");
    assert_eq!(
        sorted(all.iter().map(|e| (e.lid.clone(), e.phone_number.clone())).collect()),
        vec![
            (lid1.to_string(), phone2.to_string()),
            (lid2.to_string(), phone1.to_string()),
            (lid3.to_string(), phone1.to_string()),
            (m4.lid.clone(), m4.phone_number.clone()),
            (m5.lid.clone(), m5.phone_number.clone()),
        ],
        "get_all_lid_mappings: (lid, phone) of every mapping, once"
    );
    let all_m3 = all.iter().find(|e| e.lid == lid3).cloned();
    assert_lid_entry(all_m3, &m3, "get_all_lid_mappings row fields");
}

/// `put_lid_mappings` with a LID twice in one batch: as if put one after the other, so phone,
/// source and `updated_at` come from the last entry, while `created_at` is the FIRST one —
/// the first entry's for a new LID (even within one batch), the stored one's for a LID already
/// stored (SQLite: one upsert per row, in order, whose update leaves `created_at` alone). The
/// LID is one mapping: the phone it moved away from no longer resolves to it.
pub async fn lid_mappings_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let (new, stored) = ("100002700001", "100002700002");
    let (phone1, phone2, phone3) = ("15552700001", "15552700002", "15552700003");
    b.put_lid_mapping(&lid_entry(stored, phone3, T0 + 1, T0 + 2, "pairing")).await.must("put_lid_mapping");
    b.put_lid_mappings(&[
        lid_entry(new, phone1, T0 + 5, T0 + 10, "usync"),
        lid_entry(stored, phone3, T0 + 30, T0 + 40, "usync"),
        lid_entry(new, phone2, T0 + 7, T0 + 20, "peer_pn_message"),
        lid_entry(stored, phone3, T0 + 50, T0 + 60, "history_sync"),
    ])
    .await
    .must("put_lid_mappings with duplicate LIDs");

    let new_expected = lid_entry(new, phone2, T0 + 5, T0 + 20, "peer_pn_message");
    assert_lid_entry(
        b.get_lid_mapping(new).await.must("get_lid_mapping"),
        &new_expected,
        "a new LID twice in one put_lid_mappings (SQLite: the last entry, but the first created_at)",
    );
    let stored_expected = lid_entry(stored, phone3, T0 + 1, T0 + 60, "history_sync");
    assert_lid_entry(
        b.get_lid_mapping(stored).await.must("get_lid_mapping"),
        &stored_expected,
        "a stored LID twice in one put_lid_mappings (SQLite: the last entry, the stored created_at)",
    );
    assert_lid_entry(b.get_pn_mapping(phone2).await.must("get_pn_mapping"), &new_expected, "the last entry's phone");
    assert!(
        b.get_pn_mapping(phone1).await.must("get_pn_mapping").is_none(),
        "{phone1} of the overridden first entry must not resolve"
    );
    let all = b.get_all_lid_mappings().await.must("get_all_lid_mappings");
    for lid in [new, stored] {
        assert_eq!(
            all.iter().filter(|e| e.lid == lid).count(),
            1,
            "get_all_lid_mappings must list {lid} once after a batch that had it twice"
        );
    }
}

/// Base keys for retry collision detection: `has_same_base_key` is true only for the exact
/// (address, message id) with byte-identical key; save overwrites; delete removes one
/// (address, message id) only.
pub async fn base_keys(backend: &dyn Backend) {
    let b = backend;
    let (addr, other_addr) = ("15550800001:1@s.whatsapp.net", "15550800001:2@s.whatsapp.net");
    let (msg, other_msg) = ("3EB0C0FFEE000801", "3EB0C0FFEE000802");
    let same = |address: &'static str, message_id: &'static str, key: &'static [u8]| async move {
        b.has_same_base_key(address, message_id, key).await.must("has_same_base_key")
    };

    assert!(!same(addr, msg, b"key-1").await, "nothing saved yet");
    b.save_base_key(addr, msg, b"key-1").await.must("save_base_key");
    b.save_base_key(addr, other_msg, b"key-9").await.must("save_base_key");
    assert!(same(addr, msg, b"key-1").await, "the saved key");
    assert!(!same(addr, msg, b"key-2").await, "another key");
    assert!(!same(addr, msg, b"key-").await, "a prefix of the saved key");
    assert!(!same(addr, "3EB0C0FFEE000803", b"key-1").await, "another message id");
    assert!(!same(other_addr, msg, b"key-1").await, "another address");

    b.save_base_key(addr, msg, b"key-2").await.must("save_base_key");
    assert!(same(addr, msg, b"key-2").await, "save_base_key overwrites");
    assert!(!same(addr, msg, b"key-1").await, "the overwritten key");

    b.delete_base_key(addr, msg).await.must("delete_base_key");
    assert!(!same(addr, msg, b"key-2").await, "deleted base key");
    assert!(same(addr, other_msg, b"key-9").await, "delete_base_key removed another message id");
    b.delete_base_key(addr, msg).await.must("delete_base_key of an absent entry");
}

/// Device registry: `update_device_list` then `get_devices` returns every field (devices in
/// order with key_index and is_hosted, timestamp, phash, raw_id including one above
/// `i32::MAX`); an update replaces the record (a `None` phash/raw_id clears the old value);
/// `update_device_lists` stores every record; `delete_devices` removes one user only.
pub async fn device_registry(backend: &dyn Backend) {
    let b = backend;
    let (u1, u2, u3) = ("15550900001", "100000900002", "15550900003");
    assert!(b.get_devices(u1).await.must("get_devices").is_none(), "unknown user");

    let first = DeviceListRecord {
        user: u1.to_string(),
        devices: vec![
            DeviceInfo::new(0, None),
            DeviceInfo::new(23, Some(7)).with_hosting(true),
            DeviceInfo::new(5, Some(2)),
        ],
        timestamp: T0 + 901,
        phash: Some("2:Zm9vYmFy".to_string()),
        raw_id: Some(3_000_000_001),
    };
    b.update_device_list(first.clone()).await.must("update_device_list");
    assert_device_list(b.get_devices(u1).await.must("get_devices"), &first, "get_devices");

    let replaced = DeviceListRecord {
        user: u1.to_string(),
        devices: vec![DeviceInfo::new(0, Some(1))],
        timestamp: T0 + 902,
        phash: None,
        raw_id: None,
    };
    b.update_device_list(replaced.clone()).await.must("update_device_list");
    assert_device_list(
        b.get_devices(u1).await.must("get_devices"),
        &replaced,
        "update_device_list replaces the record",
    );

    let batch = vec![
        DeviceListRecord {
            user: u2.to_string(),
            devices: vec![DeviceInfo::new(0, None), DeviceInfo::new(1, Some(4))],
            timestamp: T0 + 903,
            phash: Some("2:YmF0Y2g=".to_string()),
            raw_id: Some(12),
        },
        DeviceListRecord {
            user: u3.to_string(),
            devices: Vec::new(),
            timestamp: T0 + 904,
            phash: None,
            raw_id: Some(0),
        },
    ];
    b.update_device_lists(Vec::new()).await.must("update_device_lists(empty)");
    b.update_device_lists(batch.clone()).await.must("update_device_lists");
    for record in &batch {
        assert_device_list(
            b.get_devices(&record.user).await.must("get_devices"),
            record,
            "get_devices after update_device_lists",
        );
    }

    b.delete_devices(u1).await.must("delete_devices");
    assert!(b.get_devices(u1).await.must("get_devices").is_none(), "deleted device list");
    assert!(b.get_devices(u2).await.must("get_devices").is_some(), "delete_devices({u1}) removed {u2}");
    b.delete_devices(u1).await.must("delete_devices of an absent user");
}

/// `update_device_lists` with a user twice in one batch, for a new user and for one already
/// stored: the last record wins whole (a `None` phash/raw_id clears the earlier one). SQLite:
/// one upsert per record, in order.
pub async fn device_lists_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let (new, stored) = ("15552800001", "100002800002");
    let record = |user: &str, devices: Vec<DeviceInfo>, timestamp: i64, phash: Option<&str>, raw_id: Option<u32>| {
        DeviceListRecord { user: user.to_string(), devices, timestamp, phash: phash.map(str::to_string), raw_id }
    };
    b.update_device_list(record(stored, vec![DeviceInfo::new(0, None)], T0 + 2801, Some("2:c3RvcmVk"), Some(1)))
        .await
        .must("update_device_list");
    let new_last = record(new, vec![DeviceInfo::new(0, None), DeviceInfo::new(9, Some(3))], T0 + 2812, None, None);
    let stored_last = record(stored, vec![DeviceInfo::new(0, Some(2)).with_hosting(true)], T0 + 2813, None, Some(7));
    b.update_device_lists(vec![
        record(
            new,
            vec![DeviceInfo::new(0, None), DeviceInfo::new(4, Some(1))],
            T0 + 2810,
            Some("2:Zmlyc3Q="),
            Some(5),
        ),
        record(stored, vec![DeviceInfo::new(0, None), DeviceInfo::new(6, Some(1))], T0 + 2811, Some("2:bWlk"), Some(6)),
        new_last.clone(),
        stored_last.clone(),
    ])
    .await
    .must("update_device_lists with duplicate users");
    assert_device_list(
        b.get_devices(new).await.must("get_devices"),
        &new_last,
        "a new user twice in one update_device_lists: the last record wins (SQLite)",
    );
    assert_device_list(
        b.get_devices(stored).await.must("get_devices"),
        &stored_last,
        "a stored user twice in one update_device_lists: the last record wins (SQLite)",
    );
}

/// Group metadata blobs (SQLite persists them; the trait's no-op default would fail here):
/// put/get/overwrite/delete per group.
pub async fn group_metadata(backend: &dyn Backend) {
    let b = backend;
    let (g1, g2) = ("120363000000001001@g.us", "120363000000001002@g.us");
    assert_eq!(b.get_group_metadata(g1).await.must("get_group_metadata"), None, "unknown group");
    b.put_group_metadata(g1, b"\x0a\x03one").await.must("put_group_metadata");
    b.put_group_metadata(g2, b"\x0a\x03two").await.must("put_group_metadata");
    assert_eq!(
        b.get_group_metadata(g1).await.must("get_group_metadata").as_deref(),
        Some(&b"\x0a\x03one"[..]),
        "group metadata of {g1}"
    );
    b.put_group_metadata(g1, b"\x0a\x05one-2\x00").await.must("put_group_metadata");
    assert_eq!(
        b.get_group_metadata(g1).await.must("get_group_metadata").as_deref(),
        Some(&b"\x0a\x05one-2\x00"[..]),
        "put_group_metadata overwrites"
    );
    b.delete_group_metadata(g1).await.must("delete_group_metadata");
    assert_eq!(b.get_group_metadata(g1).await.must("get_group_metadata"), None, "deleted group metadata");
    assert_eq!(
        b.get_group_metadata(g2).await.must("get_group_metadata").as_deref(),
        Some(&b"\x0a\x03two"[..]),
        "delete_group_metadata({g1}) touched {g2}"
    );
}

/// Trusted-contact tokens, plain CRUD: put/get of all three fields, put replaces the whole
/// entry (a `None` sender_timestamp clears it), delete, and `get_all_tc_token_jids` listing
/// every stored JID exactly once. Sweeps the tc-token table first.
pub async fn tc_tokens(backend: &dyn Backend) {
    let b = backend;
    b.delete_expired_tc_tokens(SWEEP_ALL, SWEEP_ALL).await.must("delete_expired_tc_tokens");
    let (j1, j2, j3) = ("100000110001@lid", "100000110002@lid", "15551100003@s.whatsapp.net");
    assert!(b.get_tc_token(j1).await.must("get_tc_token").is_none(), "unknown tc token");

    b.put_tc_token(j1, &tc(b"token-1", T0 + 1, Some(T0 + 2))).await.must("put_tc_token");
    b.put_tc_token(j2, &tc(b"token-2", T0 + 3, None)).await.must("put_tc_token");
    b.put_tc_token(j3, &tc(b"", T0 + 4, Some(T0 + 5))).await.must("put_tc_token");
    assert_eq!(tc_state(b, j1).await, Some((b"token-1".to_vec(), T0 + 1, Some(T0 + 2))), "tc token of {j1}");
    assert_eq!(tc_state(b, j2).await, Some((b"token-2".to_vec(), T0 + 3, None)), "tc token of {j2}");
    assert_eq!(tc_state(b, j3).await, Some((Vec::new(), T0 + 4, Some(T0 + 5))), "placeholder token of {j3}");

    b.put_tc_token(j1, &tc(b"token-1b", T0 + 10, None)).await.must("put_tc_token");
    assert_eq!(
        tc_state(b, j1).await,
        Some((b"token-1b".to_vec(), T0 + 10, None)),
        "put_tc_token replaces the entry, sender_timestamp included"
    );
    // put_tc_token is a plain write: an older token still replaces a newer one.
    b.put_tc_token(j2, &tc(b"token-2-old", T0 - 50, Some(T0))).await.must("put_tc_token");
    assert_eq!(
        tc_state(b, j2).await,
        Some((b"token-2-old".to_vec(), T0 - 50, Some(T0))),
        "put_tc_token is unconditional"
    );

    assert_eq!(
        sorted(b.get_all_tc_token_jids().await.must("get_all_tc_token_jids")),
        vec![j1.to_string(), j2.to_string(), j3.to_string()],
        "get_all_tc_token_jids"
    );
    b.delete_tc_token(j2).await.must("delete_tc_token");
    assert!(b.get_tc_token(j2).await.must("get_tc_token").is_none(), "deleted tc token");
    assert_eq!(
        sorted(b.get_all_tc_token_jids().await.must("get_all_tc_token_jids")),
        vec![j1.to_string(), j3.to_string()],
        "get_all_tc_token_jids after delete_tc_token"
    );
    b.delete_tc_token(j2).await.must("delete_tc_token of an absent JID");
}

/// `delete_expired_tc_tokens(token_cutoff, sender_cutoff)` deletes a row only when its received
/// token is expired-or-absent (`token_timestamp < token_cutoff`, or empty token bytes whatever
/// the timestamp) AND its sender bucket is expired-or-absent (`sender_timestamp <
/// sender_cutoff`, or null); both comparisons are strict. Returns the number deleted. Sweeps
/// the tc-token table first.
pub async fn tc_token_expiry(backend: &dyn Backend) {
    let b = backend;
    b.delete_expired_tc_tokens(SWEEP_ALL, SWEEP_ALL).await.must("delete_expired_tc_tokens");
    let token_cutoff = T0 + 1000;
    let sender_cutoff = T0 + 2000;
    /// One stored row and whether the sweep must delete it.
    struct Case {
        jid: &'static str,
        token: &'static [u8],
        token_timestamp: i64,
        sender_timestamp: Option<i64>,
        deleted: bool,
    }
    let case = |jid, token: &'static [u8], token_timestamp, sender_timestamp, deleted| Case {
        jid,
        token,
        token_timestamp,
        sender_timestamp,
        deleted,
    };
    let rows = [
        case("100000120001@lid", b"t", T0 + 500, None, true),
        case("100000120002@lid", b"t", T0 + 500, Some(T0 + 1500), true),
        case("100000120003@lid", b"t", T0 + 500, Some(T0 + 2500), false),
        case("100000120004@lid", b"t", T0 + 1500, None, false),
        case("100000120005@lid", b"t", T0 + 1500, Some(T0 + 1500), false),
        // An empty token counts as absent however recent its timestamp.
        case("100000120006@lid", b"", T0 + 5000, Some(T0 + 1500), true),
        case("100000120007@lid", b"", T0 + 5000, Some(T0 + 2500), false),
        case("100000120008@lid", b"", T0 + 5000, None, true),
        // Exactly at a cutoff is not expired.
        case("100000120009@lid", b"t", token_cutoff, None, false),
        case("100000120010@lid", b"t", T0 + 500, Some(sender_cutoff), false),
    ];
    for row in &rows {
        b.put_tc_token(row.jid, &tc(row.token, row.token_timestamp, row.sender_timestamp)).await.must("put_tc_token");
    }
    let deleted = b.delete_expired_tc_tokens(token_cutoff, sender_cutoff).await.must("delete_expired_tc_tokens");
    for row in &rows {
        let present = b.get_tc_token(row.jid).await.must("get_tc_token").is_some();
        assert_eq!(
            present, !row.deleted,
            "token {:?} at {} with sender bucket {:?} against cutoffs ({token_cutoff}, {sender_cutoff}): \
             expected deleted = {}",
            row.token, row.token_timestamp, row.sender_timestamp, row.deleted
        );
    }
    let expected = rows.iter().filter(|row| row.deleted).count();
    assert_eq!(deleted as usize, expected, "delete_expired_tc_tokens return value");
    assert_eq!(
        b.delete_expired_tc_tokens(token_cutoff, sender_cutoff).await.must("delete_expired_tc_tokens"),
        0,
        "a second sweep with the same cutoffs"
    );
}

/// `touch_tc_token_sender_timestamp`: on an absent JID it inserts a placeholder (empty token,
/// `token_timestamp = sender_timestamp = ts`); on an existing row it only ever moves
/// `sender_timestamp` forward (a null one is set) and keeps the token bytes and
/// `token_timestamp`.
pub async fn tc_token_sender_timestamp(backend: &dyn Backend) {
    let b = backend;
    let touch = |jid: &'static str, ts: i64| async move {
        b.touch_tc_token_sender_timestamp(jid, ts).await.must("touch_tc_token_sender_timestamp")
    };

    let fresh_jid = "100000130001@lid";
    touch(fresh_jid, T0 + 100).await;
    assert_eq!(
        tc_state(b, fresh_jid).await,
        Some((Vec::new(), T0 + 100, Some(T0 + 100))),
        "touch on an absent JID inserts a placeholder"
    );
    touch(fresh_jid, T0 + 150).await;
    assert_eq!(
        tc_state(b, fresh_jid).await,
        Some((Vec::new(), T0 + 100, Some(T0 + 150))),
        "touch on a placeholder advances only sender_timestamp"
    );

    let real = "100000130002@lid";
    b.put_tc_token(real, &tc(b"real-token", T0 + 1000, Some(T0 + 3000))).await.must("put_tc_token");
    touch(real, T0 + 2000).await;
    assert_eq!(
        tc_state(b, real).await,
        Some((b"real-token".to_vec(), T0 + 1000, Some(T0 + 3000))),
        "an older touch must not move sender_timestamp back"
    );
    touch(real, T0 + 4000).await;
    assert_eq!(
        tc_state(b, real).await,
        Some((b"real-token".to_vec(), T0 + 1000, Some(T0 + 4000))),
        "a newer touch advances sender_timestamp and keeps the token"
    );

    let unsent = "100000130003@lid";
    b.put_tc_token(unsent, &tc(b"unsent-token", T0 + 500, None)).await.must("put_tc_token");
    touch(unsent, T0 + 100).await;
    assert_eq!(
        tc_state(b, unsent).await,
        Some((b"unsent-token".to_vec(), T0 + 500, Some(T0 + 100))),
        "touch sets a null sender_timestamp, even below token_timestamp"
    );
}

/// `store_received_tc_token`: inserts with a null sender_timestamp when absent; newer-wins —
/// replaces token and `token_timestamp` when the incoming timestamp is at least the stored one
/// (equal wins too), ignores an older one; always keeps `sender_timestamp`; a byte-less
/// placeholder never blocks the first real token, however old.
pub async fn tc_token_received(backend: &dyn Backend) {
    let b = backend;
    let received = |jid: &'static str, token: &'static [u8], ts: i64| async move {
        b.store_received_tc_token(jid, token, ts).await.must("store_received_tc_token")
    };

    let jid = "100000140001@lid";
    received(jid, b"first", T0 + 100).await;
    assert_eq!(
        tc_state(b, jid).await,
        Some((b"first".to_vec(), T0 + 100, None)),
        "store_received_tc_token on an absent JID"
    );
    b.touch_tc_token_sender_timestamp(jid, T0 + 777).await.must("touch_tc_token_sender_timestamp");
    received(jid, b"second", T0 + 200).await;
    assert_eq!(
        tc_state(b, jid).await,
        Some((b"second".to_vec(), T0 + 200, Some(T0 + 777))),
        "a newer token replaces the token and keeps sender_timestamp"
    );
    received(jid, b"stale", T0 + 150).await;
    assert_eq!(
        tc_state(b, jid).await,
        Some((b"second".to_vec(), T0 + 200, Some(T0 + 777))),
        "a stale token must not win"
    );
    received(jid, b"same-time", T0 + 200).await;
    assert_eq!(
        tc_state(b, jid).await,
        Some((b"same-time".to_vec(), T0 + 200, Some(T0 + 777))),
        "a token with an equal timestamp wins"
    );

    let placeholder = "100000140002@lid";
    b.touch_tc_token_sender_timestamp(placeholder, T0 + 9000).await.must("touch_tc_token_sender_timestamp");
    received(placeholder, b"real", T0 + 100).await;
    assert_eq!(
        tc_state(b, placeholder).await,
        Some((b"real".to_vec(), T0 + 100, Some(T0 + 9000))),
        "a placeholder never blocks the first real token, and its sender_timestamp is kept"
    );
}

/// Sent messages for retry: store (a re-store replaces the payload), `take_sent_message` is an
/// atomic take keyed by (chat, message id) — the second take is `None` —, and
/// `delete_expired_sent_messages(cutoff)` deletes rows stored before `cutoff` and returns the
/// count. SQLite stamps a row's age at insert time with the database's clock (`created_at
/// DEFAULT strftime('%s','now')`), so the cutoffs are ten years before/after now. Sweeps the
/// table first.
pub async fn sent_messages(backend: &dyn Backend) {
    let b = backend;
    let (far_past, far_future) = (now_secs() - TEN_YEARS, now_secs() + TEN_YEARS);
    b.delete_expired_sent_messages(far_future).await.must("delete_expired_sent_messages");

    let (chat1, chat2) = ("15551500001@s.whatsapp.net", "120363000000001502@g.us");
    let (id1, id2) = ("3EB0A0000000001501", "3EB0A0000000001502");
    b.store_sent_message(chat1, id1, b"payload-1").await.must("store_sent_message");
    b.store_sent_message(chat2, id1, b"payload-2").await.must("store_sent_message");
    b.store_sent_message(chat1, id2, b"payload-3").await.must("store_sent_message");
    b.store_sent_message(chat1, id1, b"payload-1b").await.must("store_sent_message");

    assert_eq!(
        b.take_sent_message(chat1, "3EB0A0000000001599").await.must("take_sent_message"),
        None,
        "take of an unknown message id"
    );
    assert_eq!(
        b.take_sent_message(chat1, id1).await.must("take_sent_message").as_deref(),
        Some(&b"payload-1b"[..]),
        "take returns the latest stored payload"
    );
    assert_eq!(
        b.take_sent_message(chat1, id1).await.must("take_sent_message"),
        None,
        "a second take of the same message"
    );
    assert_eq!(
        b.take_sent_message(chat2, id1).await.must("take_sent_message").as_deref(),
        Some(&b"payload-2"[..]),
        "the same message id in another chat is another message"
    );

    assert_eq!(
        b.delete_expired_sent_messages(far_past).await.must("delete_expired_sent_messages"),
        0,
        "a cutoff ten years ago deletes nothing just stored"
    );
    assert_eq!(
        b.delete_expired_sent_messages(far_future).await.must("delete_expired_sent_messages"),
        1,
        "a cutoff ten years ahead deletes the one remaining message"
    );
    assert_eq!(
        b.take_sent_message(chat1, id2).await.must("take_sent_message"),
        None,
        "an expired message can no longer be taken"
    );
}

/// The pending-inbound buffer: store/get/overwrite/delete keyed by (chat, sender, id) — a
/// stanza id is only unique within a (chat, sender) —, the batch store (upserting) and batch
/// delete, and `delete_expired_pending_inbound(cutoff)` deleting rows buffered before `cutoff`
/// (SQLite: stamped at insert with the database's clock; cutoffs are ten years before/after
/// now) and returning the count. Sweeps the buffer first.
pub async fn pending_inbound(backend: &dyn Backend) {
    let b = backend;
    let (far_past, far_future) = (now_secs() - TEN_YEARS, now_secs() + TEN_YEARS);
    b.delete_expired_pending_inbound(far_future).await.must("delete_expired_pending_inbound");
    let get = |chat: &'static str, sender: &'static str, id: &'static str| async move {
        b.get_pending_inbound(chat, sender, id).await.must("get_pending_inbound")
    };

    let (chat_a, chat_b) = ("120363000000001601@g.us", "15551600002@s.whatsapp.net");
    let (s1, s2) = ("15551600011:1@s.whatsapp.net", "100001600012@lid");
    let id = "3EB0B0000000001601";
    b.store_pending_inbound(chat_a, s1, id, b"m1").await.must("store_pending_inbound");
    b.store_pending_inbound(chat_a, s2, id, b"m2").await.must("store_pending_inbound");
    b.store_pending_inbound(chat_b, s1, id, b"m3").await.must("store_pending_inbound");
    assert_eq!(get(chat_a, s1, id).await.as_deref(), Some(&b"m1"[..]), "(chat_a, s1, id)");
    assert_eq!(get(chat_a, s2, id).await.as_deref(), Some(&b"m2"[..]), "(chat_a, s2, id)");
    assert_eq!(get(chat_b, s1, id).await.as_deref(), Some(&b"m3"[..]), "(chat_b, s1, id)");
    assert_eq!(get(chat_b, s2, id).await, None, "(chat_b, s2, id) was never stored");
    assert_eq!(get(chat_a, s1, "3EB0B0000000001699").await, None, "unknown id");
    assert_eq!(get(chat_a, s1, id).await.as_deref(), Some(&b"m1"[..]), "get does not consume");

    b.store_pending_inbound(chat_a, s1, id, b"m1b").await.must("store_pending_inbound");
    assert_eq!(get(chat_a, s1, id).await.as_deref(), Some(&b"m1b"[..]), "store overwrites");

    b.delete_pending_inbound(chat_a, s1, id).await.must("delete_pending_inbound");
    assert_eq!(get(chat_a, s1, id).await, None, "deleted (chat_a, s1, id)");
    assert!(get(chat_a, s2, id).await.is_some(), "delete removed (chat_a, s2, id)");
    assert!(get(chat_b, s1, id).await.is_some(), "delete removed (chat_b, s1, id)");
    b.delete_pending_inbound(chat_a, s1, id).await.must("delete_pending_inbound of an absent row");

    let row = |chat: &'static str, sender: &'static str, id: &'static str, message: &'static [u8]| PendingInboundRow {
        chat,
        sender,
        id,
        message,
    };
    let key = |chat: &'static str, sender: &'static str, id: &'static str| PendingInboundKey { chat, sender, id };
    let (r1, r2, r3) = ("3EB0B0000000001611", "3EB0B0000000001612", "3EB0B0000000001613");
    b.store_pending_inbound_batch(&[]).await.must("store_pending_inbound_batch(empty)");
    b.store_pending_inbound_batch(&[
        row(chat_a, s1, r1, b"batch-1"),
        row(chat_a, s1, r2, b"batch-2"),
        row(chat_b, s2, r3, b"batch-3"),
        row(chat_a, s2, id, b"m2b"),
    ])
    .await
    .must("store_pending_inbound_batch");
    assert_eq!(get(chat_a, s1, r1).await.as_deref(), Some(&b"batch-1"[..]), "batch row 1");
    assert_eq!(get(chat_a, s1, r2).await.as_deref(), Some(&b"batch-2"[..]), "batch row 2");
    assert_eq!(get(chat_b, s2, r3).await.as_deref(), Some(&b"batch-3"[..]), "batch row 3");
    assert_eq!(get(chat_a, s2, id).await.as_deref(), Some(&b"m2b"[..]), "batch overwrite");

    b.delete_pending_inbound_batch(&[]).await.must("delete_pending_inbound_batch(empty)");
    b.delete_pending_inbound_batch(&[
        key(chat_a, s1, r1),
        key(chat_b, s1, id),
        key(chat_b, s1, r3),
        key(chat_a, s1, "3EB0B0000000001698"),
    ])
    .await
    .must("delete_pending_inbound_batch");
    assert_eq!(get(chat_a, s1, r1).await, None, "batch-deleted (chat_a, s1, r1)");
    assert_eq!(get(chat_b, s1, id).await, None, "batch-deleted (chat_b, s1, id)");
    assert!(get(chat_a, s1, r2).await.is_some(), "batch delete removed an unlisted row");
    assert!(get(chat_b, s2, r3).await.is_some(), "batch delete of (chat_b, s1, r3) removed (chat_b, s2, r3)");

    assert_eq!(
        b.delete_expired_pending_inbound(far_past).await.must("delete_expired_pending_inbound"),
        0,
        "a cutoff ten years ago deletes nothing just buffered"
    );
    assert_eq!(
        b.delete_expired_pending_inbound(far_future).await.must("delete_expired_pending_inbound"),
        3,
        "a cutoff ten years ahead deletes the three buffered rows"
    );
    for (chat, sender, id) in [(chat_a, s1, r2), (chat_b, s2, r3), (chat_a, s2, id)] {
        assert_eq!(get(chat, sender, id).await, None, "expired ({chat}, {sender}, {id})");
    }
}

/// Duplicate keys in the pending-inbound batches: `store_pending_inbound_batch` with a
/// (chat, sender, id) twice, for a new key and for one already buffered, keeps one row per key
/// holding the last message (SQLite: one `INSERT OR REPLACE` per row, in order);
/// `delete_pending_inbound_batch` with a key listed several times deletes it and nothing else,
/// without error. Rows are counted through `delete_expired_pending_inbound` with a cutoff ten
/// years ahead; sweeps the buffer first.
pub async fn pending_inbound_batch_duplicates(backend: &dyn Backend) {
    let b = backend;
    let far_future = now_secs() + TEN_YEARS;
    b.delete_expired_pending_inbound(far_future).await.must("delete_expired_pending_inbound");
    let (chat, sender) = ("120363000000002901@g.us", "15552900001:1@s.whatsapp.net");
    let (stored, new, once) = ("3EB0B0000000002901", "3EB0B0000000002902", "3EB0B0000000002903");
    let get =
        |id: &'static str| async move { b.get_pending_inbound(chat, sender, id).await.must("get_pending_inbound") };
    let row = |id: &'static str, message: &'static [u8]| PendingInboundRow { chat, sender, id, message };
    let key = |id: &'static str| PendingInboundKey { chat, sender, id };

    b.store_pending_inbound(chat, sender, stored, b"stored-1").await.must("store_pending_inbound");
    b.store_pending_inbound_batch(&[
        row(new, b"new-1"),
        row(stored, b"stored-2"),
        row(once, b"once"),
        row(new, b"new-2"),
        row(stored, b"stored-3"),
    ])
    .await
    .must("store_pending_inbound_batch with duplicate keys");
    assert_eq!(
        get(stored).await.as_deref(),
        Some(&b"stored-3"[..]),
        "a buffered key twice in one batch: the last wins"
    );
    assert_eq!(get(new).await.as_deref(), Some(&b"new-2"[..]), "a new key twice in one batch: the last wins");
    assert_eq!(get(once).await.as_deref(), Some(&b"once"[..]), "a key once in the batch");

    b.delete_pending_inbound_batch(&[key(stored), key(new), key(stored), key(stored), key(new)])
        .await
        .must("delete_pending_inbound_batch with duplicate keys");
    assert_eq!(get(stored).await, None, "a key listed three times in one delete batch");
    assert_eq!(get(new).await, None, "a key listed twice in one delete batch");
    assert_eq!(get(once).await.as_deref(), Some(&b"once"[..]), "an unlisted key survives the delete batch");
    assert_eq!(
        b.delete_expired_pending_inbound(far_future).await.must("delete_expired_pending_inbound"),
        1,
        "one row per key: only the unlisted row was left"
    );
}

/// Message secrets, plain storage: `put_msg_secret` stores a never-expiring secret readable by
/// `get_msg_secret` and `get_msg_secret_with_ts` (parent time 0), keyed by all three of (chat,
/// sender, msg id); a re-put replaces the secret; `put_msg_secrets` returns the number of
/// entries written (SQLite: rows inserted or updated, so every entry of the batch counts, 0 for
/// an empty batch) and stores every row with its `message_ts`.
pub async fn msg_secrets(backend: &dyn Backend) {
    let b = backend;
    let (chat, other_chat) = ("15551700001@s.whatsapp.net", "120363000000001702@g.us");
    let (me, other_sender) = ("15551700000@s.whatsapp.net", "15551700003@s.whatsapp.net");
    let id = "3EB0D0000000001701";
    b.delete_expired_msg_secrets(SWEEP_ALL).await.must("delete_expired_msg_secrets");

    assert_eq!(b.get_msg_secret(chat, me, id).await.must("get_msg_secret"), None, "unknown secret");
    assert_eq!(
        b.get_msg_secret_with_ts(chat, me, id).await.must("get_msg_secret_with_ts"),
        None,
        "unknown secret with ts"
    );
    b.put_msg_secret(chat, me, id, &[0x17; 32]).await.must("put_msg_secret");
    assert_eq!(b.get_msg_secret(chat, me, id).await.must("get_msg_secret"), Some(vec![0x17; 32]), "get_msg_secret");
    assert_eq!(
        b.get_msg_secret_with_ts(chat, me, id).await.must("get_msg_secret_with_ts"),
        Some((vec![0x17; 32], 0)),
        "put_msg_secret stores an unknown parent time"
    );
    for (c, s, m) in [(other_chat, me, id), (chat, other_sender, id), (chat, me, "3EB0D0000000001799")] {
        assert_eq!(
            b.get_msg_secret(c, s, m).await.must("get_msg_secret"),
            None,
            "({c}, {s}, {m}) differs from the stored key in one column"
        );
    }
    b.put_msg_secret(chat, me, id, &[0x18; 32]).await.must("put_msg_secret");
    assert_eq!(
        b.get_msg_secret(chat, me, id).await.must("get_msg_secret"),
        Some(vec![0x18; 32]),
        "put_msg_secret replaces the secret"
    );
    assert_eq!(
        b.delete_expired_msg_secrets(SWEEP_ALL).await.must("delete_expired_msg_secrets"),
        0,
        "a secret from put_msg_secret never expires"
    );
    assert!(
        b.get_msg_secret(chat, me, id).await.must("get_msg_secret").is_some(),
        "put_msg_secret's secret survived a sweep"
    );

    assert_eq!(b.put_msg_secrets(Vec::new()).await.must("put_msg_secrets"), 0, "empty batch");
    let batch = vec![
        secret_entry(other_chat, other_sender, "3EB0D0000000001711", [0x21; 32], 0, T0 + 11),
        secret_entry(other_chat, me, "3EB0D0000000001712", [0x22; 32], 0, T0 + 12),
        // Already stored. SQLite: the count is the upsert's changed rows, so an update counts too.
        secret_entry(chat, me, id, [0x23; 32], 0, T0 + 13),
    ];
    assert_eq!(
        b.put_msg_secrets(batch.clone()).await.must("put_msg_secrets"),
        3,
        "put_msg_secrets returns the number of entries written, updates included (SQLite)"
    );
    for entry in &batch {
        assert_eq!(
            b.get_msg_secret_with_ts(&entry.chat, &entry.sender, &entry.msg_id).await.must("get_msg_secret_with_ts"),
            Some((entry.secret.to_vec(), entry.message_ts)),
            "batch row ({}, {}, {})",
            entry.chat,
            entry.sender,
            entry.msg_id
        );
    }
}

/// `put_msg_secrets` on an existing key: the incoming secret replaces the stored one;
/// `expires_at` merges per `merge_msg_secret_expiry` (0 = never wins, else the later deadline)
/// and `message_ts` per `merge_msg_secret_message_ts` (the later, so 0 never clobbers a known
/// time) — also for two entries of one batch with the same key. Deadlines are observed through
/// `delete_expired_msg_secrets`. Sweeps expiring secrets first.
pub async fn msg_secret_merge(backend: &dyn Backend) {
    let b = backend;
    b.delete_expired_msg_secrets(SWEEP_ALL).await.must("delete_expired_msg_secrets");
    let chat = "15551800001@s.whatsapp.net";
    let sender = "15551800000@s.whatsapp.net";
    let put = |entries: Vec<MsgSecretEntry>| async move {
        let count = entries.len();
        assert_eq!(b.put_msg_secrets(entries).await.must("put_msg_secrets"), count, "put_msg_secrets return value");
    };
    let with_ts = |id: &'static str| async move {
        b.get_msg_secret_with_ts(chat, sender, id).await.must("get_msg_secret_with_ts")
    };
    let sweep =
        |cutoff: i64| async move { b.delete_expired_msg_secrets(cutoff).await.must("delete_expired_msg_secrets") };

    // A: deadline T0+1000, then an edit re-persist with a shorter one: the window must not shrink.
    let a = "3EB0E0000000001801";
    put(vec![secret_entry(chat, sender, a, [0xa1; 32], T0 + 1000, 0)]).await;
    put(vec![secret_entry(chat, sender, a, [0xa2; 32], T0 + 500, T0 + 20)]).await;
    assert_eq!(
        with_ts(a).await,
        Some((vec![0xa2; 32], T0 + 20)),
        "re-put replaces the secret; a known parent time replaces 0"
    );
    assert_eq!(sweep(T0 + 999).await, 0, "the later deadline (T0+1000) was kept, not T0+500");
    put(vec![secret_entry(chat, sender, a, [0xa3; 32], T0 + 2000, 0)]).await;
    assert_eq!(with_ts(a).await, Some((vec![0xa3; 32], T0 + 20)), "0 never clobbers a known parent time");
    put(vec![secret_entry(chat, sender, a, [0xa4; 32], T0 + 1500, T0 + 10)]).await;
    assert_eq!(with_ts(a).await, Some((vec![0xa4; 32], T0 + 20)), "the later parent time is kept");
    assert_eq!(sweep(T0 + 1999).await, 0, "a deadline moved to T0+2000 stays there");
    assert_eq!(sweep(T0 + 2000).await, 1, "deleted at its deadline T0+2000");
    assert_eq!(with_ts(a).await, None, "expired secret");

    // B: never-expiring, then a deadline: never wins.
    let b_id = "3EB0E0000000001802";
    put(vec![secret_entry(chat, sender, b_id, [0xb1; 32], 0, T0)]).await;
    put(vec![secret_entry(chat, sender, b_id, [0xb2; 32], T0 + 5, T0)]).await;
    // C: a deadline, then never-expiring: never wins.
    let c = "3EB0E0000000001803";
    put(vec![secret_entry(chat, sender, c, [0xc1; 32], T0 + 5, T0)]).await;
    put(vec![secret_entry(chat, sender, c, [0xc2; 32], 0, T0)]).await;
    // D: the same key twice in one batch merges as if written one after the other, and counts
    // twice in the return value. SQLite: its multi-row upsert applies rows one by one. (A single
    // PostgreSQL `INSERT … ON CONFLICT DO UPDATE` refuses to touch a row twice, so a batch has to
    // be merged per key first.)
    let d = "3EB0E0000000001804";
    put(vec![
        secret_entry(chat, sender, d, [0xd1; 32], T0 + 3000, T0 + 30),
        secret_entry(chat, sender, d, [0xd2; 32], T0 + 100, 0),
    ])
    .await;
    assert_eq!(
        with_ts(d).await,
        Some((vec![0xd2; 32], T0 + 30)),
        "two entries with one key in a batch: the second's secret, the known parent time"
    );
    assert_eq!(sweep(T0 + 2999).await, 0, "B and C never expire; D kept its later deadline");
    assert_eq!(with_ts(b_id).await, Some((vec![0xb2; 32], T0)), "B after merge");
    assert_eq!(with_ts(c).await, Some((vec![0xc2; 32], T0)), "C after merge");
    assert_eq!(sweep(SWEEP_ALL).await, 1, "only D had a deadline");
    assert!(with_ts(b_id).await.is_some(), "B must never expire");
    assert!(with_ts(c).await.is_some(), "C must never expire");
}

/// `delete_expired_msg_secrets(cutoff)` deletes exactly the rows whose non-zero `expires_at` is
/// at or before `cutoff` (inclusive, unlike the strict cutoffs of the other sweeps), keeps
/// `expires_at = 0` rows whatever the cutoff, and returns the number deleted. Sweeps expiring
/// secrets first.
pub async fn msg_secret_expiry(backend: &dyn Backend) {
    let b = backend;
    b.delete_expired_msg_secrets(SWEEP_ALL).await.must("delete_expired_msg_secrets");
    let chat = "120363000000001901@g.us";
    let sender = "100001900000@lid";
    // (msg id, expires_at)
    let rows = [
        ("3EB0F0000000001901", T0 + 10),
        ("3EB0F0000000001902", T0 + 20),
        ("3EB0F0000000001903", T0 + 21),
        ("3EB0F0000000001904", 0),
        ("3EB0F0000000001905", T0 + 40),
    ];
    let entries = rows
        .iter()
        .map(|&(id, expires_at)| secret_entry(chat, sender, id, [0x19; 32], expires_at, T0))
        .collect::<Vec<_>>();
    assert_eq!(b.put_msg_secrets(entries).await.must("put_msg_secrets"), rows.len(), "put_msg_secrets");
    let present = || async move {
        let mut ids = Vec::new();
        for (id, _) in rows {
            if b.get_msg_secret(chat, sender, id).await.must("get_msg_secret").is_some() {
                ids.push(id);
            }
        }
        ids
    };

    assert_eq!(
        b.delete_expired_msg_secrets(T0 + 9).await.must("delete_expired_msg_secrets"),
        0,
        "a cutoff before every deadline"
    );
    assert_eq!(
        b.delete_expired_msg_secrets(T0 + 20).await.must("delete_expired_msg_secrets"),
        2,
        "deadlines T0+10 and T0+20 are at or before the cutoff T0+20"
    );
    assert_eq!(
        present().await,
        vec!["3EB0F0000000001903", "3EB0F0000000001904", "3EB0F0000000001905"],
        "rows left after the cutoff T0+20"
    );
    assert_eq!(
        b.delete_expired_msg_secrets(SWEEP_ALL).await.must("delete_expired_msg_secrets"),
        2,
        "every remaining deadline"
    );
    assert_eq!(present().await, vec!["3EB0F0000000001904"], "expires_at = 0 is kept");
}

/// `DeviceStore::save` then `load` returns the same device: every serializable field (JIDs,
/// registration id, the three key pairs' bytes, signatures, account, push name, app version,
/// routing info, props hash, prekey watermarks, flags, nct salt, server cert chain, login
/// counter, rotation time) — and a later save that clears the optional fields clears them.
/// `save` is an upsert (SQLite), so this works whether or not `create()` ran. The runtime-only
/// fields are not stored: SQLite's `load` restores `device_props` to `DEVICE_PROPS` and
/// `client_profile` to `ClientProfile::web()` even when the saved device carried others.
pub async fn device_round_trip(backend: &dyn Backend) {
    let b = backend;
    let mut device = Device::new();
    device.pn = Some("15551234567@s.whatsapp.net".parse().expect("valid pn JID"));
    device.lid = Some("100000012345678:21@lid".parse().expect("valid lid JID"));
    device.registration_id = 123_456_789;
    device.signed_pre_key_id = 7;
    device.account = Some(Arc::new(ADVSignedDeviceIdentity {
        details: Some(vec![0x0a, 0x02, 0x08, 0x15]),
        account_signature_key: Some(vec![0x31; 32]),
        account_signature: Some(vec![0x32; 64]),
        device_signature: Some(vec![0x33; 64]),
    }));
    device.push_name = "Conformance ✓ device".to_string();
    device.app_version_primary = 2;
    device.app_version_secondary = 3000;
    device.app_version_tertiary = 1_023_456_789;
    device.app_version_last_fetched_ms = 1_700_000_000_123;
    device.edge_routing_info = Some(vec![0x08, 0x02, 0x08, 0x05]);
    device.props_hash = Some("props-hash-2001".to_string());
    device.next_pre_key_id = 812;
    device.first_unupload_pre_key_id = 800;
    device.server_has_prekeys = true;
    device.nct_salt = Some(vec![0x5a; 32]);
    device.server_cert_chain = Some(CachedServerCertChain {
        intermediate: CachedNoiseCert { key: [0x41; 32], not_before: T0, not_after: T0 + 86_400 * 365 },
        leaf: CachedNoiseCert { key: [0x42; 32], not_before: T0 + 60, not_after: T0 + 86_400 * 30 },
    });
    device.login_counter = 17;
    device.lid_migrated = true;
    device.last_signed_pre_key_rotation_ms = 1_700_000_000_999;
    device.read_receipts_disabled = true;
    // Runtime-only (`#[serde(skip)]`): set before `connect()` on every start, never stored.
    device.device_props = Arc::new(DeviceProps { os: Some("conformance-os".to_string()), ..DEVICE_PROPS.clone() });
    device.client_profile = ClientProfile::android("14");

    b.save(&device).await.must("save");
    assert!(b.exists().await.must("exists"), "exists() after save()");
    let loaded = b.load().await.must("load").unwrap_or_else(|| panic!("load() after save() returned None"));
    assert_eq!(loaded.pn, device.pn, "pn");
    assert_eq!(loaded.lid, device.lid, "lid");
    assert_eq!(loaded.registration_id, device.registration_id, "registration_id");
    assert_eq!(
        loaded.identity_key.public_key.public_key_bytes(),
        device.identity_key.public_key.public_key_bytes(),
        "identity key"
    );
    assert_same_device(&loaded, &device, "load() after save()");
    assert_runtime_defaults(&loaded, "load() after save()");

    let mut cleared = loaded.clone();
    cleared.pn = None;
    cleared.lid = None;
    cleared.account = None;
    cleared.push_name = String::new();
    cleared.edge_routing_info = None;
    cleared.props_hash = None;
    cleared.nct_salt = None;
    cleared.server_cert_chain = None;
    cleared.server_has_prekeys = false;
    cleared.lid_migrated = false;
    cleared.read_receipts_disabled = false;
    cleared.login_counter = 18;
    cleared.next_pre_key_id = 900;
    b.save(&cleared).await.must("save");
    let reloaded =
        b.load().await.must("load").unwrap_or_else(|| panic!("load() after the second save() returned None"));
    assert_same_device(&reloaded, &cleared, "load() after a save() that clears optional fields");
    assert_runtime_defaults(&reloaded, "load() after the second save()");
}

/// Two backends over one database for two different devices see nothing of each other: every
/// read on `b` misses what `a` wrote, `b`'s sweeps and "clear all" operations leave `a`'s rows
/// alone, and writing the same keys on `b` does not change `a`'s values. Both must be fresh.
pub async fn isolated(a: &dyn Backend, b: &dyn Backend) {
    let addr = "15552000001:1@s.whatsapp.net";
    let group = "120363000000002001@g.us";
    let sender_key = "120363000000002001@g.us::15552000001:1@s.whatsapp.net";
    let device_jid = "15552000001:1@s.whatsapp.net";
    let (chat, msg_id) = ("15552000002@s.whatsapp.net", "3EB0F0000000002001");
    let key_id: &[u8] = &[0x20, 0, 0, 0, 0x01];
    let index = [0x20u8; 32];

    // First: SQLite's LID-mapping table has a foreign key to the device row.
    a.save(&Device::new()).await.must("a.save");
    a.put_identity(addr, [0x20; 32]).await.must("a.put_identity");
    a.put_session(addr, b"a-session").await.must("a.put_session");
    a.store_prekey(2001, b"a-prekey", true).await.must("a.store_prekey");
    a.store_signed_prekey(2001, b"a-signed").await.must("a.store_signed_prekey");
    a.put_sender_key(sender_key, b"a-sender-key").await.must("a.put_sender_key");
    let sync_key = AppStateSyncKey { key_data: vec![0x20; 32], fingerprint: vec![0x20], timestamp: T0 };
    a.set_sync_key(key_id, sync_key).await.must("a.set_sync_key");
    let version = HashState { version: 20, ..HashState::default() };
    a.set_version("regular", version).await.must("a.set_version");
    a.put_mutation_macs("regular", 20, &[mac(&index, b"a-mac")]).await.must("a.put_mutation_macs");
    a.set_sender_key_status(group, &[(device_jid, true)]).await.must("a.set_sender_key_status");
    a.put_lid_mapping(&lid_entry("100002000001", "15552000001", T0, T0, "usync")).await.must("a.put_lid_mapping");
    a.save_base_key(addr, msg_id, b"a-base").await.must("a.save_base_key");
    a.update_device_list(DeviceListRecord {
        user: "15552000001".to_string(),
        devices: vec![DeviceInfo::new(0, None)],
        timestamp: T0,
        phash: None,
        raw_id: None,
    })
    .await
    .must("a.update_device_list");
    a.put_group_metadata(group, b"a-group").await.must("a.put_group_metadata");
    a.put_tc_token(chat, &tc(b"a-token", T0, Some(T0))).await.must("a.put_tc_token");
    a.store_sent_message(chat, msg_id, b"a-sent").await.must("a.store_sent_message");
    a.store_pending_inbound(chat, chat, msg_id, b"a-pending").await.must("a.store_pending_inbound");
    a.put_msg_secrets(vec![secret_entry(chat, chat, msg_id, [0x20; 32], T0 + 1, T0)]).await.must("a.put_msg_secrets");

    assert_eq!(b.load_identity(addr).await.must("b.load_identity"), None, "identity leaked");
    assert!(!b.has_session(addr).await.must("b.has_session"), "session leaked");
    assert!(
        !b.has_signal_state_for_user("15552000001").await.must("b.has_signal_state_for_user"),
        "signal state leaked"
    );
    assert_eq!(b.load_prekey(2001).await.must("b.load_prekey"), None, "prekey leaked");
    assert_eq!(b.get_max_prekey_id().await.must("b.get_max_prekey_id"), 0, "prekey ids leaked");
    assert_eq!(b.load_signed_prekey(2001).await.must("b.load_signed_prekey"), None, "signed prekey leaked");
    assert!(b.load_all_signed_prekeys().await.must("b.load_all_signed_prekeys").is_empty(), "signed prekeys leaked");
    assert_eq!(b.get_sender_key(sender_key).await.must("b.get_sender_key"), None, "sender key leaked");
    assert!(b.get_sync_key(key_id).await.must("b.get_sync_key").is_none(), "sync key leaked");
    assert_eq!(b.get_latest_sync_key_id().await.must("b.get_latest_sync_key_id"), None, "latest sync key leaked");
    assert_eq!(b.get_version("regular").await.must("b.get_version").version, 0, "version leaked");
    assert_eq!(b.get_mutation_mac("regular", &index).await.must("b.get_mutation_mac"), None, "MAC leaked");
    assert!(b.get_sender_key_devices(group).await.must("b.get_sender_key_devices").is_empty(), "SKDM status leaked");
    assert!(b.get_lid_mapping("100002000001").await.must("b.get_lid_mapping").is_none(), "LID mapping leaked");
    assert!(b.get_pn_mapping("15552000001").await.must("b.get_pn_mapping").is_none(), "PN mapping leaked");
    assert!(b.get_all_lid_mappings().await.must("b.get_all_lid_mappings").is_empty(), "LID mappings leaked");
    assert!(!b.has_same_base_key(addr, msg_id, b"a-base").await.must("b.has_same_base_key"), "base key leaked");
    assert!(b.get_devices("15552000001").await.must("b.get_devices").is_none(), "device list leaked");
    assert_eq!(b.get_group_metadata(group).await.must("b.get_group_metadata"), None, "group metadata leaked");
    assert!(b.get_tc_token(chat).await.must("b.get_tc_token").is_none(), "tc token leaked");
    assert!(b.get_all_tc_token_jids().await.must("b.get_all_tc_token_jids").is_empty(), "tc token JIDs leaked");
    assert_eq!(
        b.get_pending_inbound(chat, chat, msg_id).await.must("b.get_pending_inbound"),
        None,
        "pending inbound leaked"
    );
    assert_eq!(b.get_msg_secret(chat, chat, msg_id).await.must("b.get_msg_secret"), None, "msg secret leaked");
    assert!(!b.exists().await.must("b.exists"), "device row leaked");
    assert!(b.load().await.must("b.load").is_none(), "device leaked");

    // b's sweeps and clears, and writes to the same keys, must leave a's rows alone.
    let far_future = now_secs() + TEN_YEARS;
    assert_eq!(b.take_sent_message(chat, msg_id).await.must("b.take_sent_message"), None, "sent message leaked");
    b.clear_all_sender_key_devices().await.must("b.clear_all_sender_key_devices");
    b.delete_sender_key_device_rows(&[device_jid]).await.must("b.delete_sender_key_device_rows");
    b.clear_mutation_macs("regular").await.must("b.clear_mutation_macs");
    b.delete_expired_tc_tokens(SWEEP_ALL, SWEEP_ALL).await.must("b.delete_expired_tc_tokens");
    b.delete_expired_sent_messages(far_future).await.must("b.delete_expired_sent_messages");
    b.delete_expired_pending_inbound(far_future).await.must("b.delete_expired_pending_inbound");
    b.delete_expired_msg_secrets(SWEEP_ALL).await.must("b.delete_expired_msg_secrets");
    b.put_identity(addr, [0x21; 32]).await.must("b.put_identity");
    b.put_session(addr, b"b-session").await.must("b.put_session");
    b.store_prekey(2001, b"b-prekey", false).await.must("b.store_prekey");
    b.remove_signed_prekey(2001).await.must("b.remove_signed_prekey");
    b.delete_sender_key(sender_key).await.must("b.delete_sender_key");
    b.delete_group_metadata(group).await.must("b.delete_group_metadata");
    b.delete_devices("15552000001").await.must("b.delete_devices");

    assert_eq!(a.load_identity(addr).await.must("a.load_identity"), Some([0x20; 32]), "a's identity");
    assert_eq!(a.get_session(addr).await.must("a.get_session").as_deref(), Some(&b"a-session"[..]), "a's session");
    assert_eq!(a.load_prekey(2001).await.must("a.load_prekey").as_deref(), Some(&b"a-prekey"[..]), "a's prekey");
    assert!(a.load_signed_prekey(2001).await.must("a.load_signed_prekey").is_some(), "a's signed prekey");
    assert!(a.get_sender_key(sender_key).await.must("a.get_sender_key").is_some(), "a's sender key");
    assert_eq!(
        a.get_sender_key_devices(group).await.must("a.get_sender_key_devices"),
        vec![(device_jid.to_string(), true)],
        "a's sender-key device status"
    );
    assert!(a.get_mutation_mac("regular", &index).await.must("a.get_mutation_mac").is_some(), "a's MAC");
    assert!(a.get_tc_token(chat).await.must("a.get_tc_token").is_some(), "a's tc token");
    assert!(a.get_group_metadata(group).await.must("a.get_group_metadata").is_some(), "a's group metadata");
    assert!(a.get_devices("15552000001").await.must("a.get_devices").is_some(), "a's device list");
    assert!(
        a.get_pending_inbound(chat, chat, msg_id).await.must("a.get_pending_inbound").is_some(),
        "a's pending inbound"
    );
    assert!(a.get_msg_secret(chat, chat, msg_id).await.must("a.get_msg_secret").is_some(), "a's msg secret");
    assert_eq!(
        a.take_sent_message(chat, msg_id).await.must("a.take_sent_message").as_deref(),
        Some(&b"a-sent"[..]),
        "a's sent message"
    );
    assert!(a.exists().await.must("a.exists"), "a's device row");
}

/// A value in every table of the device state of `backend` (a fresh one), for
/// [`assert_same_state`]: what moving a device's state from one backend to another must keep.
pub async fn fill(backend: &dyn Backend) {
    let b = backend;
    let mut device = Device::new();
    device.pn = Some("15552100000@s.whatsapp.net".parse().expect("valid pn JID"));
    device.lid = Some("100002100000:3@lid".parse().expect("valid lid JID"));
    device.push_name = "Moved ✓".to_string();
    device.next_pre_key_id = 31;
    device.login_counter = 4;
    b.save(&device).await.must("save");
    b.put_identity("15552100001.0", [0x21; 32]).await.must("put_identity");
    b.put_session("15552100001.0", b"session-21").await.must("put_session");
    b.store_prekey(21, b"prekey-21", true).await.must("store_prekey");
    b.store_prekey(22, b"prekey-22", false).await.must("store_prekey");
    b.store_signed_prekey(5, b"signed-5").await.must("store_signed_prekey");
    b.put_sender_key("120363000000002101@g.us::15552100001::0", b"sender-key").await.must("put_sender_key");
    let key = AppStateSyncKey { key_data: vec![0x22; 32], fingerprint: vec![1, 2, 3], timestamp: T0 + 2101 };
    b.set_sync_key(b"\x00\x00\x21\x01", key).await.must("set_sync_key");
    let version = HashState { version: 21, hash: [0x23; 128], ..HashState::default() };
    b.set_version("regular_high", version).await.must("set_version");
    b.put_mutation_macs("regular_high", 21, &[mac(&[0x24; 32], b"value-mac")]).await.must("put_mutation_macs");
    let statuses = [("15552100001:1@s.whatsapp.net", true), ("15552100002:2@s.whatsapp.net", false)];
    b.set_sender_key_status("120363000000002101@g.us", &statuses).await.must("set_sender_key_status");
    b.put_lid_mapping(&lid_entry("100002100001", "15552100001", T0 + 1, T0 + 2, "usync")).await.must("put_lid_mapping");
    b.save_base_key("15552100001.0", "3EB0E0000000002101", b"base-key").await.must("save_base_key");
    let list = DeviceListRecord {
        user: "15552100001".to_string(),
        devices: vec![DeviceInfo::new(0, None), DeviceInfo::new(7, Some(2)).with_hosting(true)],
        timestamp: T0 + 2102,
        phash: Some("2:bW92ZWQ=".to_string()),
        // Past i32: the SQLite file holds it negative.
        raw_id: Some(0x9000_0021),
    };
    b.update_device_list(list).await.must("update_device_list");
    b.put_group_metadata("120363000000002101@g.us", b"\x0a\x05moved").await.must("put_group_metadata");
    b.put_tc_token("15552100001@s.whatsapp.net", &tc(b"tc-21", T0 + 3, Some(T0 + 4))).await.must("put_tc_token");
    b.store_sent_message("15552100001@s.whatsapp.net", "3EB0E0000000002102", b"sent").await.must("store_sent_message");
    b.store_pending_inbound("15552100001@s.whatsapp.net", "15552100001@s.whatsapp.net", "3EB0E0000000002103", b"in")
        .await
        .must("store_pending_inbound");
    let secret = secret_entry(
        "15552100001@s.whatsapp.net",
        "15552100000@s.whatsapp.net",
        "3EB0E0000000002104",
        [0x25; 32],
        0,
        T0 + 5,
    );
    b.put_msg_secrets(vec![secret]).await.must("put_msg_secrets");
}

/// `actual` holds every value [`fill`] wrote into `expected`, read through the storage traits
/// of each.
pub async fn assert_same_state(expected: &dyn Backend, actual: &dyn Backend) {
    let (e, a) = (expected, actual);
    let device = e.load().await.must("load").expect("the device was saved");
    let moved = a.load().await.must("load").unwrap_or_else(|| panic!("the device is missing"));
    assert_same_device(&moved, &device, "the device");
    let address = "15552100001.0";
    assert_eq!(
        a.load_identity(address).await.must("load_identity"),
        e.load_identity(address).await.must("load_identity")
    );
    assert!(e.load_identity(address).await.must("load_identity").is_some(), "an identity was filled");
    assert_eq!(a.get_session(address).await.must("get_session"), e.get_session(address).await.must("get_session"));
    assert!(e.get_session(address).await.must("get_session").is_some(), "a session was filled");
    assert_eq!(
        sorted(a.load_prekeys_batch(&[21, 22]).await.must("load_prekeys_batch")),
        sorted(e.load_prekeys_batch(&[21, 22]).await.must("load_prekeys_batch")),
        "prekeys"
    );
    assert_eq!(a.get_max_prekey_id().await.must("get_max_prekey_id"), 22, "the greatest prekey id");
    assert_eq!(
        a.load_all_signed_prekeys().await.must("load_all_signed_prekeys"),
        vec![(5, b"signed-5".to_vec())],
        "signed prekeys"
    );
    let sender = "120363000000002101@g.us::15552100001::0";
    assert_eq!(a.get_sender_key(sender).await.must("get_sender_key").as_deref(), Some(&b"sender-key"[..]));
    let key_id = b"\x00\x00\x21\x01";
    let key = |k: Option<AppStateSyncKey>| k.map(|k| (k.key_data, k.fingerprint, k.timestamp));
    assert_eq!(
        key(a.get_sync_key(key_id).await.must("get_sync_key")),
        key(e.get_sync_key(key_id).await.must("get_sync_key"))
    );
    assert_eq!(a.get_latest_sync_key_id().await.must("get_latest_sync_key_id").as_deref(), Some(&key_id[..]));
    let version = e.get_version("regular_high").await.must("get_version");
    assert_eq!(version.version, 21, "the filled version");
    assert_hash_state(&a.get_version("regular_high").await.must("get_version"), &version, "the app-state version");
    assert_eq!(
        a.get_mutation_mac("regular_high", &[0x24; 32]).await.must("get_mutation_mac").as_deref(),
        Some(&b"value-mac"[..])
    );
    let group = "120363000000002101@g.us";
    assert_eq!(
        sorted(a.get_sender_key_devices(group).await.must("get_sender_key_devices")),
        sorted(e.get_sender_key_devices(group).await.must("get_sender_key_devices")),
        "sender key devices"
    );
    assert_eq!(a.get_sender_key_devices(group).await.must("get_sender_key_devices").len(), 2);
    let mapping = e.get_lid_mapping("100002100001").await.must("get_lid_mapping").expect("the filled mapping");
    assert_lid_entry(a.get_lid_mapping("100002100001").await.must("get_lid_mapping"), &mapping, "the LID mapping");
    assert_lid_entry(a.get_pn_mapping("15552100001").await.must("get_pn_mapping"), &mapping, "the phone mapping");
    assert!(
        a.has_same_base_key("15552100001.0", "3EB0E0000000002101", b"base-key").await.must("has_same_base_key"),
        "the base key"
    );
    let list = e.get_devices("15552100001").await.must("get_devices").expect("the filled device list");
    assert_device_list(a.get_devices("15552100001").await.must("get_devices"), &list, "the device list");
    assert_eq!(a.get_group_metadata(group).await.must("get_group_metadata").as_deref(), Some(&b"\x0a\x05moved"[..]));
    let jid = "15552100001@s.whatsapp.net";
    assert_eq!(tc_state(a, jid).await, Some((b"tc-21".to_vec(), T0 + 3, Some(T0 + 4))), "the tc token");
    assert_eq!(tc_state(a, jid).await, tc_state(e, jid).await, "the tc token");
    assert_eq!(
        a.get_pending_inbound(jid, jid, "3EB0E0000000002103").await.must("get_pending_inbound").as_deref(),
        Some(&b"in"[..])
    );
    let (me, secret_id) = ("15552100000@s.whatsapp.net", "3EB0E0000000002104");
    assert_eq!(
        a.get_msg_secret_with_ts(jid, me, secret_id).await.must("get_msg_secret_with_ts"),
        Some((vec![0x25; 32], T0 + 5)),
        "the message secret"
    );
    // Taken last: taking a sent message deletes it.
    assert_eq!(
        a.take_sent_message(jid, "3EB0E0000000002102").await.must("take_sent_message").as_deref(),
        Some(&b"sent"[..])
    );
}

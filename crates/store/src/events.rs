//! The event outbox: what happened on a tenant's devices, recorded once and in order.
//!
//! A device session appends what WhatsApp delivered (a batch of messages) in one transaction
//! *before* WhatsApp is told it arrived, so a crash at any point loses nothing: what was not
//! committed is delivered again by WhatsApp, and what was committed is recognised by its
//! deduplication key (for a message: chat, sender and message id) and not recorded twice.
//!
//! Each event gets a stable id (a [ULID](https://github.com/ulid/spec)), and a sequence
//! number per device and chat that starts at 1 and has no gaps, so a consumer sees at once
//! whether it missed an event of a chat. The store's own order (the order of commits) is the
//! order events are listed and delivered in.

use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError, from_json, links, tenants, to_json};
use crate::db::{Conn, Row, params};

/// The types of event the outbox records, each described in the admin API's document.
pub const EVENT_TYPES: &[&str] =
    &[MESSAGE_RECEIVED, MESSAGE_STATUS, DEVICE_STATUS, CONTACT_LINKED, CONTACT_NAME, GROUP_UPDATED];

/// The type of the event of a message a device received.
pub const MESSAGE_RECEIVED: &str = "message.received";

/// The type of the event of a message a device sent reaching a new status.
pub const MESSAGE_STATUS: &str = "message.status";

/// The type of the event of a device changing state (linked, connected, disconnected, logged
/// out …).
pub const DEVICE_STATUS: &str = "device.status";

/// The type of the event of a LID answering a verification code: it is linked to the phone
/// number the code was sent to ([`links`](crate::links)).
pub const CONTACT_LINKED: &str = "contact.linked";

/// The type of the event of a change to a group a device is a member of (its subject or
/// description, its members, a setting), as WhatsApp notified it.
pub const GROUP_UPDATED: &str = "group.updated";

/// The type of the event of a device learning a new name of a contact: a push name, business
/// name or address-book name ([`names`](crate::names)).
pub const CONTACT_NAME: &str = "contact.name";

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The device it happened on.
    pub device: String,
    /// Its type, e.g. `message.received`.
    pub kind: String,
    /// The chat it belongs to (a user, LID or group JID); events of one chat are numbered.
    pub chat: String,
    /// What makes it the same event when it is reported again (for a message: the chat, the
    /// sender and the message id); `None` for an event that cannot repeat.
    pub dedup: Option<String>,
    /// When it happened, RFC 3339 UTC.
    pub at: String,
    /// The fields of its type.
    pub data: Value,
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Its id, a ULID: unique, and sortable by the time it was recorded.
    pub id: String,
    /// Its type, e.g. `message.received`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant.
    pub tenant: String,
    /// The device it happened on.
    pub device: String,
    /// The chat it belongs to.
    pub chat: String,
    /// Its number among the events of the device's chat: 1, 2, 3 … without gaps.
    pub seq: u64,
    /// When it happened, RFC 3339 UTC.
    pub at: String,
    /// The fields of its type.
    pub data: Value,
}

impl Store {
    /// Appends `events` of `tenant` in one transaction, in order, and returns those that were
    /// new: an event whose deduplication key is recorded already is left out. Events of a
    /// device that no longer exists are dropped (nothing can read them). A received message
    /// that answers a LID verification links the LID in the same transaction, and its
    /// `contact.linked` event follows it ([`links`](crate::links)).
    pub fn append_events(&self, tenant: &str, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError> {
        self.transaction(|tx| {
            let mut appended = Vec::new();
            for event in events {
                if let Some(record) = append(tx, tenant, event)? {
                    let linked = links::answer(tx, tenant, &record, &self.links)?;
                    appended.extend(std::iter::once(record).chain(linked));
                }
            }
            Ok(appended)
        })
    }

    /// Up to `limit` events of `tenant` recorded after the event `after` (from the first when
    /// `None`), oldest first.
    pub fn events(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|conn| {
            tenants::require(conn, tenant)?;
            let after = match after {
                None => 0,
                Some(id) => conn
                    .query_opt(
                        "SELECT position FROM events WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant, id],
                        |row| row.get::<i64>(0),
                    )?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "tenant `{tenant}` has no event `{id}`: list from the start instead"
                        ))
                    })?,
            };
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            conn.query(
                &format!(
                    "SELECT {COLUMNS} FROM events WHERE tenant_id = ?1 AND position > ?2 ORDER BY position LIMIT ?3"
                ),
                params![tenant, after, limit],
                |row| read(row, 0),
            )
        })
    }

    /// The sender (a user's JID) of the message `id` that `device` of `tenant` received in
    /// `chat`, if it recorded one.
    pub fn received_from(
        &self,
        tenant: &str,
        device: &str,
        chat: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            let select = conn.pick(RECEIVED_FROM_SQLITE, RECEIVED_FROM_POSTGRES);
            let sender =
                conn.query_opt(select, params![tenant, device, chat, id], |row| row.get::<Option<String>>(0))?;
            Ok(sender.flatten())
        })
    }
}

/// The sender of a received message, by its chat and id, read from its data as `$sender`
/// (each database has its JSON functions). `kind` is written out (it is [`MESSAGE_RECEIVED`])
/// so that the databases take the partial index `events_received_by_message_id`.
macro_rules! received_from {
    ($sender:literal) => {
        concat!(
            "SELECT ",
            $sender,
            " FROM events
     WHERE tenant_id = ?1 AND device = ?2 AND chat = ?3 AND kind = 'message.received' AND message_id = ?4
     ORDER BY seq DESC LIMIT 1"
        )
    };
}

/// [`received_from!`] in SQLite.
const RECEIVED_FROM_SQLITE: &str = received_from!("json_extract(data, '$.sender.jid')");

/// [`received_from!`] in PostgreSQL.
const RECEIVED_FROM_POSTGRES: &str = received_from!("data::jsonb #>> '{sender,jid}'");

/// The columns of an event that [`read`] reads, in its order (qualified, for joins).
pub(crate) const COLUMNS: &str =
    "events.id, events.kind, events.tenant_id, events.device, events.chat, events.seq, events.at, events.data";

/// Reads an event from the [`COLUMNS`] of `row` that start at column `first`.
pub(crate) fn read(row: &Row<'_>, first: usize) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        id: row.get(first)?,
        kind: row.get(first + 1)?,
        tenant: row.get(first + 2)?,
        device: row.get(first + 3)?,
        chat: row.get(first + 4)?,
        seq: row.get::<i64>(first + 5)? as u64,
        at: row.get(first + 6)?,
        data: from_json(&row.get::<String>(first + 7)?)?,
    })
}

/// The end of the outbox: the position of the last event ever recorded (0 before the first),
/// even if that event is gone with its device. Events recorded later come after it.
///
/// In PostgreSQL, a write transaction reads the positions' sequence: it holds the store's write
/// lock, so no other write has taken a position it has not committed. A read transaction
/// cannot: the sequence is not transactional, and counts the positions of a write under way,
/// or committed after the read began, whose events the read does not see; an end past them
/// would have a webhook's next look start after them, and skip them. A read ends at the last
/// event it sees instead: positions are given out in commit order, so every event it does not
/// see comes after that one (its end leaves out only events gone with their device after it).
pub(crate) fn end(conn: &Conn<'_>) -> Result<i64, StoreError> {
    let end = conn.query_opt(
        conn.pick(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            "SELECT CASE WHEN current_setting('transaction_read_only') = 'on'
                 THEN (SELECT COALESCE(MAX(position), 0) FROM events)
                 ELSE (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_position_seq)
             END",
        ),
        &[],
        |row| row.get::<i64>(0),
    )?;
    Ok(end.unwrap_or(0))
}

/// Appends one event, unless its device is gone or it is recorded already.
pub(crate) fn append(tx: &Conn<'_>, tenant: &str, event: &NewEvent) -> Result<Option<EventRecord>, StoreError> {
    let device_exists = tx.query_value::<bool>(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE tenant_id = ?1 AND id = ?2)",
        params![tenant, event.device],
    )?;
    if !device_exists {
        return Ok(None);
    }
    if let Some(dedup) = &event.dedup {
        let seen = "SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = ?1 AND device = ?2 AND dedup = ?3)";
        if tx.query_value::<bool>(seen, params![tenant, event.device, dedup])? {
            return Ok(None);
        }
    }
    let seq: i64 = tx.query_value(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE tenant_id = ?1 AND device = ?2 AND chat = ?3",
        params![tenant, event.device, event.chat],
    )?;
    let record = EventRecord {
        id: ulid(),
        kind: event.kind.clone(),
        tenant: tenant.to_string(),
        device: event.device.clone(),
        chat: event.chat.clone(),
        seq: seq as u64,
        at: event.at.clone(),
        data: event.data.clone(),
    };
    tx.execute(
        "INSERT INTO events (id, tenant_id, device, kind, chat, seq, dedup, at, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.id,
            tenant,
            record.device,
            record.kind,
            record.chat,
            seq,
            event.dedup,
            record.at,
            to_json(&record.data)
        ],
    )?;
    Ok(Some(record))
}

/// A new ULID: 48 bits of milliseconds since the Unix epoch, then 80 random bits, in
/// Crockford's base 32 (26 characters).
pub(crate) fn ulid() -> String {
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u128 & ((1 << 48) - 1);
    // A version-4 UUID has 122 random bits; bytes 0–5 and 10–13 hold no version or variant bits.
    let random = uuid::Uuid::new_v4();
    let random = random.as_bytes();
    let bits = random[..6].iter().chain(&random[10..14]).fold(millis, |acc, byte| acc << 8 | u128::from(*byte));
    (0..26).rev().map(|digit| CROCKFORD[(bits >> (digit * 5)) as usize & 31] as char).collect()
}

/// Crockford's base 32: digits and letters without I, L, O and U.
pub(crate) const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Dialect;
    use crate::tests::{acme, on_both};

    fn message(chat: &str, id: &str) -> NewEvent {
        NewEvent {
            device: "main".into(),
            kind: "message.received".into(),
            chat: chat.into(),
            dedup: Some(format!("{chat}|{chat}|{id}")),
            at: "2026-12-05T15:00:00Z".into(),
            data: serde_json::json!({ "message_id": id }),
        }
    }

    on_both! {
    fn events_are_numbered_per_chat_and_listed_in_commit_order(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let (john, mary) = ("6281234567890@s.whatsapp.net", "6289876543210@s.whatsapp.net");
        let first = store.append_events("acme", &[message(john, "A"), message(mary, "B")]).unwrap();
        let second = store.append_events("acme", &[message(john, "C")]).unwrap();
        let seqs: Vec<(&str, u64)> = first.iter().chain(&second).map(|e| (e.chat.as_str(), e.seq)).collect();
        assert_eq!(seqs, [(john, 1), (mary, 1), (john, 2)]);

        let listed = store.events("acme", None, 10).unwrap();
        assert_eq!(listed, [first.clone(), second.clone()].concat());
        assert_eq!(listed[2].data, serde_json::json!({ "message_id": "C" }));
        let after_first = store.events("acme", Some(&first[0].id), 1).unwrap();
        assert_eq!(after_first, [first[1].clone()], "after an id, at most the limit");
        assert!(store.events("acme", Some(&second[0].id), 10).unwrap().is_empty());
    }

    fn a_message_delivered_again_is_not_recorded_twice(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let chat = "6281234567890@s.whatsapp.net";
        store.append_events("acme", &[message(chat, "A")]).unwrap();
        // WhatsApp delivers A again (the ack was lost in a crash), with B.
        let again = store.append_events("acme", &[message(chat, "A"), message(chat, "B")]).unwrap();
        assert_eq!(again.iter().map(|e| (e.data["message_id"].as_str(), e.seq)).collect::<Vec<_>>(), [(Some("B"), 2)]);
        assert_eq!(store.events("acme", None, 10).unwrap().len(), 2);
    }

    fn events_of_a_deleted_device_are_dropped_and_go_with_it(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.append_events("acme", &[message("1@s.whatsapp.net", "A")]).unwrap();
        store.delete_device("acme", "main").unwrap();
        assert!(store.events("acme", None, 10).unwrap().is_empty(), "a device's events go with it");
        let late = store.append_events("acme", &[message("1@s.whatsapp.net", "B")]).unwrap();
        assert!(late.is_empty(), "a late batch of a deleted device records nothing");
    }

    fn the_sender_of_a_received_message_is_found_in_its_chat(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let group = "120363406798553856@g.us";
        let mut text = message(group, "A");
        text.data = serde_json::json!({ "message_id": "A", "sender": { "jid": "6281234567890@s.whatsapp.net" } });
        store.append_events("acme", &[text]).unwrap();
        let found = store.received_from("acme", "main", group, "A").unwrap();
        assert_eq!(found.as_deref(), Some("6281234567890@s.whatsapp.net"));
        assert_eq!(store.received_from("acme", "main", "1@s.whatsapp.net", "A").unwrap(), None, "another chat");
        assert_eq!(store.received_from("acme", "main", group, "B").unwrap(), None);
        for select in [RECEIVED_FROM_SQLITE, RECEIVED_FROM_POSTGRES] {
            assert!(select.contains(&format!("kind = '{MESSAGE_RECEIVED}'")));
        }
        let plan = store
            .transaction(|conn| {
                let select = conn.pick(RECEIVED_FROM_SQLITE, RECEIVED_FROM_POSTGRES);
                let params = params!["acme", "main", group, "A"];
                let plan = match conn.dialect() {
                    Dialect::Sqlite => {
                        conn.query(&format!("EXPLAIN QUERY PLAN {select}"), params, |row| row.get::<String>(3))?
                    }
                    Dialect::Postgres => {
                        // A table this small is cheaper read whole: ask which index the
                        // planner would take for a large one.
                        conn.execute("SET LOCAL enable_seqscan = off", &[])?;
                        conn.query(&format!("EXPLAIN {select}"), params, |row| row.get::<String>(0))?
                    }
                };
                Ok(plan.join("\n"))
            })
            .unwrap();
        assert!(plan.contains("events_received_by_message_id"), "the look-up takes its index: {plan}");
    }

    fn listing_after_an_unknown_event_says_so(store) {
        let store = acme(store);
        let refused = store.events("acme", Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"), 10).unwrap_err();
        assert!(matches!(refused, StoreError::NotFound(ref m) if m.contains("list from the start")), "{refused}");
        assert!(matches!(store.events("nobody", None, 10), Err(StoreError::NotFound(_))));
    }
    }

    #[test]
    fn sqlite_a_read_ends_the_outbox_at_the_events_it_sees() {
        let dir = tempfile::tempdir().unwrap();
        a_read_ends_the_outbox_at_the_events_it_sees(Store::open(&dir.path().join("waedge.db")).unwrap());
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn postgres_a_read_ends_the_outbox_at_the_events_it_sees() {
        a_read_ends_the_outbox_at_the_events_it_sees(crate::tests::postgres());
    }

    /// A look at the outbox (a read) that found nothing answers its end, and the next look
    /// starts after it: the events of a write under way, or committed while the read ran,
    /// must come after that end, or that look would skip them.
    fn a_read_ends_the_outbox_at_the_events_it_sees(store: Store) {
        use std::sync::mpsc::channel;
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.append_events("acme", &[message("1@s.whatsapp.net", "A")]).unwrap();
        let ends = |store: &Store| (store.read(end).unwrap(), store.transaction(end).unwrap());
        assert_eq!(ends(&store), (1, 1));

        // A write that holds its transaction, its event appended, until told.
        let (written, wait_for_write) = channel();
        let (finish, until_finished) = channel::<()>();
        let writer = store.clone();
        let write = std::thread::spawn(move || {
            writer.transaction(|tx| {
                let appended = append(tx, "acme", &message("1@s.whatsapp.net", "B"))?;
                assert_eq!(end(tx)?, 2, "a write's end counts its own events");
                written.send(()).unwrap();
                until_finished.recv().unwrap();
                Ok(appended)
            })
        });
        wait_for_write.recv().unwrap();
        let under_way = store.read(end);
        finish.send(()).unwrap();
        assert_eq!(write.join().unwrap().unwrap().map(|event| event.seq), Some(2));
        assert_eq!(under_way.unwrap(), 1, "not the event of the write under way");

        // A write committed after the read saw the outbox.
        let (before, after) = store
            .read(|conn| {
                let before = end(conn)?;
                store.append_events("acme", &[message("1@s.whatsapp.net", "C")])?;
                Ok((before, end(conn)?))
            })
            .unwrap();
        assert_eq!((before, after), (2, 2), "not the event committed since the read began");
        assert_eq!(ends(&store), (3, 3));

        store.delete_device("acme", "main").unwrap();
        assert_eq!(store.transaction(end).unwrap(), 3, "a write's end counts events gone with their device");
    }

    #[test]
    fn ids_are_ulids_in_time_order() {
        let first = ulid();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = ulid();
        assert_eq!((first.len(), second.len()), (26, 26));
        assert!(first.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()), "{first}");
        assert!(first < second, "{first} < {second}");
        assert_ne!(ulid(), ulid());
    }
}

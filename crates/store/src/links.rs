//! Verified LID ↔ phone links: a device sends a one-time code to a phone number, and the LID
//! that answers with it is linked to the number, for the whole tenant.
//!
//! WhatsApp addresses many chats by LID only and gives the phone number of a LID only when it
//! chooses to; a verified link is the reliable signal the devices API's document asks for
//! before two threads are merged. The code is made here ([`Code`]) and kept only as a salted
//! hash; answers are matched in the transaction that commits the received message
//! ([`answer`], called by [`Store::append_events`]), so a link is made exactly once, crash or
//! not, and its `contact.linked` event is committed with it.
//!
//! Guessing is bounded: a code is about 40 random bits, good once and for minutes; at most
//! [`MAX_PENDING_PER_DEVICE`] are pending per device and [`MAX_STARTS_PER_PHONE`] are sent to
//! one number an hour; a message offers at most [`CANDIDATES_PER_MESSAGE`] code-shaped words,
//! and a sender whose code-shaped words matched nothing [`MAX_MISSES`] times in an hour is not
//! heard for the rest of it. An account that WhatsApp says has a number answers only the codes
//! sent to that number: its answer to another's (a forwarded code) links nothing.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use waedge_contract::types::{LidVerification, LidVerificationState, VerifiedLink};

use super::events::{self, CONTACT_LINKED, CROCKFORD, EventRecord, MESSAGE_RECEIVED, NewEvent};
use super::known_links::{KnownLinks, MAX_KNOWN_PER_TENANT, TenantLinks};
use super::{Store, StoreError, now, rfc3339};
use crate::db::{Conn, Row, params};

/// How many verifications one device may have pending at once.
pub const MAX_PENDING_PER_DEVICE: usize = 100;

/// How many codes a tenant may send to one phone number in an hour.
pub const MAX_STARTS_PER_PHONE: usize = 3;

/// How many wrong code-shaped answers a sender may give in an hour before it is not heard.
pub const MAX_MISSES: usize = 5;

/// How many days a verification that expired unanswered is kept (and shown `expired`).
pub const KEPT_DAYS: i64 = 7;

/// How many code-shaped words of one message are tried.
pub const CANDIDATES_PER_MESSAGE: usize = 3;

/// A verification to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVerification {
    /// The device that sends the code.
    pub device: String,
    /// Where the code goes.
    pub phone_jid: String,
    /// The id of the message that will carry it.
    pub message_id: String,
    /// How long the code is good for.
    pub ttl_seconds: u32,
}

/// What [`Store::start_lid_verification`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// The verification is recorded, pending: send `code` (shown as `XXXX-XXXX`).
    Started {
        /// The verification.
        verification: LidVerification,
        /// The code to send; it is not kept.
        code: String,
    },
    /// Nothing was recorded: too many verifications are pending on the device, or the number
    /// was sent too many codes lately.
    TooMany {
        /// Seconds until one more is allowed.
        retry_after: u32,
        /// Which limit, in words.
        reason: String,
    },
}

impl Store {
    /// Records a verification of `tenant`, pending, with a new code, unless a limit says not
    /// now (see [`Started`]). Verifications of the device that expired unanswered more than
    /// [`KEPT_DAYS`] days ago go.
    pub fn start_lid_verification(&self, tenant: &str, new: &NewVerification) -> Result<Started, StoreError> {
        self.transaction(|tx| {
            let now = Utc::now();
            tx.execute(
                "DELETE FROM lid_verifications
                 WHERE tenant_id = ?1 AND device = ?2 AND lid IS NULL AND expires_at < ?3",
                params![tenant, new.device, rfc3339(now - Duration::days(KEPT_DAYS))],
            )?;
            let pending: Vec<String> = tx.query(
                "SELECT expires_at FROM lid_verifications
                 WHERE tenant_id = ?1 AND device = ?2 AND lid IS NULL AND expires_at > ?3 ORDER BY expires_at",
                params![tenant, new.device, rfc3339(now)],
                |row| row.get(0),
            )?;
            if pending.len() >= MAX_PENDING_PER_DEVICE {
                let reason = format!("device `{}` has {MAX_PENDING_PER_DEVICE} verifications pending", new.device);
                return Ok(Started::TooMany { retry_after: seconds_until(&pending[0], now), reason });
            }
            let recent: Vec<String> = tx.query(
                "SELECT created_at FROM lid_verifications
                 WHERE tenant_id = ?1 AND phone_jid = ?2 AND created_at > ?3 ORDER BY created_at",
                params![tenant, new.phone_jid, rfc3339(now - Duration::hours(1))],
                |row| row.get(0),
            )?;
            if recent.len() >= MAX_STARTS_PER_PHONE {
                let reason = format!("the number was sent {MAX_STARTS_PER_PHONE} codes in the last hour");
                let retry_after = seconds_until(&recent[0], now - Duration::hours(1));
                return Ok(Started::TooMany { retry_after, reason });
            }
            let code = Code::generate();
            let salt = hex::encode(uuid::Uuid::new_v4().as_bytes());
            let verification = LidVerification {
                id: events::ulid(),
                phone_jid: new.phone_jid.clone(),
                state: LidVerificationState::Pending,
                message_id: new.message_id.clone(),
                lid: None,
                created_at: rfc3339(now),
                expires_at: rfc3339(now + Duration::seconds(i64::from(new.ttl_seconds))),
                linked_at: None,
            };
            let inserted = tx.execute(
                "INSERT INTO lid_verifications
                   (tenant_id, device, id, phone_jid, message_id, salt, code_hash, created_at, expires_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM devices WHERE tenant_id = ?1 AND id = ?2",
                params![
                    tenant,
                    new.device,
                    verification.id,
                    verification.phone_jid,
                    verification.message_id,
                    salt,
                    code.hash(&salt),
                    verification.created_at,
                    verification.expires_at
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::NotFound(format!("tenant `{tenant}` has no device `{}`", new.device)));
            }
            Ok(Started::Started { verification, code: code.to_string() })
        })
    }

    /// Forgets a verification whose code was never sent (the send failed), if nobody answered
    /// it, so that it counts against no limit.
    pub fn forget_lid_verification(&self, tenant: &str, device: &str, id: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.execute(
                "DELETE FROM lid_verifications WHERE tenant_id = ?1 AND device = ?2 AND id = ?3 AND lid IS NULL",
                params![tenant, device, id],
            )?;
            Ok(())
        })
    }

    /// The verification `id` that `device` of `tenant` started, if it started one.
    pub fn lid_verification(
        &self,
        tenant: &str,
        device: &str,
        id: &str,
    ) -> Result<Option<LidVerification>, StoreError> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT id, phone_jid, message_id, lid, created_at, expires_at, linked_at FROM lid_verifications
                 WHERE tenant_id = ?1 AND device = ?2 AND id = ?3",
                params![tenant, device, id],
                |row| {
                    let (lid, expires_at): (Option<String>, String) = (row.get(3)?, row.get(5)?);
                    let state = match &lid {
                        Some(_) => LidVerificationState::Linked,
                        None if expires_at <= now() => LidVerificationState::Expired,
                        None => LidVerificationState::Pending,
                    };
                    Ok(LidVerification {
                        id: row.get(0)?,
                        phone_jid: row.get(1)?,
                        state,
                        message_id: row.get(2)?,
                        lid,
                        created_at: row.get(4)?,
                        expires_at,
                        linked_at: row.get(6)?,
                    })
                },
            )
        })
    }

    /// The verified link of `jid` in `tenant`: of the LID, or the latest of the phone JID.
    /// Reads the tenant's links into memory on its first lookup, up to a thousand of them:
    /// later lookups are answered there ([`Store::known_verified_link`]).
    /// A store shared by several nodes (PostgreSQL) keeps none in memory: another node may
    /// have made a link since.
    pub fn verified_link(&self, tenant: &str, jid: &str) -> Result<Option<VerifiedLink>, StoreError> {
        if self.is_shared() {
            return self.read(|conn| lookup(conn, tenant, jid));
        }
        let known = match self.links.of(tenant) {
            Some(known) => known,
            // Read and kept in a write transaction, under the write lock, as links are made and
            // forgotten (`answer`): what is kept is never older than a link committed before.
            None => self.transaction(|tx| {
                // By the primary key's order, with the rowid that breaks ties of `linked_at` as
                // `lookup` does: no sort of a large tenant's links under the lock.
                let mut rows = tx.query(
                    &format!("SELECT {LINK_COLUMNS}, rowid FROM lid_links WHERE tenant_id = ?1 LIMIT ?2"),
                    params![tenant, MAX_KNOWN_PER_TENANT as i64 + 1],
                    |row| Ok((read_link(row)?, row.get::<i64>(5)?)),
                )?;
                rows.sort_by(|(a, a_row), (b, b_row)| (&a.linked_at, a_row).cmp(&(&b.linked_at, b_row)));
                let known = Arc::new(TenantLinks::of(rows.into_iter().map(|(link, _)| link).collect()));
                self.links.keep(tenant, known.clone());
                Ok(known)
            })?,
        };
        match known.get(jid) {
            Some(answer) => Ok(answer),
            None => self.read(|conn| lookup(conn, tenant, jid)),
        }
    }

    /// The verified link of `jid` in `tenant` when the tenant's links are in memory, without
    /// waiting for the connection: `Some(None)` when it has none, `None` when only
    /// [`Store::verified_link`] can say.
    pub fn known_verified_link(&self, tenant: &str, jid: &str) -> Option<Option<VerifiedLink>> {
        self.links.of(tenant)?.get(jid)
    }
}

/// The verified link of `jid` in `tenant`, asked of the database: of the LID, or the phone
/// JID's latest (by `linked_at`, then by when its row was first written).
fn lookup(conn: &Conn<'_>, tenant: &str, jid: &str) -> Result<Option<VerifiedLink>, StoreError> {
    conn.query_opt(
        &format!(
            "SELECT {LINK_COLUMNS} FROM lid_links
             WHERE tenant_id = ?1 AND (lid = ?2 OR phone_jid = ?2) ORDER BY linked_at DESC, rowid DESC LIMIT 1"
        ),
        params![tenant, jid],
        read_link,
    )
}

/// The columns of a verified link, as [`read_link`] reads them.
const LINK_COLUMNS: &str = "lid, phone_jid, device, verification, linked_at";

fn read_link(row: &Row<'_>) -> Result<VerifiedLink, StoreError> {
    Ok(VerifiedLink {
        lid: row.get(0)?,
        phone_jid: row.get(1)?,
        device: row.get(2)?,
        verification: row.get(3)?,
        linked_at: row.get(4)?,
    })
}

/// A one-time code: eight characters of Crockford's base 32 (39.6 random bits) with at
/// least two digits and a letter. Only a word written with a digit and a letter is read as a
/// code, so plain words and numbers are never taken for one, even with a digit mistyped as a
/// letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Code([u8; 8]);

impl Code {
    /// A new random code.
    pub(crate) fn generate() -> Code {
        loop {
            let random = uuid::Uuid::new_v4();
            // A version-4 UUID's bytes 0–5 hold no version or variant bits.
            let bits = random.as_bytes()[..5].iter().fold(0u64, |acc, byte| acc << 8 | u64::from(*byte));
            let code: [u8; 8] = std::array::from_fn(|i| CROCKFORD[(bits >> (35 - 5 * i)) as usize & 31]);
            if code.iter().filter(|b| b.is_ascii_digit()).count() >= 2 && code.iter().any(u8::is_ascii_alphabetic) {
                return Code(code);
            }
        }
    }

    /// The code `word` stands for, as someone may write it: either case, with or without the
    /// dash, `I` and `L` for `1`, `O` for `0`. `None` when it is not shaped like a code.
    pub(crate) fn read(word: &str) -> Option<Code> {
        let written = |class: fn(&u8) -> bool| word.as_bytes().iter().any(class);
        if !written(u8::is_ascii_digit) || !written(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut code = [0u8; 8];
        let mut len = 0;
        for byte in word.bytes().filter(|b| *b != b'-') {
            let byte = match byte.to_ascii_uppercase() {
                b'I' | b'L' => b'1',
                b'O' => b'0',
                other => other,
            };
            if len == code.len() || !CROCKFORD.contains(&byte) {
                return None;
            }
            code[len] = byte;
            len += 1;
        }
        (len == code.len()).then_some(Code(code))
    }

    /// The code-shaped words of `text`, at most [`CANDIDATES_PER_MESSAGE`].
    pub(crate) fn candidates(text: &str) -> Vec<Code> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(Code::read)
            .take(CANDIDATES_PER_MESSAGE)
            .collect()
    }

    /// The hash kept of the code, with `salt`.
    fn hash(&self, salt: &str) -> String {
        hex::encode(Sha256::new().chain_update(salt).chain_update(self.0).finalize())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = std::str::from_utf8(&self.0).map_err(|_| std::fmt::Error)?;
        write!(f, "{}-{}", &text[..4], &text[4..])
    }
}

/// Takes `received`, an event just appended, as the answer to a pending verification of its
/// device if it is one: a text in a user's own chat, from a LID, with a code-shaped word whose
/// code is that of a verification not expired when WhatsApp delivered the message (by
/// WhatsApp's timestamp), sent to the sender's number if WhatsApp gave it. Links the LID to
/// the verification's number and returns the `contact.linked` event, appended; code-shaped
/// words that match no code are counted as the sender's miss.
/// `known` forgets the tenant's links when one is made (under the write lock, before the
/// commit: see `known_links`).
pub(crate) fn answer(
    tx: &Conn<'_>,
    tenant: &str,
    received: &EventRecord,
    known: &KnownLinks,
) -> Result<Option<EventRecord>, StoreError> {
    let Some(answer) = Answer::of(received) else { return Ok(None) };
    // A sender whose number WhatsApp gave can only answer the codes sent to that number: its
    // other code-shaped words are no answers at all (nor misses).
    let pending: Vec<(String, String, String, String, String)> = tx.query(
        "SELECT id, phone_jid, message_id, salt, code_hash FROM lid_verifications
         WHERE tenant_id = ?1 AND device = ?2 AND lid IS NULL AND expires_at > ?3
           AND (CAST(?4 AS TEXT) IS NULL OR phone_jid = ?4)",
        params![tenant, received.device, received.at, answer.phone_jid],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
    )?;
    if pending.is_empty() {
        return Ok(None);
    }
    let hour_ago = rfc3339(Utc::now() - Duration::hours(1));
    tx.execute("DELETE FROM lid_link_misses WHERE tenant_id = ?1 AND at <= ?2", params![tenant, hour_ago])?;
    let misses: i64 = tx.query_value(
        "SELECT COUNT(*) FROM lid_link_misses WHERE tenant_id = ?1 AND sender = ?2",
        params![tenant, answer.lid],
    )?;
    if misses >= MAX_MISSES as i64 {
        return Ok(None);
    }
    let matched = pending.iter().find(|(_, _, _, salt, hash)| {
        answer.codes.iter().any(|code| bool::from(code.hash(salt).as_bytes().ct_eq(hash.as_bytes())))
    });
    match matched {
        Some((id, phone_jid, message_id, _, _)) => {
            let linked = link(tx, tenant, received, &answer, (id, phone_jid, message_id));
            known.forget(tenant);
            linked
        }
        None => {
            tx.execute(
                "INSERT INTO lid_link_misses (tenant_id, sender, at) VALUES (?1, ?2, ?3)",
                params![tenant, answer.lid, now()],
            )?;
            Ok(None)
        }
    }
}

/// Links the answer's LID to the number of the verification `(id, phone_jid, message_id)`
/// and appends the `contact.linked` event.
fn link(
    tx: &Conn<'_>,
    tenant: &str,
    received: &EventRecord,
    answer: &Answer,
    (id, phone_jid, message_id): (&str, &str, &str),
) -> Result<Option<EventRecord>, StoreError> {
    let answered_at = &received.at;
    tx.execute(
        "UPDATE lid_verifications SET lid = ?4, linked_at = ?5 WHERE tenant_id = ?1 AND device = ?2 AND id = ?3",
        params![tenant, received.device, id, answer.lid, answered_at],
    )?;
    let previous: Option<String> = tx.query_opt(
        "SELECT phone_jid FROM lid_links WHERE tenant_id = ?1 AND lid = ?2",
        params![tenant, answer.lid],
        |row| row.get(0),
    )?;
    tx.execute(
        "INSERT INTO lid_links (tenant_id, lid, phone_jid, device, verification, linked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant_id, lid) DO UPDATE SET
           phone_jid = excluded.phone_jid, device = excluded.device,
           verification = excluded.verification, linked_at = excluded.linked_at",
        params![tenant, answer.lid, phone_jid, received.device, id, answered_at],
    )?;
    let event = NewEvent {
        device: received.device.clone(),
        kind: CONTACT_LINKED.to_string(),
        // A device's own event (its chat is empty), like the contact's other events.
        chat: String::new(),
        dedup: Some(format!("linked|{id}")),
        at: now(),
        data: json!({
            "lid": answer.lid,
            "phone_jid": phone_jid,
            "verification_id": id,
            "code_message_id": message_id,
            "answer_message_id": received.data["message_id"],
            "previous_phone_jid": previous.filter(|previous| previous != phone_jid),
            "confirmed_by_whatsapp": answer.phone_jid.is_some(),
        }),
    };
    events::append(tx, tenant, &event)
}

/// What a received message offers as an answer to a verification.
struct Answer {
    /// The sender's LID.
    lid: String,
    /// The sender's phone JID, when WhatsApp gave it.
    phone_jid: Option<String>,
    /// Its code-shaped words.
    codes: Vec<Code>,
}

impl Answer {
    /// The answer in a `message.received` event: a text, not from this device's account, in
    /// the sender's own chat, from a sender whose LID is known, with a code-shaped word.
    fn of(received: &EventRecord) -> Option<Answer> {
        let data = &received.data;
        if received.kind != MESSAGE_RECEIVED || data["from_me"] != Value::Bool(false) {
            return None;
        }
        if data["chat"]["type"] != "user" || data["message"]["kind"] != "text" {
            return None;
        }
        let codes = Code::candidates(data["message"]["text"].as_str()?);
        let sender = &data["sender"];
        let lid = sender["lid"].as_str()?.to_string();
        let phone_jid = sender["phone_jid"].as_str().map(str::to_string);
        (!codes.is_empty()).then_some(Answer { lid, phone_jid, codes })
    }
}

/// Whole seconds from `now` until `at` (RFC 3339), at least 1.
fn seconds_until(at: &str, now: DateTime<Utc>) -> u32 {
    let at = DateTime::parse_from_rfc3339(at).map(|at| at.with_timezone(&Utc)).unwrap_or(now);
    u32::try_from((at - now).num_seconds()).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};

    const PHONE: &str = "6281234567890@s.whatsapp.net";
    const LID: &str = "1234567890987654321@lid";

    fn start(store: &Store, phone: &str) -> (LidVerification, String) {
        let new = NewVerification {
            device: "main".into(),
            phone_jid: phone.into(),
            message_id: "3EB0C0DE".into(),
            ttl_seconds: 600,
        };
        match store.start_lid_verification("acme", &new).unwrap() {
            Started::Started { verification, code } => (verification, code),
            refused => panic!("not started: {refused:?}"),
        }
    }

    /// A text received from `lid` (and `phone`, when WhatsApp gave it) in its own chat.
    fn text(id: &str, lid: &str, phone: Option<&str>, text: &str) -> NewEvent {
        let sender = json!({ "jid": lid, "type": "user", "lid": lid, "phone_jid": phone });
        NewEvent {
            device: "main".into(),
            kind: MESSAGE_RECEIVED.into(),
            chat: lid.into(),
            dedup: Some(format!("{lid}|{lid}|{id}")),
            at: now(),
            data: json!({ "message_id": id, "chat": sender, "sender": sender, "from_me": false,
                          "message": { "kind": "text", "text": text, "reply_to": null } }),
        }
    }

    #[test]
    fn codes_are_read_as_people_write_them_and_words_are_not_codes() {
        let code = Code::generate();
        let shown = code.to_string();
        assert_eq!((shown.len(), &shown[4..5]), (9, "-"), "{shown}");
        assert_eq!(Code::read(&shown), Some(code.clone()));
        assert_eq!(Code::read(&shown.to_lowercase().replace('-', "")), Some(code));
        assert_eq!(Code::read("AB1O-IL2K"), Code::read("ab10-112k"), "O is 0, I and L are 1");
        for word in ["TOMORROW", "12345678", "ABCD-123", "ABCD-12345", "ABUD-1234", "ÀBCD-1234", "OIL-LOIO"] {
            assert_eq!(Code::read(word), None, "{word}");
        }
        let many = "AAAA-1111 BBBB-2222, CCCC3333. DDDD-4444";
        assert_eq!(Code::candidates(many).len(), CANDIDATES_PER_MESSAGE, "a message offers at most three");
        assert_eq!(Code::candidates("my code is: 7K2P-9QXM!"), [Code::read("7K2P9QXM").unwrap()]);
    }

    on_both! {
    fn the_right_code_from_a_lid_links_it_once_with_its_event(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let (verification, code) = start(&store, PHONE);
        assert_eq!(verification.state, LidVerificationState::Pending);
        assert!(verification.expires_at > verification.created_at);

        let wrong = store.append_events("acme", &[text("A", LID, None, "is it ZZZZ-9999?")]).unwrap();
        assert_eq!(wrong.len(), 1, "a wrong code links nothing");
        assert_eq!(store.verified_link("acme", LID).unwrap(), None);

        let answer = text("B", LID, None, &format!("here: {}", code.to_lowercase()));
        let appended = store.append_events("acme", std::slice::from_ref(&answer)).unwrap();
        let kinds: Vec<&str> = appended.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, [MESSAGE_RECEIVED, CONTACT_LINKED]);
        let linked = &appended[1];
        assert_eq!((linked.chat.as_str(), linked.seq), ("", 1), "a device's own event, numbered per device");
        assert_eq!(
            linked.data,
            json!({ "lid": LID, "phone_jid": PHONE, "verification_id": verification.id,
                    "code_message_id": "3EB0C0DE", "answer_message_id": "B",
                    "previous_phone_jid": null, "confirmed_by_whatsapp": false })
        );
        let link = store.verified_link("acme", PHONE).unwrap().expect("linked");
        assert_eq!(
            (link.lid.as_str(), link.phone_jid.as_str(), link.verification.as_str()),
            (LID, PHONE, &*verification.id)
        );
        assert_eq!(store.verified_link("acme", LID).unwrap(), Some(link));
        let read = store.lid_verification("acme", "main", &verification.id).unwrap().unwrap();
        assert_eq!((read.state, read.lid.as_deref()), (LidVerificationState::Linked, Some(LID)));

        // WhatsApp delivers the answer again (its ack was lost), and the code is sent again.
        assert!(store.append_events("acme", &[answer]).unwrap().is_empty(), "nothing twice");
        let again = store.append_events("acme", &[text("C", LID, None, &code)]).unwrap();
        assert_eq!(again.len(), 1, "a code is good once");
    }

    fn an_answer_from_an_account_with_another_number_links_nothing(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let (verification, code) = start(&store, PHONE);
        let forwarded = text("A", "999@lid", Some("5511999999999@s.whatsapp.net"), &code);
        assert_eq!(store.append_events("acme", &[forwarded]).unwrap().len(), 1);
        assert_eq!(store.verified_link("acme", "999@lid").unwrap(), None);
        let read = store.lid_verification("acme", "main", &verification.id).unwrap().unwrap();
        assert_eq!(read.state, LidVerificationState::Pending, "the owner may still answer");

        let confirmed = store.append_events("acme", &[text("B", LID, Some(PHONE), &code)]).unwrap();
        assert_eq!(confirmed[1].data["confirmed_by_whatsapp"], json!(true));
    }

    fn a_late_answer_links_nothing_and_a_link_is_dated_by_the_answer(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let (verification, code) = start(&store, PHONE);
        let late = NewEvent { at: rfc3339(Utc::now() + Duration::minutes(11)), ..text("A", LID, None, &code) };
        assert_eq!(store.append_events("acme", &[late]).unwrap().len(), 1, "sent after the code expired");

        // WhatsApp gave both JIDs, and the answer is in the number's chat.
        let mut answer = text("B", LID, Some(PHONE), &code);
        answer.chat = PHONE.into();
        answer.data["chat"] = json!({ "jid": PHONE, "type": "user", "lid": LID, "phone_jid": PHONE });
        answer.at = rfc3339(Utc::now() + Duration::minutes(1));
        let answer_at = answer.at.clone();
        let appended = store.append_events("acme", &[answer]).unwrap();
        assert_eq!((appended[1].kind.as_str(), appended[1].data["lid"].as_str()), (CONTACT_LINKED, Some(LID)));
        let read = store.lid_verification("acme", "main", &verification.id).unwrap().unwrap();
        assert_eq!(read.linked_at, Some(answer_at), "when the LID answered, by WhatsApp's clock");
    }

    fn a_verification_expired_unanswered_for_a_week_goes(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let (old, _) = start(&store, PHONE);
        let (kept, _) = start(&store, "5511999999999@s.whatsapp.net");
        let long_ago = rfc3339(Utc::now() - Duration::days(KEPT_DAYS) - Duration::minutes(1));
        let yesterday = rfc3339(Utc::now() - Duration::days(1));
        for (id, expired) in [(&old.id, &long_ago), (&kept.id, &yesterday)] {
            let expire = "UPDATE lid_verifications SET expires_at = ?1 WHERE id = ?2";
            store.transaction(|tx| tx.execute(expire, params![expired, id])).unwrap();
        }
        start(&store, "4915112345678@s.whatsapp.net");
        assert_eq!(store.lid_verification("acme", "main", &old.id).unwrap(), None, "gone after a week");
        let shown = store.lid_verification("acme", "main", &kept.id).unwrap().expect("kept for a week");
        assert_eq!(shown.state, LidVerificationState::Expired);
    }

    fn a_sender_with_five_wrong_answers_in_an_hour_is_not_heard(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let (_, code) = start(&store, PHONE);
        for (i, guess) in ["AAAA-1111", "BBBB-2222", "CCCC-3333", "DDDD-4444", "EEEE-5555"].into_iter().enumerate() {
            store.append_events("acme", &[text(&format!("G{i}"), LID, None, guess)]).unwrap();
        }
        let late = store.append_events("acme", &[text("R", LID, None, &code)]).unwrap();
        assert_eq!(late.len(), 1, "even the right code is not heard now");
        assert_eq!(store.verified_link("acme", LID).unwrap(), None);
        let other = store.append_events("acme", &[text("O", "777@lid", None, &code)]).unwrap();
        assert_eq!(other.len(), 2, "another sender still is");
    }

    fn starts_are_limited_per_number_and_a_forgotten_one_does_not_count(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let (first, _) = start(&store, PHONE);
        store.forget_lid_verification("acme", "main", &first.id).unwrap();
        assert_eq!(store.lid_verification("acme", "main", &first.id).unwrap(), None);
        for _ in 0..MAX_STARTS_PER_PHONE {
            start(&store, PHONE);
        }
        let new = NewVerification {
            device: "main".into(),
            phone_jid: PHONE.into(),
            message_id: "3EB0".into(),
            ttl_seconds: 600,
        };
        match store.start_lid_verification("acme", &new).unwrap() {
            Started::TooMany { retry_after, reason } => {
                assert!((3590..=3600).contains(&retry_after), "{retry_after}");
                assert!(reason.contains("3 codes in the last hour"), "{reason}");
            }
            started => panic!("a fourth code in an hour: {started:?}"),
        }
        let unknown =
            NewVerification { device: "other".into(), phone_jid: "5511999999999@s.whatsapp.net".into(), ..new };
        assert!(matches!(store.start_lid_verification("acme", &unknown), Err(StoreError::NotFound(_))));
    }
    }

    // Memory is for a store of one node (SQLite); a shared one asks the database each time.
    #[test]
    fn links_are_answered_from_memory_once_read_and_a_new_link_at_once() {
        let store = acme(crate::tests::sqlite());
        store.create_device("acme", "main").unwrap();
        assert_eq!(store.known_verified_link("acme", LID), None, "not read yet");
        assert_eq!(store.verified_link("acme", LID).unwrap(), None);
        assert_eq!(store.known_verified_link("acme", LID), Some(None), "read: the tenant has no link");

        let (_, code) = start(&store, PHONE);
        store.append_events("acme", &[text("A", LID, None, &code)]).unwrap();
        let link = store.verified_link("acme", LID).unwrap().expect("the new link, not the remembered absence");
        assert_eq!(store.known_verified_link("acme", LID), Some(Some(link.clone())));
        assert_eq!(store.known_verified_link("acme", PHONE), Some(Some(link)));

        // A tenant deleted and made again under its id starts without links.
        store.delete_tenant("acme").unwrap();
        store.create_tenant(crate::tenants::NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        assert_eq!(store.verified_link("acme", LID).unwrap(), None);
    }

    #[test]
    fn memory_answers_as_the_database_does_when_a_number_was_linked_twice() {
        let store = acme(crate::tests::sqlite());
        // Rows written out of `linked_at` order, two of them at the same second.
        let links =
            [("1@lid", "2026-12-02T00:00:00Z"), ("2@lid", "2026-12-01T00:00:00Z"), ("3@lid", "2026-12-02T00:00:00Z")];
        for (lid, at) in links {
            store.transaction(|tx| insert_link(tx, lid, PHONE, at)).unwrap();
        }
        let asked = store.read(|conn| lookup(conn, "acme", PHONE)).unwrap().expect("linked");
        assert_eq!(asked.lid, "3@lid", "the latest, and of two at the same time the one written last");
        assert_eq!(store.verified_link("acme", PHONE).unwrap(), Some(asked.clone()));
        assert_eq!(store.known_verified_link("acme", PHONE), Some(Some(asked)), "answered from memory");
    }

    #[test]
    fn a_tenant_with_more_links_than_memory_keeps_is_asked_of_the_database() {
        let store = acme(crate::tests::sqlite());
        store
            .transaction(|tx| {
                for i in 0..=MAX_KNOWN_PER_TENANT {
                    insert_link(tx, &format!("{i}@lid"), &format!("{i}@s.whatsapp.net"), &now())?;
                }
                Ok(())
            })
            .unwrap();
        let last = format!("{MAX_KNOWN_PER_TENANT}@lid");
        let link = store.verified_link("acme", &last).unwrap().expect("linked");
        assert_eq!(link.phone_jid, format!("{MAX_KNOWN_PER_TENANT}@s.whatsapp.net"));
        assert_eq!(store.verified_link("acme", "0@s.whatsapp.net").unwrap().map(|l| l.lid), Some("0@lid".into()));
        assert_eq!(store.verified_link("acme", "unknown@lid").unwrap(), None);
        assert_eq!(store.known_verified_link("acme", &last), None, "not kept in memory");
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn a_link_another_node_made_is_seen_at_once() {
        let url = crate::tests::postgres_url();
        let (this, other) = (acme(Store::connect(&url).unwrap()), Store::connect(&url).unwrap());
        this.create_device("acme", "main").unwrap();
        assert_eq!(this.verified_link("acme", LID).unwrap(), None);
        assert_eq!(this.known_verified_link("acme", LID), None, "a shared store keeps no links in memory");

        let (_, code) = start(&other, PHONE);
        other.append_events("acme", &[text("A", LID, None, &code)]).unwrap();
        let link = this.verified_link("acme", LID).unwrap().expect("the other node's link, at once");
        assert_eq!(link.phone_jid, PHONE);
        assert_eq!(this.known_verified_link("acme", PHONE), None);
    }

    /// Links `lid` to `phone` in `acme` at `at`, in the database only (as if a verification
    /// had).
    fn insert_link(tx: &Conn<'_>, lid: &str, phone: &str, at: &str) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO lid_links (tenant_id, lid, phone_jid, device, verification, linked_at)
             VALUES ('acme', ?1, ?2, 'main', ?1, ?3)",
            params![lid, phone, at],
        )?;
        Ok(())
    }
}

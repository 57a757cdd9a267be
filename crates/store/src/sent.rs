//! Sent messages: what each device sent, recorded before it is handed to WhatsApp, and how far
//! it got.
//!
//! A message is recorded `pending` under its WhatsApp id before the device sends it, so a
//! retry of the same send (the same idempotency key, hence the same id) finds it and sends
//! nothing new; WhatsApp itself treats a second stanza with the id as the same message. Its
//! status then only moves forward (see [`MessageStatus::may_become`]) as the server acks or
//! nacks it and the recipient's receipts come back, and every change is a `message.status`
//! event in the outbox, in the same transaction.

use serde_json::json;
use waedge_contract::types::{MessageStatus, SentMessage};

use super::events::{self, EventRecord, MESSAGE_STATUS, NewEvent};
use super::{DatabaseError, Store, StoreError, now};
use crate::db::{Conn, params};

/// A message a device is about to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSend {
    /// The device that sends it.
    pub device: String,
    /// Its WhatsApp message id.
    pub id: String,
    /// The recipient's JID, without a device part.
    pub to: String,
    /// What the sender asked for, reduced to a fingerprint: a send under the same id must ask
    /// for the same thing to count as a repetition.
    pub request: String,
}

/// What [`Store::begin_send`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// The message is recorded now, `pending`: send it.
    New(SentMessage),
    /// A message with this id and the same request was recorded before: this is it.
    Repeated(SentMessage),
    /// A message with this id but another request was recorded before: nothing was recorded.
    Conflict,
}

/// A status a sent message reached.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// The message id.
    pub id: String,
    /// The status it reached.
    pub status: MessageStatus,
    /// WhatsApp's error code, for `failed`.
    pub error_code: Option<String>,
    /// When, RFC 3339 UTC (the server's time where it gave one).
    pub at: String,
}

impl Store {
    /// Records `send` of `tenant` as `pending`, unless a message with its id was recorded
    /// before (see [`Begun`]).
    pub fn begin_send(&self, tenant: &str, send: &NewSend) -> Result<Begun, StoreError> {
        self.transaction(|tx| {
            if let Some((message, request)) = find(tx, tenant, &send.device, &send.id)? {
                return Ok(if request == send.request { Begun::Repeated(message) } else { Begun::Conflict });
            }
            let at = now();
            let inserted = tx.execute(
                "INSERT INTO sent_messages (tenant_id, device, id, recipient, request, status, created_at, updated_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6 FROM devices WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, send.device, send.id, send.to, send.request, at],
            )?;
            if inserted == 0 {
                return Err(StoreError::NotFound(format!("tenant `{tenant}` has no device `{}`", send.device)));
            }
            Ok(Begun::New(SentMessage {
                id: send.id.clone(),
                to: send.to.clone(),
                status: MessageStatus::Pending,
                error_code: None,
                created_at: at.clone(),
                updated_at: at,
            }))
        })
    }

    /// Forgets a message that was never handed to WhatsApp (its send failed on the device), if
    /// it is still `pending`, so that a retry under its id sends it.
    pub fn forget_send(&self, tenant: &str, device: &str, id: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.execute(
                "DELETE FROM sent_messages WHERE tenant_id = ?1 AND device = ?2 AND id = ?3 AND status = 'pending'",
                params![tenant, device, id],
            )?;
            Ok(())
        })
    }

    /// The message `id` that `device` of `tenant` sent, if it sent one.
    pub fn sent_message(&self, tenant: &str, device: &str, id: &str) -> Result<Option<SentMessage>, StoreError> {
        Ok(self.read(|conn| find(conn, tenant, device, id))?.map(|(message, _)| message))
    }

    /// Moves the messages of `changes` that `device` of `tenant` sent to their new status,
    /// where [`MessageStatus::may_become`] allows it, each with its `message.status` event;
    /// returns those events. A change of a message the device did not send, or one that
    /// would move a status back, changes nothing.
    pub fn change_status(
        &self,
        tenant: &str,
        device: &str,
        changes: &[StatusChange],
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.transaction(|tx| {
            let mut appended = Vec::new();
            for change in changes {
                let Some((message, _)) = find(tx, tenant, device, &change.id)? else { continue };
                if !message.status.may_become(change.status) {
                    continue;
                }
                tx.execute(
                    "UPDATE sent_messages SET status = ?4, error_code = ?5, updated_at = ?6
                     WHERE tenant_id = ?1 AND device = ?2 AND id = ?3",
                    params![tenant, device, change.id, change.status.name(), change.error_code, change.at],
                )?;
                appended.extend(events::append(tx, tenant, &status_event(device, &message, change))?);
            }
            Ok(appended)
        })
    }
}

/// The `message.status` event of `message` reaching `change`.
fn status_event(device: &str, message: &SentMessage, change: &StatusChange) -> NewEvent {
    NewEvent {
        device: device.to_string(),
        kind: MESSAGE_STATUS.to_string(),
        chat: message.to.clone(),
        dedup: Some(format!("status|{}|{}", message.id, change.status)),
        at: change.at.clone(),
        data: json!({
            "message_id": message.id,
            "to": message.to,
            "status": change.status.name(),
            "error_code": change.error_code,
        }),
    }
}

/// The message `id` of `device` of `tenant` and the fingerprint of its request.
fn find(conn: &Conn<'_>, tenant: &str, device: &str, id: &str) -> Result<Option<(SentMessage, String)>, StoreError> {
    conn.query_opt(
        "SELECT id, recipient, status, error_code, created_at, updated_at, request FROM sent_messages
         WHERE tenant_id = ?1 AND device = ?2 AND id = ?3",
        params![tenant, device, id],
        |row| {
            let status: String = row.get(2)?;
            Ok((
                SentMessage {
                    id: row.get(0)?,
                    to: row.get(1)?,
                    status: status.parse().map_err(|e| DatabaseError::Column { index: 2, problem: format!("{e}") })?,
                    error_code: row.get(3)?,
                    created_at: row.get(4)?,
                    updated_at: row.get(5)?,
                },
                row.get(6)?,
            ))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};

    fn send(id: &str, request: &str) -> NewSend {
        NewSend { device: "main".into(), id: id.into(), to: "5511@s.whatsapp.net".into(), request: request.into() }
    }

    fn change(id: &str, status: MessageStatus) -> StatusChange {
        StatusChange { id: id.into(), status, error_code: None, at: "2026-12-05T19:00:00Z".into() }
    }

    fn status(store: &Store, id: &str) -> MessageStatus {
        store.sent_message("acme", "main", id).unwrap().unwrap().status
    }

    on_both! {
    fn a_send_is_recorded_once_and_a_different_one_under_its_id_is_a_conflict(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let Begun::New(first) = store.begin_send("acme", &send("3EB0A", "hello")).unwrap() else { panic!() };
        assert_eq!((first.status, first.to.as_str()), (MessageStatus::Pending, "5511@s.whatsapp.net"));
        assert_eq!(store.begin_send("acme", &send("3EB0A", "hello")).unwrap(), Begun::Repeated(first.clone()));
        assert_eq!(store.begin_send("acme", &send("3EB0A", "other")).unwrap(), Begun::Conflict);
        assert_eq!(store.sent_message("acme", "main", "3EB0A").unwrap(), Some(first));
        assert!(matches!(
            store.begin_send("acme", &NewSend { device: "gone".into(), ..send("X", "x") }),
            Err(StoreError::NotFound(_))
        ));
    }

    fn statuses_move_forward_only_each_with_one_event_in_its_chat(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.begin_send("acme", &send("3EB0A", "hello")).unwrap();
        let events = store
            .change_status(
                "acme",
                "main",
                &[change("3EB0A", MessageStatus::Sent), change("3EB0A", MessageStatus::Read)],
            )
            .unwrap();
        let statuses: Vec<_> = events.iter().map(|e| (e.kind.as_str(), e.data["status"].as_str(), e.seq)).collect();
        assert_eq!(statuses, [("message.status", Some("sent"), 1), ("message.status", Some("read"), 2)]);
        assert_eq!(events[0].chat, "5511@s.whatsapp.net");
        assert_eq!(
            events[0].data,
            json!({"message_id": "3EB0A", "to": "5511@s.whatsapp.net", "status": "sent", "error_code": null})
        );
        // A late delivery receipt, a failure after a read, an unknown message: nothing.
        let late = [
            change("3EB0A", MessageStatus::Delivered),
            change("3EB0A", MessageStatus::Failed),
            change("3EB0X", MessageStatus::Sent),
        ];
        assert_eq!(store.change_status("acme", "main", &late).unwrap(), []);
        assert_eq!(status(&store, "3EB0A"), MessageStatus::Read);
    }

    fn a_refused_message_keeps_its_code_and_a_pending_one_can_be_forgotten(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.begin_send("acme", &send("3EB0A", "a")).unwrap();
        store.begin_send("acme", &send("3EB0B", "b")).unwrap();
        let nack = StatusChange { error_code: Some("463".into()), ..change("3EB0A", MessageStatus::Failed) };
        let events = store.change_status("acme", "main", &[nack]).unwrap();
        assert_eq!(events[0].data["error_code"], "463");
        let failed = store.sent_message("acme", "main", "3EB0A").unwrap().unwrap();
        assert_eq!((failed.status, failed.error_code.as_deref()), (MessageStatus::Failed, Some("463")));
        store.forget_send("acme", "main", "3EB0A").unwrap();
        store.forget_send("acme", "main", "3EB0B").unwrap();
        assert!(store.sent_message("acme", "main", "3EB0A").unwrap().is_some(), "a failed message is kept");
        assert_eq!(store.sent_message("acme", "main", "3EB0B").unwrap(), None);
        assert!(matches!(store.begin_send("acme", &send("3EB0B", "b")).unwrap(), Begun::New(_)));
    }

    fn sent_messages_go_with_their_device(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.begin_send("acme", &send("3EB0A", "a")).unwrap();
        store.delete_device("acme", "main").unwrap();
        store.create_device("acme", "main").unwrap();
        assert_eq!(store.sent_message("acme", "main", "3EB0A").unwrap(), None);
    }
    }
}

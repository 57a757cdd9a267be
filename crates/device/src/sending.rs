//! Sending text messages, at most once per idempotency key, and following how far each got.
//!
//! A message is recorded in the device's [`Mailbox`] under its WhatsApp id before it is handed
//! to the client. With an idempotency key the id is derived from the key (and the tenant and
//! device), so a retried send finds the message recorded and sends nothing new — and if the
//! first attempt never learned whether WhatsApp took it (`pending`), it is handed over again
//! under the same id, which WhatsApp takes as the same message; sends of one id take turns
//! ([`InFlight`]). The server's ack or nack and the recipient's receipts then move its status
//! ([`status_changes`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use sha2::{Digest, Sha256};
use waedge_contract::types::{Error, MessageStatus, SendOutcome};
use waedge_jid::Jid;
use waedge_store::sent::{Begun, NewSend, StatusChange};
use whatsapp_rust::Client;
use whatsapp_rust::send::{SendError, SendOptions};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::proto_helpers::MessageBuilderExt;
use whatsapp_rust::waproto::whatsapp as wa;

use super::Mailbox;
use super::whatsapp::{iq_error, to_wa};

/// The longest text a message may carry, in bytes.
pub const MAX_TEXT_BYTES: usize = 65_536;

/// The longest idempotency key, in characters (printable ASCII).
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The longest message id a reply may name, in bytes.
pub const MAX_REPLY_TO: usize = 128;

/// A text message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMessage {
    /// The recipient: a user's phone JID or LID without a device part, or a group.
    pub to: Jid,
    /// The text.
    pub text: String,
    /// The id of the message of the chat it answers.
    pub reply_to: Option<String>,
    /// The caller's key for sending it at most once.
    pub idempotency_key: Option<String>,
}

impl TextMessage {
    /// Checks what the WIT contract promises a sender: a text within [`MAX_TEXT_BYTES`] and
    /// an idempotency key of at most [`MAX_IDEMPOTENCY_KEY`] printable ASCII characters.
    pub fn check(&self) -> Result<(), String> {
        if self.text.is_empty() {
            return Err("the text is empty".into());
        }
        if self.text.len() > MAX_TEXT_BYTES {
            return Err(format!("the text has {} bytes; at most {MAX_TEXT_BYTES} are allowed", self.text.len()));
        }
        if let Some(key) = &self.idempotency_key {
            let printable = key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !printable {
                return Err(format!(
                    "the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
                ));
            }
        }
        if self.reply_to.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_REPLY_TO) {
            return Err(format!("reply_to must be a message id of 1 to {MAX_REPLY_TO} characters"));
        }
        Ok(())
    }

    /// The fingerprint of what is asked: a repetition under the same key must match it.
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.to.to_string().as_str(), &self.text, self.reply_to.as_deref().unwrap_or("")] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hex::encode_upper(hash.finalize())
    }
}

/// The WhatsApp message id that `key` stands for on `device` of `tenant`: the same key always
/// gives the same id there, and other ids elsewhere. Shaped like the ids WhatsApp's own web
/// client makes (`3EB0` and hexadecimal).
pub fn message_id(tenant: &str, device: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    for part in ["waedge idempotency key", tenant, device, key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    format!("3EB0{}", hex::encode_upper(&hash.finalize()[..10]))
}

/// The sends of one device under way, by message id: a repetition waits for the attempt before
/// it, so that one id is never handed to the client twice at once, and an attempt that fails
/// cannot forget a message another one has just handed over.
#[derive(Default)]
pub(crate) struct InFlight(std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl InFlight {
    /// Waits until no other send of `id` is under way; the send of `id` is this one's until
    /// the guard is dropped.
    async fn enter(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut sends = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            sends.retain(|_, lock| lock.strong_count() > 0);
            match sends.get(id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    sends.insert(id.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// Sends `message` (checked already, see [`TextMessage::check`]) from `device` of `tenant`
/// with `client`, recording it in `mailbox` first; `in_flight` holds the device's sends under
/// way.
pub(crate) async fn send(
    client: &Arc<Client>,
    mailbox: &dyn Mailbox,
    in_flight: &InFlight,
    (tenant, device): (&str, &str),
    message: &TextMessage,
) -> Result<SendOutcome, Error> {
    let to = to_wa(&message.to)?;
    let content = match &message.reply_to {
        None => wa::Message::text(message.text.clone()),
        Some(quoted) => {
            // The participant of a quote is who sent the quoted message: this device's account
            // when it is one of the device's own messages; else who the device received it from
            // (in a user's chat, the other side when it was not recorded).
            let own = mailbox.sent_message(tenant, device, quoted).await.map_err(upstream)?.is_some();
            let chat = message.to.to_string();
            let participant = if own {
                client.pn().map(|jid| jid.to_non_ad_string())
            } else {
                // A message the phone sent from this account is recorded as received from it.
                let author = mailbox.received_from(tenant, device, &chat, quoted).await.map_err(upstream)?;
                match author {
                    Some(author) => Some(author),
                    None if message.to.is_group() => {
                        let why =
                            format!("reply_to: this device neither sent nor received a message {quoted} in {chat}");
                        return Err(Error::Forbidden(why));
                    }
                    None => Some(chat),
                }
            };
            let context = wa::ContextInfo { stanza_id: Some(quoted.clone()), participant, ..Default::default() };
            wa::Message::text_with_context(message.text.clone(), context)
        }
    };
    let id = match &message.idempotency_key {
        Some(key) => message_id(tenant, device, key),
        None => client.generate_message_id(),
    };
    let send = NewSend { device: device.to_string(), id, to: message.to.to_string(), request: message.fingerprint() };
    hand_over(client, mailbox, in_flight, tenant, send, (to, content)).await
}

/// Records `send` of `tenant` in `mailbox` and hands `content` for `to` (the recipient of
/// `send`) to `client` under its id, unless the message was recorded before and WhatsApp has
/// it (see [`send`]).
pub(crate) async fn hand_over(
    client: &Arc<Client>,
    mailbox: &dyn Mailbox,
    in_flight: &InFlight,
    tenant: &str,
    send: NewSend,
    (to, content): (whatsapp_rust::Jid, wa::Message),
) -> Result<SendOutcome, Error> {
    let (device, id) = (send.device.clone(), send.id.clone());
    let _turn = in_flight.enter(&id).await;
    let repeated = match mailbox.begin_send(tenant, send).await.map_err(upstream)? {
        Begun::Conflict => return Ok(SendOutcome::KeyReused),
        Begun::Repeated(sent) if sent.status != MessageStatus::Pending => return Ok(SendOutcome::Repeated(sent)),
        Begun::Repeated(_) => true,
        Begun::New(_) => false,
    };
    if let Err(e) = client.send_message_with_options(to, content, SendOptions::default().with_message_id(&id)).await {
        if !repeated {
            // Nothing says WhatsApp has it: a retry under the same id must send it again.
            mailbox.forget_send(tenant, &device, &id).await.map_err(upstream)?;
        }
        return Err(send_error(e));
    }
    let sent = mailbox.sent_message(tenant, &device, &id).await.map_err(upstream)?;
    let sent = sent.ok_or_else(|| Error::Upstream(format!("message {id} was sent but its record is gone")))?;
    Ok(if repeated { SendOutcome::Repeated(sent) } else { SendOutcome::Sent(sent) })
}

/// The statuses of sent messages that `event` reports: the server's ack (`sent`) or nack
/// (`failed`, with its code), and the recipient's delivery and read receipts. Other events,
/// and receipts of kinds that say nothing about reaching the recipient, report none.
pub(crate) fn status_changes(event: &Event) -> Vec<StatusChange> {
    let now = || rfc3339(whatsapp_rust::chrono::Utc::now());
    match event {
        Event::ServerAck(ack) if ack.class.as_deref() == Some("message") => {
            let status = if ack.error.is_some() { MessageStatus::Failed } else { MessageStatus::Sent };
            let at = ack.timestamp.map(rfc3339).unwrap_or_else(now);
            vec![StatusChange { id: ack.id.clone(), status, error_code: ack.error.clone(), at }]
        }
        Event::Receipt(receipt) if !receipt.source.is_from_me => {
            let status = match receipt.r#type {
                ReceiptType::Delivered => MessageStatus::Delivered,
                ReceiptType::Read | ReceiptType::Played => MessageStatus::Read,
                _ => return Vec::new(),
            };
            let at = rfc3339(receipt.timestamp);
            let ids = receipt.message_ids.iter();
            ids.map(|id| StatusChange { id: id.to_string(), status, error_code: None, at: at.clone() }).collect()
        }
        _ => Vec::new(),
    }
}

/// `at` as RFC 3339 UTC with seconds, as events and sent messages record times.
pub(crate) fn rfc3339(at: whatsapp_rust::chrono::DateTime<whatsapp_rust::chrono::Utc>) -> String {
    at.to_rfc3339_opts(whatsapp_rust::chrono::SecondsFormat::Secs, true)
}

pub(crate) fn upstream(e: anyhow::Error) -> Error {
    Error::Upstream(format!("the gateway's record of it failed: {e:#}"))
}

/// The contract's error for a send the client refused or could not make.
fn send_error(e: SendError) -> Error {
    match e {
        SendError::NotLoggedIn => Error::DeviceNotConnected(waedge_contract::types::DeviceState::Connecting),
        SendError::InvalidRequest(why) => Error::Forbidden(why),
        // A query the send needed failed: a group's member list, when the device's account is
        // not a member, is refused (403).
        SendError::Iq(e) => iq_error(e),
        other => Error::Upstream(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(to: &str, text: &str, key: Option<&str>) -> TextMessage {
        TextMessage { to: to.parse().unwrap(), text: text.into(), reply_to: None, idempotency_key: key.map(Into::into) }
    }

    #[test]
    fn a_key_stands_for_one_id_per_device() {
        let id = message_id("acme", "main", "order-1");
        assert!(id.starts_with("3EB0") && id.len() == 24, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()), "{id}");
        assert_eq!(id, message_id("acme", "main", "order-1"));
        assert_ne!(id, message_id("acme", "main", "order-2"));
        assert_ne!(id, message_id("acme", "support", "order-1"));
        assert_ne!(id, message_id("globex", "main", "order-1"));
        assert_ne!(message_id("a", "bc", "k"), message_id("ab", "c", "k"), "parts cannot run into each other");
    }

    #[test]
    fn a_repetition_is_the_same_recipient_text_and_reply() {
        let first = text("5511999999999@s.whatsapp.net", "hello", Some("k"));
        assert_eq!(first.fingerprint(), text("5511999999999@s.whatsapp.net", "hello", Some("k")).fingerprint());
        assert_ne!(first.fingerprint(), text("5511999999999@s.whatsapp.net", "hello!", Some("k")).fingerprint());
        assert_ne!(first.fingerprint(), text("5511888888888@s.whatsapp.net", "hello", Some("k")).fingerprint());
        let reply = TextMessage { reply_to: Some("3EB0AA".into()), ..first.clone() };
        assert_ne!(first.fingerprint(), reply.fingerprint());
    }

    #[test]
    fn texts_and_keys_are_checked() {
        assert_eq!(text("5511999999999@s.whatsapp.net", "hi", Some("order 1")).check(), Ok(()));
        assert!(text("5511999999999@s.whatsapp.net", "", None).check().unwrap_err().contains("empty"));
        let long = "a".repeat(MAX_TEXT_BYTES + 1);
        assert!(text("5511999999999@s.whatsapp.net", &long, None).check().unwrap_err().contains("65537 bytes"));
        for key in ["", "ключ", "tab\there", &"k".repeat(256)] {
            let refused = text("5511999999999@s.whatsapp.net", "hi", Some(key)).check().unwrap_err();
            assert!(refused.contains("idempotency key"), "{key:?}: {refused}");
        }
    }
}

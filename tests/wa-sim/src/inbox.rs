//! What world accounts received from client devices, as their phones saw it, and whether
//! their phones confirm delivery by themselves.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;
use wacore_binary::Jid;

use crate::hub::lock;

/// A text a world account received from a client device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedText {
    /// The sender's phone number (digits).
    pub from_phone: String,
    /// The sender's LID user part (digits).
    pub from_lid: String,
    /// The message id (the `id` of the client's `<message>`).
    pub id: String,
    /// The text (`conversation` or `extended_text_message.text`).
    pub text: String,
    /// The id of the message this one quotes (`context_info.stanza_id`), if any.
    pub reply_to: Option<String>,
    /// Who wrote the message this one quotes (`context_info.participant`), if it names one.
    pub quoted_author: Option<String>,
    /// When the server took it: unix seconds, the `t` of its ack.
    pub at: u64,
}

/// An inbox entry: a received text and the JID the sender addressed (the recipient's
/// phone number or LID, or a group), which the recipient's receipts come from.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The text.
    pub text: ReceivedText,
    /// The recipient as the sender addressed it (bare user JID), or the group.
    pub chat: Jid,
    /// In a group, the recipient as the group addresses its members.
    pub participant: Option<Jid>,
}

/// Every world account's received texts, in order, and the accounts whose phones do not
/// send delivery receipts.
#[derive(Default)]
pub struct Inboxes {
    texts: Mutex<HashMap<String, Vec<Entry>>>,
    silent: Mutex<HashSet<String>>,
}

impl Inboxes {
    /// Records a text for account `phone`; `false` (and nothing recorded) if the account
    /// already received a message with that id — WhatsApp dedupes by id.
    pub fn record(&self, phone: &str, entry: Entry) -> bool {
        let mut texts = lock(&self.texts);
        let inbox = texts.entry(phone.to_owned()).or_default();
        if inbox.iter().any(|d| d.text.id == entry.text.id) {
            return false;
        }
        inbox.push(entry);
        true
    }

    /// The texts account `phone` received, oldest first.
    pub fn received(&self, phone: &str) -> Vec<ReceivedText> {
        lock(&self.texts).get(phone).map(|inbox| inbox.iter().map(|d| d.text.clone()).collect()).unwrap_or_default()
    }

    /// The text with this id that account `phone` received.
    pub fn find(&self, phone: &str, id: &str) -> Option<Entry> {
        lock(&self.texts).get(phone)?.iter().find(|d| d.text.id == id).cloned()
    }

    /// Whether account `phone`'s phone sends a delivery receipt for what it receives
    /// (the default).
    pub fn auto_delivery(&self, phone: &str) -> bool {
        !lock(&self.silent).contains(phone)
    }

    /// Turns account `phone`'s automatic delivery receipts on or off.
    pub fn set_auto_delivery(&self, phone: &str, on: bool) {
        let mut silent = lock(&self.silent);
        if on {
            silent.remove(phone);
        } else {
            silent.insert(phone.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(id: &str, text: &str) -> Entry {
        let text = ReceivedText {
            from_phone: "1".into(),
            from_lid: "2".into(),
            id: id.into(),
            text: text.into(),
            reply_to: None,
            quoted_author: None,
            at: 5,
        };
        Entry { text, chat: Jid::pn("3"), participant: None }
    }

    #[test]
    fn a_message_id_is_recorded_once_per_account_in_order() {
        let inboxes = Inboxes::default();
        assert!(inboxes.record("3", text("A", "one")));
        assert!(inboxes.record("3", text("B", "two")));
        assert!(!inboxes.record("3", text("A", "again")));
        assert!(inboxes.record("4", text("A", "elsewhere")));
        let texts: Vec<String> = inboxes.received("3").into_iter().map(|t| t.text).collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!(inboxes.find("3", "B").map(|d| d.text.text), Some("two".to_owned()));
        assert!(inboxes.find("3", "C").is_none());
    }

    #[test]
    fn delivery_receipts_are_on_until_turned_off() {
        let inboxes = Inboxes::default();
        assert!(inboxes.auto_delivery("3"));
        inboxes.set_auto_delivery("3", false);
        assert!(!inboxes.auto_delivery("3"));
        assert!(inboxes.auto_delivery("4"));
        inboxes.set_auto_delivery("3", true);
        assert!(inboxes.auto_delivery("3"));
    }
}

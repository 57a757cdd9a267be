//! The contact names a device session learns from WhatsApp's events (push names, business
//! names, the names the phone's address book gives), for the profile API. What changes is
//! recorded in the device's [`Mailbox`](crate::Mailbox) too, which keeps it across restarts.
//!
//! Who the names are about is up to whoever messages the account, so the map is bounded:
//! at most [`MAX_NAMES`] contacts per device; once full, the names of contacts already known
//! are still updated and new contacts are not added.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use waedge_contract::types::Contact;

/// Contacts whose names one device keeps.
pub const MAX_NAMES: usize = 100_000;

/// One device's learned contact names, by JID (without device).
#[derive(Default)]
pub struct LearnedNames {
    names: Mutex<HashMap<String, Contact>>,
    /// The contacts whose recorded names were looked up (see [`LearnedNames::first_look`]).
    looked_up: Mutex<HashSet<String>>,
}

impl LearnedNames {
    /// Applies `update` to what is known of `jid`; a contact not known yet is added only while
    /// fewer than [`MAX_NAMES`] are. Returns the contact's names when they changed.
    pub fn learn(&self, jid: &str, update: impl FnOnce(&mut Contact)) -> Option<Contact> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.len() >= MAX_NAMES && !names.contains_key(jid) {
            return None;
        }
        let contact = names.entry(jid.to_string()).or_insert_with(|| Contact::unnamed(jid));
        let before = contact.clone();
        update(contact);
        (*contact != before).then(|| contact.clone())
    }

    /// Forgets what is known of `jid` (it could not be recorded): the next names WhatsApp
    /// sends for it are new again.
    pub fn forget(&self, jid: &str) {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).remove(jid);
    }

    /// Whether this is the first look at `jid`'s recorded names in this session (at most
    /// [`MAX_NAMES`] contacts are looked up once; more are looked up each time).
    pub fn first_look(&self, jid: &str) -> bool {
        let mut looked_up = self.looked_up.lock().unwrap_or_else(|p| p.into_inner());
        looked_up.len() >= MAX_NAMES || looked_up.insert(jid.to_string())
    }

    /// Makes the next look at `jid`'s recorded names a first one again (the last one failed).
    pub fn forget_look(&self, jid: &str) {
        self.looked_up.lock().unwrap_or_else(|p| p.into_inner()).remove(jid);
    }

    /// Takes in names recorded earlier (by another session of the device), where nothing newer
    /// is known.
    pub fn recall(&self, recorded: &Contact) {
        self.learn(&recorded.jid, |known| {
            for (field, earlier) in [
                (&mut known.push_name, &recorded.push_name),
                (&mut known.business_name, &recorded.business_name),
                (&mut known.full_name, &recorded.full_name),
            ] {
                if field.is_none() {
                    field.clone_from(earlier);
                }
            }
        });
    }

    /// What is known of `jid`.
    pub fn get(&self, jid: &str) -> Option<Contact> {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).get(jid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_learned_up_to_the_bound_and_known_ones_kept_up_to_date() {
        let names = LearnedNames::default();
        for n in 0..MAX_NAMES {
            names.learn(&format!("{n}@s.whatsapp.net"), |c| c.push_name = Some(format!("n{n}")));
        }
        names.learn("new@s.whatsapp.net", |c| c.push_name = Some("new".into()));
        assert_eq!(names.get("new@s.whatsapp.net"), None, "no room for a new contact");
        let changed = names.learn("7@s.whatsapp.net", |c| c.business_name = Some("Seven Ltd".into()));
        let seven = names.get("7@s.whatsapp.net").expect("a known contact");
        assert_eq!((seven.push_name.as_deref(), seven.business_name.as_deref()), (Some("n7"), Some("Seven Ltd")));
        assert_eq!(changed, Some(seven));
        assert_eq!(names.learn("7@s.whatsapp.net", |c| c.push_name = Some("n7".into())), None, "no change");
    }

    #[test]
    fn recorded_names_are_looked_up_once_unless_the_look_failed() {
        let names = LearnedNames::default();
        assert!(names.first_look("1@s.whatsapp.net"));
        assert!(!names.first_look("1@s.whatsapp.net"));
        names.forget_look("1@s.whatsapp.net");
        assert!(names.first_look("1@s.whatsapp.net"));
    }

    #[test]
    fn names_recalled_fill_only_what_is_not_known() {
        let names = LearnedNames::default();
        names.learn("1@s.whatsapp.net", |c| c.push_name = Some("new".into()));
        let recorded = Contact {
            jid: "1@s.whatsapp.net".into(),
            push_name: Some("old".into()),
            business_name: Some("Old Ltd".into()),
            full_name: None,
        };
        names.recall(&recorded);
        let known = names.get("1@s.whatsapp.net").unwrap();
        assert_eq!((known.push_name.as_deref(), known.business_name.as_deref()), (Some("new"), Some("Old Ltd")));
    }
}

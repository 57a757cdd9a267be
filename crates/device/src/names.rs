//! The contact names a device session learns from WhatsApp's events (push names, business
//! names, the names the phone's address book gives), for the profile API.
//!
//! Who the names are about is up to whoever messages the account, so the map is bounded:
//! at most [`MAX_NAMES`] contacts per device; once full, the names of contacts already known
//! are still updated and new contacts are not added.

use std::collections::HashMap;
use std::sync::Mutex;

use waedge_contract::types::Contact;

/// Contacts whose names one device keeps.
pub const MAX_NAMES: usize = 100_000;

/// One device's learned contact names, by JID (without device).
#[derive(Default)]
pub struct LearnedNames {
    names: Mutex<HashMap<String, Contact>>,
}

impl LearnedNames {
    /// Applies `update` to what is known of `jid`; a contact not known yet is added only while
    /// fewer than [`MAX_NAMES`] are.
    pub fn learn(&self, jid: &str, update: impl FnOnce(&mut Contact)) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.len() >= MAX_NAMES && !names.contains_key(jid) {
            return;
        }
        let contact = names.entry(jid.to_string()).or_insert_with(|| Contact {
            jid: jid.to_string(),
            push_name: None,
            business_name: None,
            full_name: None,
        });
        update(contact);
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
        names.learn("7@s.whatsapp.net", |c| c.business_name = Some("Seven Ltd".into()));
        let seven = names.get("7@s.whatsapp.net").expect("a known contact");
        assert_eq!((seven.push_name.as_deref(), seven.business_name.as_deref()), (Some("n7"), Some("Seven Ltd")));
    }
}

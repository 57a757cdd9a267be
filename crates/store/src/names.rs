//! The names devices learned for their contacts — push names, business names and the names
//! the phone's address book gives — kept across restarts, each change a `contact.name` event.
//!
//! A session learns names from what WhatsApp sends it (every message carries its sender's push
//! name) and hands the store each name it did not know yet in this session
//! ([`Store::remember_names`]); the store records a name that is new or different, with its
//! event in the same transaction, and keeps the others as they are, so a restart, or a name
//! heard again, makes no event.

use serde_json::json;
use waedge_contract::types::Contact;

use super::events::{self, CONTACT_NAME, EventRecord, NewEvent};
use super::{Store, StoreError, now};
use crate::db::{Conn, params};

impl Store {
    /// Records the names of `contacts` that `device` of `tenant` learned: a name that is set
    /// and differs from the one recorded replaces it (a name not set keeps the recorded one),
    /// and each contact whose names changed gets a `contact.name` event; returns those events.
    pub fn remember_names(
        &self,
        tenant: &str,
        device: &str,
        contacts: &[Contact],
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.transaction(|tx| {
            let mut appended = Vec::new();
            for contact in contacts {
                appended.extend(remember(tx, tenant, device, contact)?);
            }
            Ok(appended)
        })
    }

    /// The names `device` of `tenant` learned for `jid`, if it learned any.
    pub fn contact_names(&self, tenant: &str, device: &str, jid: &str) -> Result<Option<Contact>, StoreError> {
        self.read(|conn| recorded(conn, tenant, device, jid))
    }
}

fn recorded(conn: &Conn<'_>, tenant: &str, device: &str, jid: &str) -> Result<Option<Contact>, StoreError> {
    conn.query_opt(
        "SELECT push_name, business_name, full_name FROM contact_names
         WHERE tenant_id = ?1 AND device = ?2 AND jid = ?3",
        params![tenant, device, jid],
        |row| {
            Ok(Contact {
                jid: jid.to_string(),
                push_name: row.get(0)?,
                business_name: row.get(1)?,
                full_name: row.get(2)?,
            })
        },
    )
}

/// Records the names of one contact, if they change anything, with their event.
fn remember(tx: &Conn<'_>, tenant: &str, device: &str, learned: &Contact) -> Result<Option<EventRecord>, StoreError> {
    let was = recorded(tx, tenant, device, &learned.jid)?.unwrap_or_else(|| Contact::unnamed(&learned.jid));
    let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
    let now_known = Contact {
        jid: learned.jid.clone(),
        push_name: pick(&learned.push_name, &was.push_name),
        business_name: pick(&learned.business_name, &was.business_name),
        full_name: pick(&learned.full_name, &was.full_name),
    };
    if now_known == was {
        return Ok(None);
    }
    let at = now();
    let inserted = tx.execute(
        "INSERT INTO contact_names (tenant_id, device, jid, push_name, business_name, full_name, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 FROM devices WHERE tenant_id = ?1 AND id = ?2
         ON CONFLICT (tenant_id, device, jid) DO UPDATE SET
           push_name = excluded.push_name, business_name = excluded.business_name,
           full_name = excluded.full_name, updated_at = excluded.updated_at",
        params![tenant, device, now_known.jid, now_known.push_name, now_known.business_name, now_known.full_name, at],
    )?;
    if inserted == 0 {
        // The device is gone: nothing can read its names.
        return Ok(None);
    }
    let names =
        |c: &Contact| json!({ "push_name": c.push_name, "business_name": c.business_name, "full_name": c.full_name });
    let event = NewEvent {
        device: device.to_string(),
        kind: CONTACT_NAME.to_string(),
        // A device's own event (its chat is empty), like the contact's other events.
        chat: String::new(),
        dedup: None,
        at,
        data: json!({ "jid": learned.jid, "names": names(&now_known), "previous": names(&was) }),
    };
    events::append(tx, tenant, &event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};

    const JOHN: &str = "6281234567890@s.whatsapp.net";

    fn learned(push: Option<&str>, business: Option<&str>) -> Contact {
        Contact {
            jid: JOHN.into(),
            push_name: push.map(Into::into),
            business_name: business.map(Into::into),
            full_name: None,
        }
    }

    on_both! {
    fn a_new_or_changed_name_is_kept_with_its_event_and_one_heard_again_makes_none(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let first = store.remember_names("acme", "main", &[learned(Some("John"), None)]).unwrap();
        assert_eq!((first.len(), first[0].kind.as_str(), first[0].chat.as_str()), (1, CONTACT_NAME, ""));
        let unknown = json!({ "push_name": null, "business_name": null, "full_name": null });
        assert_eq!(
            first[0].data,
            json!({ "jid": JOHN, "names": { "push_name": "John", "business_name": null, "full_name": null },
                    "previous": unknown })
        );
        assert!(
            store.remember_names("acme", "main", &[learned(Some("John"), None)]).unwrap().is_empty(),
            "heard again"
        );
        assert!(store.remember_names("acme", "main", &[learned(None, None)]).unwrap().is_empty(), "nothing new");

        let changed = store.remember_names("acme", "main", &[learned(None, Some("John's Bikes"))]).unwrap();
        assert_eq!(
            changed[0].data["names"],
            json!({ "push_name": "John", "business_name": "John's Bikes", "full_name": null })
        );
        assert_eq!(changed[0].data["previous"]["push_name"], "John", "a name not learned again is kept");
        assert_eq!(
            store.contact_names("acme", "main", JOHN).unwrap(),
            Some(learned(Some("John"), Some("John's Bikes")))
        );
        assert_eq!(store.contact_names("acme", "other", JOHN).unwrap(), None, "names are the device's");
        assert!(store.remember_names("acme", "gone", &[learned(Some("John"), None)]).unwrap().is_empty());
    }
    }
}

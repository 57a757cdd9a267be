//! The verified links of tenants, kept in memory once read.
//!
//! The devices API's contact profile shows the tenant's verified link of the contact, so every
//! profile lookup asks for one, and nearly always there is none. Asked of SQLite, that was a
//! query on a blocking thread per request: two context switches and a statement parse, more
//! than half of the gateway's CPU for a profile served by a component under load
//! (BENCHMARKS.md, issue #14). A tenant's links are few (one per contact that answered a code)
//! and, with a SQLite store, are made by this process only, in the transaction that records
//! the answer, so they are read whole on the first lookup and answered from memory after it.
//! (A link written into the database by hand while the gateway runs is seen after a restart.)
//! A PostgreSQL store is shared with other nodes, which make links too: it keeps none here.
//!
//! Both the loading and the forgetting of a tenant's links happen in the store's write
//! transactions, which run one at a time (see
//! [`Store::verified_link`](crate::Store::verified_link)): a lookup answered from memory never
//! sees a link older than the last one committed before it began.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use waedge_contract::types::VerifiedLink;

/// A tenant with more links than this is not kept in memory: its lookups query the database.
/// Bounds what one tenant holds here (a link and its two keys are about half a KiB).
pub(crate) const MAX_KNOWN_PER_TENANT: usize = 1_000;

/// The links of the tenants read so far, by tenant id.
#[derive(Debug, Default)]
pub(crate) struct KnownLinks(Mutex<HashMap<String, Arc<TenantLinks>>>);

/// What is known of one tenant's links.
#[derive(Debug)]
pub(crate) enum TenantLinks {
    /// All of them, by LID and by phone JID (the latest link of the number).
    All(HashMap<String, Arc<VerifiedLink>>),
    /// More than [`MAX_KNOWN_PER_TENANT`]: ask the database.
    TooMany,
}

impl TenantLinks {
    /// The links `rows` (all of a tenant's, oldest first: by `linked_at`, then by when each
    /// row was first written), or [`TenantLinks::TooMany`].
    pub(crate) fn of(rows: Vec<VerifiedLink>) -> TenantLinks {
        if rows.len() > MAX_KNOWN_PER_TENANT {
            return TenantLinks::TooMany;
        }
        let mut by_jid = HashMap::with_capacity(2 * rows.len());
        for link in rows.into_iter().map(Arc::new) {
            // Oldest first: a number linked again keeps its latest link.
            by_jid.insert(link.phone_jid.clone(), link.clone());
            by_jid.insert(link.lid.clone(), link);
        }
        TenantLinks::All(by_jid)
    }

    /// The link of `jid`: `Some(None)` when there is none, `None` when only the database knows.
    pub(crate) fn get(&self, jid: &str) -> Option<Option<VerifiedLink>> {
        match self {
            TenantLinks::All(by_jid) => Some(by_jid.get(jid).map(|link| VerifiedLink::clone(link))),
            TenantLinks::TooMany => None,
        }
    }
}

impl KnownLinks {
    /// What is known of `tenant`'s links, if they were read.
    pub(crate) fn of(&self, tenant: &str) -> Option<Arc<TenantLinks>> {
        self.lock().get(tenant).cloned()
    }

    /// Keeps `links` as `tenant`'s. In a write transaction.
    pub(crate) fn keep(&self, tenant: &str, links: Arc<TenantLinks>) {
        self.lock().insert(tenant.to_string(), links);
    }

    /// Forgets `tenant`'s links, which changed. In a write transaction.
    pub(crate) fn forget(&self, tenant: &str) {
        self.lock().remove(tenant);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<TenantLinks>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(lid: &str, phone: &str, at: &str) -> VerifiedLink {
        VerifiedLink {
            lid: lid.into(),
            phone_jid: phone.into(),
            device: "main".into(),
            verification: format!("v-{lid}"),
            linked_at: at.into(),
        }
    }

    #[test]
    fn a_number_shows_its_latest_link_and_a_lid_its_own() {
        const PHONE: &str = "15550001111@s.whatsapp.net";
        let (old, new) = (link("1@lid", PHONE, "2026-12-01T00:00:00Z"), link("2@lid", PHONE, "2026-12-02T00:00:00Z"));
        let links = TenantLinks::of(vec![old.clone(), new.clone()]);
        assert_eq!(links.get(PHONE), Some(Some(new)));
        assert_eq!(links.get("1@lid"), Some(Some(old)));
        assert_eq!(links.get("3@lid"), Some(None));
    }

    #[test]
    fn too_many_links_are_not_kept() {
        let rows = (0..=MAX_KNOWN_PER_TENANT).map(|i| link(&format!("{i}@lid"), "1@s.whatsapp.net", "")).collect();
        assert_eq!(TenantLinks::of(rows).get("0@lid"), None);
    }
}

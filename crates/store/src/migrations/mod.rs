//! The store's schema, as an append-only list of migrations per database: SQLite's
//! ([`sqlite`]) and PostgreSQL's ([`postgres`]). Each applies the rest of its list in
//! transactions: SQLite one per migration, PostgreSQL all in one. Never edit a released migration: add a new one, to both lists
//! where both have what it changes (the PostgreSQL schema began with SQLite's ninth, and has
//! the nodes' bookkeeping SQLite needs not, so its versions count differently).

pub(crate) mod postgres;
pub(crate) mod sqlite;

use crate::StoreError;

/// [`StoreError::Invalid`] if a database's schema `found` is newer than this build's `known`.
fn refuse_newer(found: i64, known: i64) -> Result<(), StoreError> {
    if found > known {
        return Err(StoreError::Invalid(format!(
            "the database has schema version {found}, newer than this waedge knows ({known}): run a newer waedge"
        )));
    }
    Ok(())
}

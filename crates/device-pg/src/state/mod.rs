//! One device's whatsapp-rust state in PostgreSQL, written only under its lease.
//!
//! Every write is a single statement that first takes the device's lease row `FOR KEY
//! SHARE` with the epoch it was opened with (see [`fenced!`]): when a takeover has changed
//! the epoch, the statement writes nothing; when a takeover is under way, the statement waits
//! for it and then writes nothing. A write that wrote nothing asks the lease once more and
//! fails with [`Error::Fenced`] if the epoch moved on; from then on the state refuses every
//! write without asking, and [`DeviceState::fenced`] tells its owner to stop the client.
//! Reads are not fenced: a stale reader can do nothing with what it reads, for it cannot
//! write.

mod app_sync;
mod device;
mod protocol;
mod secrets;
mod signal;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use wacore::store::error::StoreError;

use crate::{Database, Error, Lease};

/// Prefixes a write with the lease check: `$1` is the device, `$2` the epoch, and the
/// statement reads the device from `lease` (`SELECT lease.id …`, `USING lease`), so it
/// writes no row unless the epoch is still the device's.
macro_rules! fenced {
    ($sql:literal) => {
        concat!("WITH lease AS (SELECT id FROM wa_devices WHERE id = $1 AND epoch = $2 FOR KEY SHARE) ", $sql)
    };
}
pub(crate) use fenced;

/// [`DeviceState::clear`]: every table of the device's state, in one statement under the lease.
const CLEAR: &str = "WITH lease AS (SELECT id FROM wa_devices WHERE id = $1 AND epoch = $2 FOR KEY SHARE),
    device_data AS (DELETE FROM wa_device_data t USING lease WHERE t.device = lease.id),
    identities AS (DELETE FROM wa_identities t USING lease WHERE t.device = lease.id),
    sessions AS (DELETE FROM wa_sessions t USING lease WHERE t.device = lease.id),
    prekeys AS (DELETE FROM wa_prekeys t USING lease WHERE t.device = lease.id),
    signed_prekeys AS (DELETE FROM wa_signed_prekeys t USING lease WHERE t.device = lease.id),
    sender_keys AS (DELETE FROM wa_sender_keys t USING lease WHERE t.device = lease.id),
    app_state_keys AS (DELETE FROM wa_app_state_keys t USING lease WHERE t.device = lease.id),
    app_state_versions AS (DELETE FROM wa_app_state_versions t USING lease WHERE t.device = lease.id),
    app_state_macs AS (DELETE FROM wa_app_state_macs t USING lease WHERE t.device = lease.id),
    sender_key_devices AS (DELETE FROM wa_sender_key_devices t USING lease WHERE t.device = lease.id),
    lid_pn AS (DELETE FROM wa_lid_pn t USING lease WHERE t.device = lease.id),
    base_keys AS (DELETE FROM wa_base_keys t USING lease WHERE t.device = lease.id),
    device_lists AS (DELETE FROM wa_device_lists t USING lease WHERE t.device = lease.id),
    group_metadata AS (DELETE FROM wa_group_metadata t USING lease WHERE t.device = lease.id),
    tc_tokens AS (DELETE FROM wa_tc_tokens t USING lease WHERE t.device = lease.id),
    sent_messages AS (DELETE FROM wa_sent_messages t USING lease WHERE t.device = lease.id),
    pending_inbound AS (DELETE FROM wa_pending_inbound t USING lease WHERE t.device = lease.id),
    msg_secrets AS (DELETE FROM wa_msg_secrets t USING lease WHERE t.device = lease.id)
SELECT id FROM lease";

/// whatsapp-rust's storage backend for one device, held under one lease.
pub struct DeviceState {
    db: Arc<Database>,
    id: i64,
    epoch: i64,
    fenced: watch::Sender<bool>,
}

/// A store result.
type Result<T> = std::result::Result<T, StoreError>;

impl DeviceState {
    /// The state of the device `lease` is for, written with the lease's epoch.
    pub fn new(db: Arc<Database>, lease: &Lease) -> DeviceState {
        DeviceState { db, id: lease.id, epoch: lease.epoch, fenced: watch::channel(false).0 }
    }

    /// Becomes true when a write was refused because another node took the device over:
    /// its client must stop.
    pub fn fenced(&self) -> watch::Receiver<bool> {
        self.fenced.subscribe()
    }

    /// Runs a read whose `$1` is the device; `params` are `$2…`.
    async fn read(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let db = self.db.connection().await.map_err(database)?;
        db.query(sql, &with(&[&self.id], params)).await.map_err(database)
    }

    /// [`read`](Self::read), for at most one row.
    async fn read_one(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.read(sql, params).await?.into_iter().next())
    }

    /// Runs a [`fenced!`] write whose `$1` and `$2` are the device and the epoch; `params`
    /// are `$3…`. Returns the rows it returned (`RETURNING`), none when it wrote nothing.
    async fn write_returning(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        if *self.fenced.borrow() {
            return Err(self.refused());
        }
        let db = self.db.connection().await.map_err(database)?;
        let rows = db.query(sql, &with(&[&self.id, &self.epoch], params)).await.map_err(database)?;
        if rows.is_empty() {
            self.check_lease().await?;
        }
        Ok(rows)
    }

    /// [`write_returning`](Self::write_returning) for a statement without `RETURNING`:
    /// returns how many rows it wrote.
    async fn write(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        if *self.fenced.borrow() {
            return Err(self.refused());
        }
        let db = self.db.connection().await.map_err(database)?;
        let written = db.execute(sql, &with(&[&self.id, &self.epoch], params)).await.map_err(database)?;
        if written == 0 {
            self.check_lease().await?;
        }
        Ok(written)
    }

    /// Deletes everything whatsapp-rust keeps for this device (its keys, sessions, app state
    /// …), in one statement under the lease: the device is then as never linked.
    pub async fn clear(&self) -> Result<()> {
        self.write_returning(CLEAR, &[]).await?;
        Ok(())
    }

    /// After a write that wrote nothing: was there nothing to write, or is the lease gone?
    /// Epochs only grow, so an epoch that is current now was current during the write.
    async fn check_lease(&self) -> Result<()> {
        let db = self.db.connection().await.map_err(database)?;
        let row = db.query_opt("SELECT epoch FROM wa_devices WHERE id = $1", &[&self.id]).await.map_err(database)?;
        if row.is_some_and(|row| row.get::<_, i64>(0) == self.epoch) {
            return Ok(());
        }
        if !self.fenced.send_replace(true) {
            tracing::warn!(
                device = self.id,
                epoch = self.epoch,
                "another node took this device over; its writes are refused"
            );
        }
        Err(self.refused())
    }

    fn refused(&self) -> StoreError {
        StoreError::Database(Box::new(Error::Fenced { device: self.id, epoch: self.epoch }))
    }
}

/// `first` followed by `rest`: the parameters of a statement.
fn with<'a>(first: &[&'a (dyn ToSql + Sync)], rest: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
    first.iter().chain(rest).copied().collect()
}

fn database(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(Box::new(e))
}

fn serialization(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Serialization(Box::new(e))
}

/// The rows of a batch with one row per key, the last one given winning — what writing them
/// one after the other would leave (a PostgreSQL upsert may not touch a row twice) — in key
/// order, so that two batches touching the same rows lock them in the same order and never
/// deadlock.
fn last_wins<K: Ord, T>(rows: impl IntoIterator<Item = T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut kept: BTreeMap<K, T> = BTreeMap::new();
    for row in rows {
        kept.insert(key(&row), row);
    }
    kept.into_values().collect()
}

/// The current time in seconds, as whatsapp-rust's stores stamp rows.
fn now() -> i64 {
    wacore::time::now_secs()
}

/// A count of rows, as whatsapp-rust's cleanups report it.
fn count(rows: u64) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX)
}

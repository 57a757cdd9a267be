//! Moving a device's state from whatsapp-rust's SQLite file into PostgreSQL, so that a
//! device linked on one machine keeps its session when the gateway moves to a cluster.
//!
//! The file is read whole first ([`SqliteState::read`]), then written in one transaction
//! ([`Database::import`]): a device's state arrives all of it or not at all. Values whose
//! encoding in the file is whatsapp-rust's own (the device, app-state keys and versions) are
//! read through its store and written as [`DeviceState`](crate::DeviceState) writes them;
//! every other value is bytes or a number the file holds as the client gave it, and is
//! copied as it is — timestamps and upload marks included.

use std::path::Path;

use bytes::BytesMut;
use futures_util::future::try_join_all;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use wacore::appstate::hash::HashState;
use wacore::store::Device;
use wacore::store::traits::{AppStateSyncKey, AppSyncStore, DeviceStore};
use whatsapp_rust_sqlite_storage::SqliteStore;

use crate::database::in_transaction;
use crate::{Database, Error};

/// A table copied as it is: the columns read from the file (its device's rows, `?1`) and the
/// statement that writes them (`$1` the device, then the columns in the same order; a flag
/// the file holds as 0 or 1 is written as `$n::bigint <> 0`).
struct Table {
    name: &'static str,
    read: &'static str,
    write: &'static str,
}

/// The tables whose values are copied as they are, in whatsapp-rust 0.7's schema.
const TABLES: &[Table] = &[
    Table {
        name: "identities",
        read: "SELECT address, key FROM identities WHERE device_id = ?1",
        write: "INSERT INTO wa_identities (device, address, key) VALUES ($1, $2, $3)",
    },
    Table {
        name: "sessions",
        read: "SELECT address, record FROM sessions WHERE device_id = ?1",
        write: "INSERT INTO wa_sessions (device, address, record) VALUES ($1, $2, $3)",
    },
    Table {
        name: "prekeys",
        read: "SELECT id, key, uploaded FROM prekeys WHERE device_id = ?1",
        write: "INSERT INTO wa_prekeys (device, id, record, uploaded) VALUES ($1, $2, $3, $4::bigint <> 0)",
    },
    Table {
        name: "signed_prekeys",
        read: "SELECT id, record FROM signed_prekeys WHERE device_id = ?1",
        write: "INSERT INTO wa_signed_prekeys (device, id, record) VALUES ($1, $2, $3)",
    },
    Table {
        name: "sender_keys",
        read: "SELECT address, record FROM sender_keys WHERE device_id = ?1",
        write: "INSERT INTO wa_sender_keys (device, address, record) VALUES ($1, $2, $3)",
    },
    Table {
        name: "app_state_mutation_macs",
        read: "SELECT name, index_mac, version, value_mac FROM app_state_mutation_macs WHERE device_id = ?1",
        write: "INSERT INTO wa_app_state_macs (device, name, index_mac, version, value_mac) VALUES ($1, $2, $3, $4, $5)",
    },
    Table {
        name: "sender_key_devices",
        read: "SELECT group_jid, device_jid, has_key, updated_at FROM sender_key_devices WHERE device_id = ?1",
        write: "INSERT INTO wa_sender_key_devices (device, group_jid, device_jid, has_key, updated_at)
                VALUES ($1, $2, $3, $4::bigint <> 0, $5)",
    },
    Table {
        name: "lid_pn_mapping",
        read: "SELECT lid, phone_number, created_at, updated_at, learning_source FROM lid_pn_mapping
               WHERE device_id = ?1",
        write: "INSERT INTO wa_lid_pn (device, lid, phone_number, created_at, updated_at, learning_source)
                VALUES ($1, $2, $3, $4, $5, $6)",
    },
    Table {
        name: "base_keys",
        read: "SELECT address, message_id, base_key, created_at FROM base_keys WHERE device_id = ?1",
        write: "INSERT INTO wa_base_keys (device, address, message_id, base_key, created_at)
                VALUES ($1, $2, $3, $4, $5)",
    },
    Table {
        name: "device_registry",
        read: "SELECT user_id, devices_json, timestamp, phash, raw_id, updated_at FROM device_registry
               WHERE device_id = ?1",
        // The file holds the ADV key index's u32 raw id as an i32 (negative past 2^31).
        write: "INSERT INTO wa_device_lists (device, user_id, devices, timestamp, phash, raw_id, updated_at)
                VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::bigint < 0 THEN $6::bigint + 4294967296 ELSE $6 END, $7)",
    },
    Table {
        name: "group_metadata",
        read: "SELECT group_jid, info, updated_at FROM group_metadata WHERE device_id = ?1",
        write: "INSERT INTO wa_group_metadata (device, group_jid, info, updated_at) VALUES ($1, $2, $3, $4)",
    },
    Table {
        name: "tc_tokens",
        read: "SELECT jid, token, token_timestamp, sender_timestamp, updated_at FROM tc_tokens WHERE device_id = ?1",
        write: "INSERT INTO wa_tc_tokens (device, jid, token, token_timestamp, sender_timestamp, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6)",
    },
    Table {
        name: "sent_messages",
        read: "SELECT chat_jid, message_id, payload, created_at FROM sent_messages WHERE device_id = ?1",
        write: "INSERT INTO wa_sent_messages (device, chat, message_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    },
    Table {
        name: "pending_inbound_messages",
        read: "SELECT chat, sender, id, message, inserted_at FROM pending_inbound_messages WHERE device_id = ?1",
        write: "INSERT INTO wa_pending_inbound (device, chat, sender, id, message, inserted_at)
                VALUES ($1, $2, $3, $4, $5, $6)",
    },
    Table {
        name: "msg_secrets",
        read: "SELECT chat, sender, msg_id, secret, created_at, expires_at, message_ts FROM msg_secrets
               WHERE device_id = ?1",
        write: "INSERT INTO wa_msg_secrets (device, chat, sender, msg_id, secret, created_at, expires_at, message_ts)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    },
];

/// The device a waedge device file holds: whatsapp-rust's `SqliteStore::with_config` opens
/// a file's first device, and each file is one device's.
const FILE_DEVICE: i32 = 1;

/// A value read from the file, held until it is written.
#[derive(Debug)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One device's whole state, as read from the SQLite file whatsapp-rust wrote.
pub struct SqliteState {
    device: Device,
    sync_keys: Vec<(Vec<u8>, AppStateSyncKey)>,
    versions: Vec<(String, HashState)>,
    tables: Vec<(&'static Table, Vec<Vec<Cell>>)>,
}

impl SqliteState {
    /// Reads the state of the device in the file at `path` (whose schema whatsapp-rust brings
    /// up to date first, as starting the device would; its data is left as it was). `None`
    /// when there is no file, or its device was never linked to an account.
    pub async fn read(path: &Path) -> Result<Option<SqliteState>, Error> {
        let failed = |e: &dyn std::fmt::Display| Error::Source { path: path.to_owned(), reason: e.to_string() };
        // Opening a file that is not there would create it.
        if !path.exists() {
            return Ok(None);
        }
        let url = path.to_str().ok_or_else(|| failed(&"the path is not UTF-8"))?;
        let store = SqliteStore::new_for_device(url, FILE_DEVICE).await.map_err(|e| failed(&e))?;
        let Some(device) = store.load().await.map_err(|e| failed(&e))?.filter(|device| device.pn.is_some()) else {
            return Ok(None);
        };
        let owned = path.to_owned();
        let (tables, key_ids, names) = tokio::task::spawn_blocking(move || read_rows(&owned))
            .await
            .map_err(|e| failed(&e))?
            .map_err(|e| failed(&e))?;
        let mut sync_keys = Vec::with_capacity(key_ids.len());
        for key_id in key_ids {
            // A key the store reads as absent (not an app-state key) stays behind, as it
            // would have in the file.
            if let Some(key) = store.get_sync_key(&key_id).await.map_err(|e| failed(&e))? {
                sync_keys.push((key_id, key));
            }
        }
        let mut versions = Vec::with_capacity(names.len());
        for name in names {
            let version = store.get_version(&name).await.map_err(|e| failed(&e))?;
            versions.push((name, version));
        }
        Ok(Some(SqliteState { device, sync_keys, versions, tables }))
    }

    /// How many rows the state is.
    pub fn rows(&self) -> u64 {
        let copied: usize = self.tables.iter().map(|(_, rows)| rows.len()).sum();
        (1 + self.sync_keys.len() + self.versions.len() + copied) as u64
    }
}

/// What [`SqliteState::read`] reads with SQL: the rows of every [`TABLES`] entry, the ids of
/// the app-state keys and the names of the app-state versions — in one read transaction, so
/// from one moment of the file.
type Rows = (Vec<(&'static Table, Vec<Vec<Cell>>)>, Vec<Vec<u8>>, Vec<String>);

fn read_rows(path: &Path) -> rusqlite::Result<Rows> {
    let mut file = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let read = file.transaction()?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let mut statement = read.prepare(table.read)?;
        let columns = statement.column_count();
        let rows = statement
            .query_map([FILE_DEVICE], |row| (0..columns).map(|index| Ok(Cell::from(row.get_ref(index)?))).collect())?
            .collect::<rusqlite::Result<Vec<Vec<Cell>>>>()?;
        tables.push((table, rows));
    }
    let key_ids = read
        .prepare("SELECT key_id FROM app_state_keys WHERE device_id = ?1 ORDER BY key_id")?
        .query_map([FILE_DEVICE], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<Vec<u8>>>>()?;
    let names = read
        .prepare("SELECT name FROM app_state_versions WHERE device_id = ?1 ORDER BY name")?
        .query_map([FILE_DEVICE], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok((tables, key_ids, names))
}

impl Database {
    /// Writes `state` as `tenant`'s `device`'s, in one transaction, replacing what an earlier
    /// import wrote — never the state of a device a node has run ([`Error::Run`]: the file
    /// would roll its Signal sessions back). The device is then nobody's: the next node to
    /// take a turn runs it, on the session it had.
    pub async fn import(&self, tenant: &str, device: &str, state: &SqliteState) -> Result<(), Error> {
        let client = self.dedicated().await?;
        in_transaction(&client, write(&client, tenant, device, state)).await
    }
}

async fn write(client: &tokio_postgres::Client, tenant: &str, device: &str, state: &SqliteState) -> Result<(), Error> {
    // A device no node has taken (epoch 0) holds what an import wrote, or nothing; its state
    // goes with its row (ON DELETE CASCADE).
    let held = "SELECT epoch FROM wa_devices WHERE tenant = $1 AND device = $2 FOR UPDATE";
    if client.query_opt(held, &[&tenant, &device]).await?.is_some_and(|row| row.get::<_, i64>(0) > 0) {
        return Err(Error::Run { tenant: tenant.to_owned(), device: device.to_owned() });
    }
    client.execute("DELETE FROM wa_devices WHERE tenant = $1 AND device = $2", &[&tenant, &device]).await?;
    let id: i64 = client
        .query_one("INSERT INTO wa_devices (tenant, device) VALUES ($1, $2) RETURNING id", &[&tenant, &device])
        .await?
        .get(0);
    let data = serde_json::to_vec(&state.device).map_err(Error::Encode)?;
    client.execute("INSERT INTO wa_device_data (device, data) VALUES ($1, $2)", &[&id, &data]).await?;
    for (key_id, key) in &state.sync_keys {
        client
            .execute(
                "INSERT INTO wa_app_state_keys (device, key_id, key_data, fingerprint, timestamp)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&id, key_id, &key.key_data, &key.fingerprint, &key.timestamp],
            )
            .await?;
    }
    for (name, version) in &state.versions {
        let version = serde_json::to_vec(version).map_err(Error::Encode)?;
        client
            .execute(
                "INSERT INTO wa_app_state_versions (device, name, state) VALUES ($1, $2, $3)",
                &[&id, name, &version],
            )
            .await?;
    }
    for (table, rows) in &state.tables {
        let statement = client.prepare(table.write).await?;
        // Sent together: the connection pipelines them, one round trip for the table.
        let written = rows.iter().map(|row| {
            let params: Vec<&(dyn ToSql + Sync)> =
                std::iter::once(&id as &(dyn ToSql + Sync)).chain(row.iter().map(|cell| cell as _)).collect();
            let statement = &statement;
            async move { client.execute(statement, &params).await }
        });
        try_join_all(written).await.map_err(|e| Error::Table { table: table.name, source: e })?;
    }
    Ok(())
}

impl From<rusqlite::types::ValueRef<'_>> for Cell {
    fn from(value: rusqlite::types::ValueRef<'_>) -> Self {
        use rusqlite::types::ValueRef;
        match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(int) => Cell::Int(int),
            ValueRef::Real(real) => Cell::Real(real),
            ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
            ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
        }
    }
}

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            // Each value is refused by a column of another type (no column copied holds a
            // real: one in the file is an error, not a value converted).
            Cell::Int(int) => int.to_sql_checked(ty, out),
            Cell::Real(real) => real.to_sql_checked(ty, out),
            Cell::Text(text) => text.to_sql_checked(ty, out),
            Cell::Blob(bytes) => bytes.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked value by value, in `to_sql`.
        true
    }

    to_sql_checked!();
}

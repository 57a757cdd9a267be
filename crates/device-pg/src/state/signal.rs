//! Signal: identities, sessions, prekeys, signed prekeys and sender keys.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use wacore::store::error::StoreError;
use wacore::store::traits::SignalStore;

use super::{DeviceState, Result, fenced, last_wins};

#[async_trait]
impl SignalStore for DeviceState {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put_identities_batch(&[(Arc::from(address), key)]).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let identities = last_wins(identities, |(address, _)| address.clone());
        if identities.is_empty() {
            return Ok(());
        }
        let addresses: Vec<&str> = identities.iter().map(|(address, _)| &**address).collect();
        let keys: Vec<&[u8]> = identities.iter().map(|(_, key)| &key[..]).collect();
        self.write(
            fenced!(
                "INSERT INTO wa_identities (device, address, key)
                 SELECT lease.id, u.address, u.key FROM lease, unnest($3::text[], $4::bytea[]) AS u (address, key)
                 ON CONFLICT (device, address) DO UPDATE SET key = excluded.key"
            ),
            &[&addresses, &keys],
        )
        .await?;
        Ok(())
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let row =
            self.read_one("SELECT key FROM wa_identities WHERE device = $1 AND address = $2", &[&address]).await?;
        row.map(|row| {
            let key: &[u8] = row.get(0);
            key.try_into().map_err(|_| StoreError::Validation(format!("identity key of {} bytes", key.len())))
        })
        .transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_identities t USING lease WHERE t.device = lease.id AND t.address = $3"),
            &[&address],
        )
        .await?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        let row =
            self.read_one("SELECT record FROM wa_sessions WHERE device = $1 AND address = $2", &[&address]).await?;
        Ok(row.map(|row| Bytes::from(row.get::<_, Vec<u8>>(0))))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_sessions_batch(&[(Arc::from(address), Bytes::copy_from_slice(session))]).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_records(
            fenced!(
                "INSERT INTO wa_sessions (device, address, record)
                 SELECT lease.id, u.address, u.record FROM lease, unnest($3::text[], $4::bytea[]) AS u (address, record)
                 ON CONFLICT (device, address) DO UPDATE SET record = excluded.record"
            ),
            sessions,
        )
        .await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_sessions t USING lease WHERE t.device = lease.id AND t.address = $3"),
            &[&address],
        )
        .await?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        let row = self.read_one("SELECT 1 FROM wa_sessions WHERE device = $1 AND address = $2", &[&address]).await?;
        Ok(row.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // An address is `user@server` (device 0) or `user:device@server`.
        let (at, colon) = (format!("{user}@"), format!("{user}:"));
        let row = self
            .read_one(
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM wa_sessions WHERE device = $1
                                        AND (starts_with(address, $2) OR starts_with(address, $3)))
                             OR EXISTS (SELECT 1 FROM wa_identities WHERE device = $1
                                        AND (starts_with(address, $2) OR starts_with(address, $3)))",
                &[&at, &colon],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.store_prekeys_batch(&[(id, Bytes::copy_from_slice(record))], uploaded).await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let keys = last_wins(keys, |(id, _)| *id);
        if keys.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = keys.iter().map(|(id, _)| i64::from(*id)).collect();
        let records: Vec<&[u8]> = keys.iter().map(|(_, record)| &record[..]).collect();
        self.write(
            fenced!(
                "INSERT INTO wa_prekeys (device, id, record, uploaded)
                 SELECT lease.id, u.id, u.record, $5 FROM lease, unnest($3::bigint[], $4::bytea[]) AS u (id, record)
                 ON CONFLICT (device, id) DO UPDATE SET record = excluded.record, uploaded = excluded.uploaded"
            ),
            &[&ids, &records, &uploaded],
        )
        .await?;
        Ok(())
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        let row =
            self.read_one("SELECT record FROM wa_prekeys WHERE device = $1 AND id = $2", &[&i64::from(id)]).await?;
        Ok(row.map(|row| Bytes::from(row.get::<_, Vec<u8>>(0))))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let rows = self.read("SELECT id, record FROM wa_prekeys WHERE device = $1 AND id = ANY ($2)", &[&ids]).await?;
        rows.iter().map(|row| Ok((prekey_id(row.get(0))?, Bytes::from(row.get::<_, Vec<u8>>(1))))).collect()
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        self.write(
            fenced!("UPDATE wa_prekeys t SET uploaded = TRUE FROM lease WHERE t.device = lease.id AND t.id = ANY ($3)"),
            &[&ids],
        )
        .await?;
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_prekeys t USING lease WHERE t.device = lease.id AND t.id = $3"),
            &[&i64::from(id)],
        )
        .await?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let row = self.read_one("SELECT coalesce(max(id), 0) FROM wa_prekeys WHERE device = $1", &[]).await?;
        row.map_or(Ok(0), |row| prekey_id(row.get(0)))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.write(
            fenced!(
                "INSERT INTO wa_signed_prekeys (device, id, record) SELECT lease.id, $3, $4 FROM lease
                 ON CONFLICT (device, id) DO UPDATE SET record = excluded.record"
            ),
            &[&i64::from(id), &record],
        )
        .await?;
        Ok(())
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        let row = self
            .read_one("SELECT record FROM wa_signed_prekeys WHERE device = $1 AND id = $2", &[&i64::from(id)])
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows = self.read("SELECT id, record FROM wa_signed_prekeys WHERE device = $1 ORDER BY id", &[]).await?;
        rows.iter().map(|row| Ok((prekey_id(row.get(0))?, row.get(1)))).collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_signed_prekeys t USING lease WHERE t.device = lease.id AND t.id = $3"),
            &[&i64::from(id)],
        )
        .await?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_sender_keys_batch(&[(Arc::from(address), Bytes::copy_from_slice(record))]).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_records(
            fenced!(
                "INSERT INTO wa_sender_keys (device, address, record)
                 SELECT lease.id, u.address, u.record FROM lease, unnest($3::text[], $4::bytea[]) AS u (address, record)
                 ON CONFLICT (device, address) DO UPDATE SET record = excluded.record"
            ),
            sender_keys,
        )
        .await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        let row =
            self.read_one("SELECT record FROM wa_sender_keys WHERE device = $1 AND address = $2", &[&address]).await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_sender_keys t USING lease WHERE t.device = lease.id AND t.address = $3"),
            &[&address],
        )
        .await?;
        Ok(())
    }
}

impl DeviceState {
    /// Upserts records by address with `sql` (`$3` the addresses, `$4` the records).
    async fn put_records(&self, sql: &'static str, records: &[(Arc<str>, Bytes)]) -> Result<()> {
        let records = last_wins(records, |(address, _)| address.clone());
        if records.is_empty() {
            return Ok(());
        }
        let addresses: Vec<&str> = records.iter().map(|(address, _)| &**address).collect();
        let bytes: Vec<&[u8]> = records.iter().map(|(_, record)| &record[..]).collect();
        self.write(sql, &[&addresses, &bytes]).await?;
        Ok(())
    }
}

/// A prekey id as whatsapp-rust has it: stored as a BIGINT, it is a u32.
fn prekey_id(id: i64) -> Result<u32> {
    u32::try_from(id).map_err(|_| StoreError::Validation(format!("prekey id {id} out of range")))
}

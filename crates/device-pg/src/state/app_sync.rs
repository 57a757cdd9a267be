//! App state: sync keys, collection versions and mutation MACs.

use std::collections::HashMap;

use async_trait::async_trait;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::{DeviceState, Result, fenced, last_wins, serialization};

#[async_trait]
impl AppSyncStore for DeviceState {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        // As whatsapp-rust's SQLite store: a key that is not an app-state key (32 bytes) is
        // no key.
        let row = self
            .read_one(
                "SELECT key_data, fingerprint, timestamp FROM wa_app_state_keys
                 WHERE device = $1 AND key_id = $2 AND octet_length(key_data) = 32",
                &[&key_id],
            )
            .await?;
        Ok(row.map(|row| AppStateSyncKey { key_data: row.get(0), fingerprint: row.get(1), timestamp: row.get(2) }))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.write(
            fenced!(
                "INSERT INTO wa_app_state_keys (device, key_id, key_data, fingerprint, timestamp)
                 SELECT lease.id, $3, $4, $5, $6 FROM lease
                 ON CONFLICT (device, key_id) DO UPDATE SET key_data = excluded.key_data,
                     fingerprint = excluded.fingerprint, timestamp = excluded.timestamp"
            ),
            &[&key_id, &key.key_data, &key.fingerprint, &key.timestamp],
        )
        .await?;
        Ok(())
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let row =
            self.read_one("SELECT state FROM wa_app_state_versions WHERE device = $1 AND name = $2", &[&name]).await?;
        let Some(row) = row else { return Ok(HashState::default()) };
        // As whatsapp-rust's SQLite store: a state that cannot be read starts the collection
        // over (it syncs again from version 0) rather than stopping the device.
        Ok(serde_json::from_slice(row.get(0)).unwrap_or_else(|e| {
            tracing::warn!(device = self.id, collection = name, "unreadable app-state version ({e}); syncing it again");
            HashState::default()
        }))
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let state = serde_json::to_vec(&state).map_err(serialization)?;
        self.write(
            fenced!(
                "INSERT INTO wa_app_state_versions (device, name, state) SELECT lease.id, $3, $4 FROM lease
                 ON CONFLICT (device, name) DO UPDATE SET state = excluded.state"
            ),
            &[&name, &state],
        )
        .await?;
        Ok(())
    }

    async fn put_mutation_macs(&self, name: &str, version: u64, mutations: &[AppStateMutationMAC]) -> Result<()> {
        let mutations = last_wins(mutations, |mutation| mutation.index_mac.clone());
        if mutations.is_empty() {
            return Ok(());
        }
        let index_macs: Vec<&[u8]> = mutations.iter().map(|m| &m.index_mac[..]).collect();
        let value_macs: Vec<&[u8]> = mutations.iter().map(|m| &m.value_mac[..]).collect();
        let version = i64::try_from(version).map_err(serialization)?;
        self.write(
            fenced!(
                "INSERT INTO wa_app_state_macs (device, name, index_mac, version, value_mac)
                 SELECT lease.id, $3, u.index_mac, $4, u.value_mac
                 FROM lease, unnest($5::bytea[], $6::bytea[]) AS u (index_mac, value_mac)
                 ON CONFLICT (device, name, index_mac)
                 DO UPDATE SET version = excluded.version, value_mac = excluded.value_mac"
            ),
            &[&name, &version, &index_macs, &value_macs],
        )
        .await?;
        Ok(())
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        let row = self
            .read_one(
                "SELECT value_mac FROM wa_app_state_macs WHERE device = $1 AND name = $2 AND index_mac = $3",
                &[&name, &index_mac],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn get_mutation_macs(&self, name: &str, index_macs: &[[u8; 32]]) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<&[u8]> = index_macs.iter().map(|mac| &mac[..]).collect();
        let rows = self
            .read(
                "SELECT index_mac, value_mac FROM wa_app_state_macs
                 WHERE device = $1 AND name = $2 AND index_mac = ANY ($3)",
                &[&name, &wanted],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| Some((<[u8; 32]>::try_from(row.get::<_, &[u8]>(0)).ok()?, row.get(1))))
            .collect())
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        let index_macs: Vec<&[u8]> = index_macs.iter().map(|mac| &mac[..]).collect();
        self.write(
            fenced!(
                "DELETE FROM wa_app_state_macs t USING lease
                 WHERE t.device = lease.id AND t.name = $3 AND t.index_mac = ANY ($4)"
            ),
            &[&name, &index_macs],
        )
        .await?;
        Ok(())
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_app_state_macs t USING lease WHERE t.device = lease.id AND t.name = $3"),
            &[&name],
        )
        .await?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        // The greatest usable key id (WhatsApp's key ids grow), as bytes compare.
        let row = self
            .read_one(
                "SELECT key_id FROM wa_app_state_keys WHERE device = $1 AND octet_length(key_data) = 32
                 ORDER BY key_id DESC LIMIT 1",
                &[],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }
}

//! WhatsApp Web's protocol state: sender-key distribution, LID↔PN mappings, base keys,
//! device lists, group metadata, trusted-contact tokens, sent messages for retries and the
//! inbound messages awaiting their durability commit.

use std::collections::HashMap;

use async_trait::async_trait;
use wacore::store::error::StoreError;
use wacore::store::traits::{
    DeviceInfo, DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore, TcTokenEntry,
};

use super::{DeviceState, Result, count, fenced, last_wins, now, serialization};

#[async_trait]
impl ProtocolStore for DeviceState {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let rows = self
            .read(
                "SELECT device_jid, has_key FROM wa_sender_key_devices WHERE device = $1 AND group_jid = $2",
                &[&group_jid],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let entries = last_wins(entries, |(device_jid, _)| *device_jid);
        if entries.is_empty() {
            return Ok(());
        }
        let device_jids: Vec<&str> = entries.iter().map(|(device_jid, _)| *device_jid).collect();
        let has_keys: Vec<bool> = entries.iter().map(|(_, has_key)| *has_key).collect();
        self.write(
            fenced!(
                "INSERT INTO wa_sender_key_devices (device, group_jid, device_jid, has_key, updated_at)
                 SELECT lease.id, $3, u.device_jid, u.has_key, $4
                 FROM lease, unnest($5::text[], $6::boolean[]) AS u (device_jid, has_key)
                 ON CONFLICT (device, group_jid, device_jid)
                 DO UPDATE SET has_key = excluded.has_key, updated_at = excluded.updated_at"
            ),
            &[&group_jid, &now(), &device_jids, &has_keys],
        )
        .await?;
        Ok(())
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_sender_key_devices t USING lease WHERE t.device = lease.id AND t.group_jid = $3"),
            &[&group_jid],
        )
        .await?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        self.write(
            fenced!(
                "DELETE FROM wa_sender_key_devices t USING lease WHERE t.device = lease.id AND t.device_jid = ANY ($3)"
            ),
            &[&device_jids],
        )
        .await?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.write(fenced!("DELETE FROM wa_sender_key_devices t USING lease WHERE t.device = lease.id"), &[]).await?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        let row = self
            .read_one(
                "SELECT lid, phone_number, created_at, updated_at, learning_source FROM wa_lid_pn
                 WHERE device = $1 AND lid = $2",
                &[&lid],
            )
            .await?;
        Ok(row.map(|row| lid_mapping(&row)))
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let row = self
            .read_one(
                "SELECT lid, phone_number, created_at, updated_at, learning_source FROM wa_lid_pn
                 WHERE device = $1 AND phone_number = $2 ORDER BY updated_at DESC LIMIT 1",
                &[&phone],
            )
            .await?;
        Ok(row.map(|row| lid_mapping(&row)))
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        // A mapping given twice was first learned when it was first given.
        let mut first_learned: HashMap<&str, i64> = HashMap::new();
        for entry in entries {
            first_learned.entry(entry.lid.as_str()).or_insert(entry.created_at);
        }
        let entries = last_wins(entries, |entry| entry.lid.as_str());
        if entries.is_empty() {
            return Ok(());
        }
        let lids: Vec<&str> = entries.iter().map(|e| e.lid.as_str()).collect();
        let phones: Vec<&str> = entries.iter().map(|e| e.phone_number.as_str()).collect();
        let created: Vec<i64> = entries.iter().map(|e| first_learned[e.lid.as_str()]).collect();
        let updated: Vec<i64> = entries.iter().map(|e| e.updated_at).collect();
        let sources: Vec<&str> = entries.iter().map(|e| e.learning_source.as_str()).collect();
        // A mapping learned again keeps when it was first learned.
        self.write(
            fenced!(
                "INSERT INTO wa_lid_pn (device, lid, phone_number, created_at, updated_at, learning_source)
                 SELECT lease.id, u.* FROM lease,
                        unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[])
                        AS u (lid, phone_number, created_at, updated_at, learning_source)
                 ON CONFLICT (device, lid) DO UPDATE SET phone_number = excluded.phone_number,
                     updated_at = excluded.updated_at, learning_source = excluded.learning_source"
            ),
            &[&lids, &phones, &created, &updated, &sources],
        )
        .await?;
        Ok(())
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let rows = self
            .read(
                "SELECT lid, phone_number, created_at, updated_at, learning_source FROM wa_lid_pn WHERE device = $1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(lid_mapping).collect())
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.write(
            fenced!(
                "INSERT INTO wa_base_keys (device, address, message_id, base_key, created_at)
                 SELECT lease.id, $3, $4, $5, $6 FROM lease
                 ON CONFLICT (device, address, message_id) DO UPDATE SET base_key = excluded.base_key"
            ),
            &[&address, &message_id, &base_key, &now()],
        )
        .await?;
        Ok(())
    }

    async fn has_same_base_key(&self, address: &str, message_id: &str, current_base_key: &[u8]) -> Result<bool> {
        let row = self
            .read_one(
                "SELECT 1 FROM wa_base_keys WHERE device = $1 AND address = $2 AND message_id = $3 AND base_key = $4",
                &[&address, &message_id, &current_base_key],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.write(
            fenced!(
                "DELETE FROM wa_base_keys t USING lease
                 WHERE t.device = lease.id AND t.address = $3 AND t.message_id = $4"
            ),
            &[&address, &message_id],
        )
        .await?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let records = last_wins(records, |record| record.user.clone());
        if records.is_empty() {
            return Ok(());
        }
        let users: Vec<&str> = records.iter().map(|r| r.user.as_str()).collect();
        let devices = records
            .iter()
            .map(|r| serde_json::to_string(&r.devices))
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(serialization)?;
        let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
        let phashes: Vec<Option<&str>> = records.iter().map(|r| r.phash.as_deref()).collect();
        let raw_ids: Vec<Option<i64>> = records.iter().map(|r| r.raw_id.map(i64::from)).collect();
        self.write(
            fenced!(
                "INSERT INTO wa_device_lists (device, user_id, devices, timestamp, phash, raw_id, updated_at)
                 SELECT lease.id, u.user_id, u.devices, u.timestamp, u.phash, u.raw_id, $8
                 FROM lease, unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[])
                      AS u (user_id, devices, timestamp, phash, raw_id)
                 ON CONFLICT (device, user_id) DO UPDATE SET devices = excluded.devices,
                     timestamp = excluded.timestamp, phash = excluded.phash, raw_id = excluded.raw_id,
                     updated_at = excluded.updated_at"
            ),
            &[&users, &devices, &timestamps, &phashes, &raw_ids, &now()],
        )
        .await?;
        Ok(())
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let row = self
            .read_one(
                "SELECT user_id, devices, timestamp, phash, raw_id FROM wa_device_lists
                 WHERE device = $1 AND user_id = $2",
                &[&user],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let devices: Vec<DeviceInfo> = serde_json::from_str(row.get(1)).map_err(serialization)?;
        let raw_id = row
            .get::<_, Option<i64>>(4)
            .map(|raw_id| u32::try_from(raw_id).map_err(|_| StoreError::Validation(format!("raw id {raw_id}"))))
            .transpose()?;
        Ok(Some(DeviceListRecord { user: row.get(0), devices, timestamp: row.get(2), phash: row.get(3), raw_id }))
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_device_lists t USING lease WHERE t.device = lease.id AND t.user_id = $3"),
            &[&user],
        )
        .await?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .read_one("SELECT info FROM wa_group_metadata WHERE device = $1 AND group_jid = $2", &[&group_jid])
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.write(
            fenced!(
                "INSERT INTO wa_group_metadata (device, group_jid, info, updated_at) SELECT lease.id, $3, $4, $5 FROM lease
                 ON CONFLICT (device, group_jid) DO UPDATE SET info = excluded.info, updated_at = excluded.updated_at"
            ),
            &[&group_jid, &blob, &now()],
        )
        .await?;
        Ok(())
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.write(
            fenced!("DELETE FROM wa_group_metadata t USING lease WHERE t.device = lease.id AND t.group_jid = $3"),
            &[&group_jid],
        )
        .await?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let row = self
            .read_one(
                "SELECT token, token_timestamp, sender_timestamp FROM wa_tc_tokens WHERE device = $1 AND jid = $2",
                &[&jid],
            )
            .await?;
        Ok(row.map(|row| TcTokenEntry { token: row.get(0), token_timestamp: row.get(1), sender_timestamp: row.get(2) }))
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.write(
            fenced!(
                "INSERT INTO wa_tc_tokens (device, jid, token, token_timestamp, sender_timestamp, updated_at)
                 SELECT lease.id, $3, $4, $5, $6, $7 FROM lease
                 ON CONFLICT (device, jid) DO UPDATE SET token = excluded.token,
                     token_timestamp = excluded.token_timestamp, sender_timestamp = excluded.sender_timestamp,
                     updated_at = excluded.updated_at"
            ),
            &[&jid, &entry.token, &entry.token_timestamp, &entry.sender_timestamp, &now()],
        )
        .await?;
        Ok(())
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.write(fenced!("DELETE FROM wa_tc_tokens t USING lease WHERE t.device = lease.id AND t.jid = $3"), &[&jid])
            .await?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        let rows = self.read("SELECT jid FROM wa_tc_tokens WHERE device = $1", &[]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        // Only a row whose received token and sender bucket are both expired or absent.
        let deleted = self
            .write(
                fenced!(
                    "DELETE FROM wa_tc_tokens t USING lease WHERE t.device = lease.id
                     AND (t.token = '' OR t.token_timestamp < $3)
                     AND (t.sender_timestamp IS NULL OR t.sender_timestamp < $4)"
                ),
                &[&token_cutoff, &sender_cutoff],
            )
            .await?;
        Ok(count(deleted))
    }

    async fn touch_tc_token_sender_timestamp(&self, jid: &str, sender_timestamp: i64) -> Result<()> {
        // A placeholder without token bytes when absent; otherwise the sender bucket only
        // moves forward and the token is left alone.
        self.write(
            fenced!(
                "INSERT INTO wa_tc_tokens (device, jid, token, token_timestamp, sender_timestamp, updated_at)
                 SELECT lease.id, $3, '', $4, $4, $5 FROM lease
                 ON CONFLICT (device, jid) DO UPDATE SET
                     sender_timestamp = greatest(coalesce(wa_tc_tokens.sender_timestamp, excluded.sender_timestamp),
                                                 excluded.sender_timestamp),
                     updated_at = excluded.updated_at"
            ),
            &[&jid, &sender_timestamp, &now()],
        )
        .await?;
        Ok(())
    }

    async fn store_received_tc_token(&self, jid: &str, token: &[u8], token_timestamp: i64) -> Result<()> {
        // Newer wins, and a placeholder never blocks the first real token; the sender
        // bucket is kept.
        self.write(
            fenced!(
                "INSERT INTO wa_tc_tokens (device, jid, token, token_timestamp, sender_timestamp, updated_at)
                 SELECT lease.id, $3, $4, $5, NULL, $6 FROM lease
                 ON CONFLICT (device, jid) DO UPDATE SET token = excluded.token,
                     token_timestamp = excluded.token_timestamp, updated_at = excluded.updated_at
                 WHERE wa_tc_tokens.token = '' OR excluded.token_timestamp >= wa_tc_tokens.token_timestamp"
            ),
            &[&jid, &token, &token_timestamp, &now()],
        )
        .await?;
        Ok(())
    }

    async fn store_sent_message(&self, chat_jid: &str, message_id: &str, payload: &[u8]) -> Result<()> {
        self.write(
            fenced!(
                "INSERT INTO wa_sent_messages (device, chat, message_id, payload, created_at)
                 SELECT lease.id, $3, $4, $5, $6 FROM lease
                 ON CONFLICT (device, chat, message_id)
                 DO UPDATE SET payload = excluded.payload, created_at = excluded.created_at"
            ),
            &[&chat_jid, &message_id, &payload, &now()],
        )
        .await?;
        Ok(())
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let rows = self
            .write_returning(
                fenced!(
                    "DELETE FROM wa_sent_messages t USING lease
                     WHERE t.device = lease.id AND t.chat = $3 AND t.message_id = $4 RETURNING t.payload"
                ),
                &[&chat_jid, &message_id],
            )
            .await?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let deleted = self
            .write(
                fenced!("DELETE FROM wa_sent_messages t USING lease WHERE t.device = lease.id AND t.created_at < $3"),
                &[&cutoff_timestamp],
            )
            .await?;
        Ok(count(deleted))
    }

    async fn store_pending_inbound(&self, chat: &str, sender: &str, id: &str, message: &[u8]) -> Result<()> {
        self.store_pending_inbound_batch(&[PendingInboundRow { chat, sender, id, message }]).await
    }

    async fn get_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .read_one(
                "SELECT message FROM wa_pending_inbound WHERE device = $1 AND chat = $2 AND sender = $3 AND id = $4",
                &[&chat, &sender, &id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete_pending_inbound_batch(&[PendingInboundKey { chat, sender, id }]).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let deleted = self
            .write(
                fenced!(
                    "DELETE FROM wa_pending_inbound t USING lease WHERE t.device = lease.id AND t.inserted_at < $3"
                ),
                &[&cutoff_timestamp],
            )
            .await?;
        Ok(count(deleted))
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let rows = last_wins(rows, |row| (row.chat, row.sender, row.id));
        if rows.is_empty() {
            return Ok(());
        }
        let chats: Vec<&str> = rows.iter().map(|row| row.chat).collect();
        let senders: Vec<&str> = rows.iter().map(|row| row.sender).collect();
        let ids: Vec<&str> = rows.iter().map(|row| row.id).collect();
        let messages: Vec<&[u8]> = rows.iter().map(|row| row.message).collect();
        self.write(
            fenced!(
                "INSERT INTO wa_pending_inbound (device, chat, sender, id, message, inserted_at)
                 SELECT lease.id, u.chat, u.sender, u.id, u.message, $7
                 FROM lease, unnest($3::text[], $4::text[], $5::text[], $6::bytea[]) AS u (chat, sender, id, message)
                 ON CONFLICT (device, chat, sender, id)
                 DO UPDATE SET message = excluded.message, inserted_at = excluded.inserted_at"
            ),
            &[&chats, &senders, &ids, &messages, &now()],
        )
        .await?;
        Ok(())
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let chats: Vec<&str> = keys.iter().map(|key| key.chat).collect();
        let senders: Vec<&str> = keys.iter().map(|key| key.sender).collect();
        let ids: Vec<&str> = keys.iter().map(|key| key.id).collect();
        self.write(
            fenced!(
                "DELETE FROM wa_pending_inbound t USING lease, unnest($3::text[], $4::text[], $5::text[]) AS u (chat, sender, id)
                 WHERE t.device = lease.id AND t.chat = u.chat AND t.sender = u.sender AND t.id = u.id"
            ),
            &[&chats, &senders, &ids],
        )
        .await?;
        Ok(())
    }
}

fn lid_mapping(row: &tokio_postgres::Row) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: row.get(0),
        phone_number: row.get(1),
        created_at: row.get(2),
        updated_at: row.get(3),
        learning_source: row.get(4),
    }
}

//! The secrets of sent messages, for decrypting replies to them (poll votes, reactions,
//! edits).

use async_trait::async_trait;
use wacore::store::traits::{MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts};

use super::{DeviceState, Result, count, fenced, now};

#[async_trait]
impl MsgSecretStore for DeviceState {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        let entries = merged(entries);
        if entries.is_empty() {
            return Ok(0);
        }
        let chats: Vec<&str> = entries.iter().map(|e| &*e.chat).collect();
        let senders: Vec<&str> = entries.iter().map(|e| &*e.sender).collect();
        let ids: Vec<&str> = entries.iter().map(|e| &*e.msg_id).collect();
        let secrets: Vec<&[u8]> = entries.iter().map(|e| &e.secret[..]).collect();
        let expiries: Vec<i64> = entries.iter().map(|e| e.expires_at).collect();
        let times: Vec<i64> = entries.iter().map(|e| e.message_ts).collect();
        // On a conflict the new secret wins; the deadline and the parent's time merge as
        // `merge_msg_secret_expiry` and `merge_msg_secret_message_ts` do.
        self.write(
            fenced!(
                "INSERT INTO wa_msg_secrets (device, chat, sender, msg_id, secret, created_at, expires_at, message_ts)
                 SELECT lease.id, u.chat, u.sender, u.msg_id, u.secret, $9, u.expires_at, u.message_ts
                 FROM lease, unnest($3::text[], $4::text[], $5::text[], $6::bytea[], $7::bigint[], $8::bigint[])
                      AS u (chat, sender, msg_id, secret, expires_at, message_ts)
                 ON CONFLICT (device, chat, sender, msg_id) DO UPDATE SET secret = excluded.secret,
                     created_at = excluded.created_at,
                     expires_at = CASE WHEN wa_msg_secrets.expires_at = 0 OR excluded.expires_at = 0 THEN 0
                                       ELSE greatest(wa_msg_secrets.expires_at, excluded.expires_at) END,
                     message_ts = greatest(wa_msg_secrets.message_ts, excluded.message_ts)"
            ),
            &[&chats, &senders, &ids, &secrets, &expiries, &times, &now()],
        )
        .await?;
        Ok(stored)
    }

    async fn get_msg_secret(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_msg_secret_with_ts(chat, sender, msg_id).await?.map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let row = self
            .read_one(
                "SELECT secret, message_ts FROM wa_msg_secrets
                 WHERE device = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
                &[&chat, &sender, &msg_id],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let deleted = self
            .write(
                fenced!(
                    "DELETE FROM wa_msg_secrets t USING lease
                     WHERE t.device = lease.id AND t.expires_at <> 0 AND t.expires_at <= $3"
                ),
                &[&cutoff_timestamp],
            )
            .await?;
        Ok(count(deleted))
    }
}

/// One entry per key, merged in order as the store merges a conflict: what writing them
/// one after the other would leave.
fn merged(entries: Vec<MsgSecretEntry>) -> Vec<MsgSecretEntry> {
    let mut merged: Vec<MsgSecretEntry> = Vec::with_capacity(entries.len());
    let mut index = std::collections::HashMap::new();
    for entry in entries {
        let key = (entry.chat.clone(), entry.sender.clone(), entry.msg_id.clone());
        match index.get(&key) {
            Some(&at) => {
                let earlier: &mut MsgSecretEntry = &mut merged[at];
                earlier.secret = entry.secret;
                earlier.expires_at = merge_msg_secret_expiry(earlier.expires_at, entry.expires_at);
                earlier.message_ts = merge_msg_secret_message_ts(earlier.message_ts, entry.message_ts);
            }
            None => {
                index.insert(key, merged.len());
                merged.push(entry);
            }
        }
    }
    merged
}

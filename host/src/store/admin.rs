//! Tokens of the admin API. Like API tokens, only their SHA-256 is stored.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, now};
use crate::token::TokenHash;

/// An admin token as listed: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminTokenRecord {
    /// The token's id (not the token).
    pub id: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

impl Store {
    /// Creates an admin token: returns its record and the token, shown this once.
    pub fn create_admin_token(&self) -> Result<(AdminTokenRecord, String), StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = now();
        self.lock().execute(
            "INSERT INTO admin_tokens (id, sha256, created_at) VALUES (?1, ?2, ?3)",
            params![id, TokenHash::of(&token).as_bytes().as_slice(), created_at],
        )?;
        Ok((AdminTokenRecord { id, created_at, revoked_at: None }, token))
    }

    /// The id of the unrevoked admin token whose hash is `hash` (compared in constant time).
    pub fn admin_token_id(&self, hash: &TokenHash) -> Result<Option<String>, StoreError> {
        let stored: Option<(String, [u8; 32])> = self
            .lock()
            .query_row(
                "SELECT id, sha256 FROM admin_tokens WHERE sha256 = ?1 AND revoked_at IS NULL",
                [hash.as_bytes().as_slice()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(stored.filter(|(_, stored)| TokenHash::from_bytes(*stored).ct_eq(hash)).map(|(id, _)| id))
    }

    /// Every admin token, revoked ones included.
    pub fn admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        let conn = self.lock();
        let mut statement =
            conn.prepare("SELECT id, created_at, revoked_at FROM admin_tokens ORDER BY created_at, id")?;
        let tokens = statement.query_map([], |row| {
            Ok(AdminTokenRecord { id: row.get(0)?, created_at: row.get(1)?, revoked_at: row.get(2)? })
        })?;
        Ok(tokens.collect::<Result<_, _>>()?)
    }

    /// Revokes the admin token `id`.
    pub fn revoke_admin_token(&self, id: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        match conn.execute(
            "UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![id, now()],
        )? {
            0 => Err(StoreError::NotFound(format!("there is no admin token `{id}`"))),
            _ => Ok(()),
        }
    }
}

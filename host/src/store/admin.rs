//! Tokens of the admin API. Like API tokens, only their SHA-256 is stored.

use std::time::Duration;

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
    /// When it stops being accepted, if ever (RFC 3339).
    pub expires_at: Option<String>,
}

/// What an admin token presented to the admin API is.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminTokenCheck {
    /// A live token, with its id.
    Live(String),
    /// A token that expired at this time (RFC 3339).
    Expired(String),
    /// No unrevoked token has this hash.
    Unknown,
}

impl AdminTokenRecord {
    /// Whether the token is still accepted: not revoked, not expired.
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none() && self.expires_at.as_ref().is_none_or(|at| *at > now())
    }
}

impl Store {
    /// Creates an admin token, valid for `lifetime` if given (else until revoked): returns its
    /// record and the token, shown this once.
    pub fn create_admin_token(&self, lifetime: Option<Duration>) -> Result<(AdminTokenRecord, String), StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = now();
        let expires_at = match lifetime {
            Some(lifetime) => {
                let lifetime = chrono::Duration::from_std(lifetime)
                    .map_err(|_| StoreError::Invalid(format!("a token lifetime of {lifetime:?} is too long")))?;
                Some((chrono::Utc::now() + lifetime).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            None => None,
        };
        self.lock().execute(
            "INSERT INTO admin_tokens (id, sha256, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, TokenHash::of(&token).as_bytes().as_slice(), created_at, expires_at],
        )?;
        Ok((AdminTokenRecord { id, created_at, revoked_at: None, expires_at }, token))
    }

    /// What the admin token whose hash is `hash` is (compared in constant time): live (with
    /// its id), expired, or unknown (revoked ones included).
    pub fn check_admin_token(&self, hash: &TokenHash) -> Result<AdminTokenCheck, StoreError> {
        let stored: Option<(String, [u8; 32], Option<String>)> = self
            .lock()
            .query_row(
                "SELECT id, sha256, expires_at FROM admin_tokens WHERE sha256 = ?1 AND revoked_at IS NULL",
                [hash.as_bytes().as_slice()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        Ok(match stored {
            Some((id, stored, expires_at)) if TokenHash::from_bytes(stored).ct_eq(hash) => match expires_at {
                Some(at) if at <= now() => AdminTokenCheck::Expired(at),
                _ => AdminTokenCheck::Live(id),
            },
            _ => AdminTokenCheck::Unknown,
        })
    }

    /// Every admin token, revoked ones included.
    pub fn admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        let conn = self.lock();
        let mut statement =
            conn.prepare("SELECT id, created_at, revoked_at, expires_at FROM admin_tokens ORDER BY created_at, id")?;
        let tokens = statement.query_map([], |row| {
            Ok(AdminTokenRecord {
                id: row.get(0)?,
                created_at: row.get(1)?,
                revoked_at: row.get(2)?,
                expires_at: row.get(3)?,
            })
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

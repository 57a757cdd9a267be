//! Tokens of the admin API. Like API tokens, only their SHA-256 is stored.
//!
//! A token may be limited in time (it expires) and in scope: to one tenant (everything under
//! `/v1/tenants/{tenant}`, nothing of the others or of the whole gateway) and to reading.

use std::time::Duration;

use serde::Serialize;

use super::{Store, StoreError, now};
use crate::db::params;
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
    /// What it may do.
    #[serde(flatten)]
    pub scope: AdminScope,
}

/// What an admin token may do: everything, or only what concerns one tenant; and anything, or
/// only read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdminScope {
    /// The one tenant it may see and change; `None`: every tenant, and the gateway.
    pub tenant: Option<String>,
    /// Whether it may only read (`GET`).
    pub read_only: bool,
}

impl std::fmt::Display for AdminScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tenant {
            Some(tenant) => write!(f, "tenant {tenant}")?,
            None => f.write_str("all")?,
        }
        if self.read_only { f.write_str(", read-only") } else { Ok(()) }
    }
}

/// What an admin token presented to the admin API is.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminTokenCheck {
    /// A live token, with its id and scope.
    Live(String, AdminScope),
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
    /// Creates an admin token with `scope`, valid for `lifetime` if given (else until
    /// revoked): returns its record and the token, shown this once. A token of a tenant goes
    /// with the tenant when it is deleted.
    pub fn create_admin_token(
        &self,
        lifetime: Option<Duration>,
        scope: AdminScope,
    ) -> Result<(AdminTokenRecord, String), StoreError> {
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
        self.transaction(|tx| {
            if let Some(tenant) = &scope.tenant {
                super::tenants::require(tx, tenant)?;
            }
            tx.execute(
                "INSERT INTO admin_tokens (id, sha256, created_at, expires_at, tenant, read_only)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    TokenHash::of(&token).as_bytes().as_slice(),
                    created_at,
                    expires_at,
                    scope.tenant,
                    scope.read_only
                ],
            )?;
            Ok(())
        })?;
        Ok((AdminTokenRecord { id, created_at, revoked_at: None, expires_at, scope }, token))
    }

    /// What the admin token whose hash is `hash` is (compared in constant time): live (with
    /// its id and scope), expired, or unknown (revoked ones included).
    pub fn check_admin_token(&self, hash: &TokenHash) -> Result<AdminTokenCheck, StoreError> {
        type Row = (String, TokenHash, Option<String>, Option<String>, bool);
        let stored: Option<Row> = self.read(|conn| {
            conn.query_opt(
                "SELECT id, sha256, expires_at, tenant, read_only FROM admin_tokens
                 WHERE sha256 = ?1 AND revoked_at IS NULL",
                params![hash.as_bytes().as_slice()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
        })?;
        Ok(match stored {
            Some((id, stored, expires_at, tenant, read_only)) if stored.ct_eq(hash) => match expires_at {
                Some(at) if at <= now() => AdminTokenCheck::Expired(at),
                _ => AdminTokenCheck::Live(id, AdminScope { tenant, read_only }),
            },
            _ => AdminTokenCheck::Unknown,
        })
    }

    /// Every admin token, revoked ones included.
    pub fn admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        self.read(|conn| {
            conn.query(
                "SELECT id, created_at, revoked_at, expires_at, tenant, read_only FROM admin_tokens
                 ORDER BY created_at, id",
                &[],
                |row| {
                    Ok(AdminTokenRecord {
                        id: row.get(0)?,
                        created_at: row.get(1)?,
                        revoked_at: row.get(2)?,
                        expires_at: row.get(3)?,
                        scope: AdminScope { tenant: row.get(4)?, read_only: row.get(5)? },
                    })
                },
            )
        })
    }

    /// Revokes the admin token `id`.
    pub fn revoke_admin_token(&self, id: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            match tx.execute(
                "UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now()],
            )? {
                0 => Err(StoreError::NotFound(format!("there is no admin token `{id}`"))),
                _ => Ok(()),
            }
        })
    }
}

//! API users of a tenant and their tokens.
//!
//! A token is a random UUID v4 handed out once, at creation; the store keeps its SHA-256
//! only. Revoking keeps the row (with `revoked_at`) so the history stays auditable.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, conflict_on_unique, from_json, now, tenants, to_json};
use crate::token::TokenHash;

/// An API user as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    /// UUID v4.
    pub id: String,
    /// The tenant the user belongs to.
    pub tenant: String,
    /// Display name.
    pub name: String,
    /// Devices of the tenant this user may use; the first is the user's own device.
    pub devices: Vec<String>,
    /// Permissions passed to components.
    pub scopes: Vec<String>,
    /// When the user was created (RFC 3339).
    pub created_at: String,
}

/// A user to create, or the full new state of one (`PUT`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The id; a fresh UUID v4 when not given. Must be a UUID.
    #[serde(default)]
    pub id: Option<String>,
    /// See [`UserRecord::name`].
    #[serde(default)]
    pub name: String,
    /// See [`UserRecord::devices`].
    #[serde(default)]
    pub devices: Vec<String>,
    /// See [`UserRecord::scopes`].
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A token as the admin API lists it: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    /// The token's id (not the token).
    pub id: String,
    /// The user the token authenticates.
    pub user: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

impl Store {
    /// Creates a user of `tenant`; its devices must be devices of the tenant.
    pub fn create_user(&self, tenant: &str, new: NewUser) -> Result<UserRecord, StoreError> {
        let id = match new.id {
            Some(id) => parse_uuid(&id)?,
            None => uuid::Uuid::new_v4().to_string(),
        };
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            check_devices(tx, tenant, &new.devices)?;
            tx.execute(
                "INSERT INTO users (id, tenant_id, name, devices, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, tenant, new.name, to_json(&new.devices), to_json(&new.scopes), now()],
            )
            .map_err(|e| {
                conflict_on_unique(e, || {
                    format!("the user id `{id}` cannot be used; leave `id` out to get a fresh one")
                })
            })?;
            get(tx, tenant, &id)
        })
    }

    /// The user `id` of `tenant`.
    pub fn user(&self, tenant: &str, id: &str) -> Result<UserRecord, StoreError> {
        get(&self.lock(), tenant, id)
    }

    /// Every user of `tenant`.
    pub fn users(&self, tenant: &str) -> Result<Vec<UserRecord>, StoreError> {
        let conn = self.lock();
        tenants::require(&conn, tenant)?;
        list(&conn, tenant)
    }

    /// Replaces the name, devices and scopes of the user `id` of `tenant`.
    pub fn update_user(&self, tenant: &str, id: &str, new: NewUser) -> Result<UserRecord, StoreError> {
        self.transaction(|tx| {
            get(tx, tenant, id)?;
            check_devices(tx, tenant, &new.devices)?;
            tx.execute(
                "UPDATE users SET name = ?2, devices = ?3, scopes = ?4 WHERE id = ?1",
                params![id, new.name, to_json(&new.devices), to_json(&new.scopes)],
            )?;
            get(tx, tenant, id)
        })
    }

    /// Deletes the user `id` of `tenant` and its tokens.
    pub fn delete_user(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        match self.lock().execute("DELETE FROM users WHERE id = ?1 AND tenant_id = ?2", [id, tenant])? {
            0 => Err(user_not_found(tenant, id)),
            _ => Ok(()),
        }
    }

    /// Gives the user `id` of `tenant` a new API token: returns its record and the token,
    /// which is not stored and cannot be shown again.
    pub fn create_token(&self, tenant: &str, user: &str) -> Result<(TokenRecord, String), StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let record = self.add_token(tenant, user, &TokenHash::of(&token))?;
        Ok((record, token))
    }

    /// Records a token by its hash only (the configuration file's `token_sha256`).
    pub fn add_token(&self, tenant: &str, user: &str, hash: &TokenHash) -> Result<TokenRecord, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.transaction(|tx| {
            get(tx, tenant, user)?;
            tx.execute(
                "INSERT INTO tokens (id, user_id, sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, user, hash.as_bytes().as_slice(), now()],
            )
            .map_err(|e| conflict_on_unique(e, || "this token is already in use".to_string()))?;
            token(tx, user, &id)
        })
    }

    /// Every token of the user `id` of `tenant`, revoked ones included.
    pub fn tokens(&self, tenant: &str, user: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.lock();
        get(&conn, tenant, user)?;
        let mut statement = conn.prepare(
            "SELECT id, user_id, created_at, revoked_at FROM tokens WHERE user_id = ?1 ORDER BY created_at, id",
        )?;
        Ok(statement.query_map([user], read_token)?.collect::<Result<_, _>>()?)
    }

    /// Revokes a token; it stops working as soon as the gateway reloads. Revoking twice is
    /// not an error.
    pub fn revoke_token(&self, tenant: &str, user: &str, id: &str) -> Result<TokenRecord, StoreError> {
        self.transaction(|tx| {
            get(tx, tenant, user)?;
            token(tx, user, id)?;
            tx.execute(
                "UPDATE tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
                params![id, user, now()],
            )?;
            token(tx, user, id)
        })
    }
}

pub(super) fn list(conn: &Connection, tenant: &str) -> Result<Vec<UserRecord>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, tenant_id, name, devices, scopes, created_at FROM users WHERE tenant_id = ?1 ORDER BY created_at, id",
    )?;
    Ok(statement.query_map([tenant], read)?.collect::<Result<_, _>>()?)
}

pub(super) fn active_token_hashes(conn: &Connection, user: &str) -> Result<Vec<TokenHash>, StoreError> {
    let mut statement = conn.prepare_cached("SELECT sha256 FROM tokens WHERE user_id = ?1 AND revoked_at IS NULL")?;
    let hashes = statement.query_map([user], |row| row.get::<_, [u8; 32]>(0))?;
    Ok(hashes.map(|hash| hash.map(TokenHash::from_bytes)).collect::<Result<_, _>>()?)
}

fn get(conn: &Connection, tenant: &str, id: &str) -> Result<UserRecord, StoreError> {
    tenants::require(conn, tenant)?;
    conn.query_row(
        "SELECT id, tenant_id, name, devices, scopes, created_at FROM users WHERE id = ?1 AND tenant_id = ?2",
        [id, tenant],
        read,
    )
    .optional()?
    .ok_or_else(|| user_not_found(tenant, id))
}

fn token(conn: &Connection, user: &str, id: &str) -> Result<TokenRecord, StoreError> {
    conn.query_row(
        "SELECT id, user_id, created_at, revoked_at FROM tokens WHERE id = ?1 AND user_id = ?2",
        [id, user],
        read_token,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("user `{user}` has no token `{id}`")))
}

fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        name: row.get(2)?,
        devices: from_json(&row.get::<_, String>(3)?)?,
        scopes: from_json(&row.get::<_, String>(4)?)?,
        created_at: row.get(5)?,
    })
}

fn read_token(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord { id: row.get(0)?, user: row.get(1)?, created_at: row.get(2)?, revoked_at: row.get(3)? })
}

fn user_not_found(tenant: &str, id: &str) -> StoreError {
    StoreError::NotFound(format!("tenant `{tenant}` has no user `{id}`"))
}

fn parse_uuid(id: &str) -> Result<String, StoreError> {
    uuid::Uuid::parse_str(id)
        .map(|uuid| uuid.to_string())
        .map_err(|_| StoreError::Invalid(format!("user id `{id}`: must be a UUID, or leave it out to get a fresh one")))
}

fn check_devices(conn: &Connection, tenant: &str, devices: &[String]) -> Result<(), StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM devices WHERE tenant_id = ?1 AND id = ?2)")?;
    for device in devices {
        if !statement.query_row([tenant, device], |row| row.get::<_, bool>(0))? {
            return Err(StoreError::Invalid(format!(
                "device `{device}` is not a device of tenant `{tenant}`: create it first"
            )));
        }
    }
    Ok(())
}

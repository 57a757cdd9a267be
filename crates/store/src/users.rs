//! API users of a tenant and their tokens.
//!
//! A token is a random UUID v4 handed out once, at creation; the store keeps its SHA-256
//! only. Revoking keeps the row (with `revoked_at`) so the history stays auditable.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, conflict_on_unique, from_json, now, tenants, to_json};
use crate::db::{Conn, Row, params};
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
    /// The id; a fresh UUID v4 when left out (`null` is refused). Must be a UUID.
    #[serde(default, deserialize_with = "crate::present")]
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
        self.read(|conn| get(conn, tenant, id))
    }

    /// Every user of `tenant`.
    pub fn users(&self, tenant: &str) -> Result<Vec<UserRecord>, StoreError> {
        self.read(|conn| {
            tenants::require(conn, tenant)?;
            list(conn, tenant)
        })
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
        self.transaction(|tx| {
            match tx.execute("DELETE FROM users WHERE id = ?1 AND tenant_id = ?2", params![id, tenant])? {
                0 => Err(user_not_found(tenant, id)),
                _ => Ok(()),
            }
        })
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
        self.read(|conn| {
            get(conn, tenant, user)?;
            conn.query(
                "SELECT id, user_id, created_at, revoked_at FROM tokens WHERE user_id = ?1 ORDER BY created_at, id",
                params![user],
                read_token,
            )
        })
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

pub(super) fn list(conn: &Conn<'_>, tenant: &str) -> Result<Vec<UserRecord>, StoreError> {
    conn.query(
        "SELECT id, tenant_id, name, devices, scopes, created_at FROM users WHERE tenant_id = ?1 ORDER BY created_at, id",
        params![tenant],
        read,
    )
}

pub(super) fn active_token_hashes(conn: &Conn<'_>, user: &str) -> Result<Vec<TokenHash>, StoreError> {
    conn.query("SELECT sha256 FROM tokens WHERE user_id = ?1 AND revoked_at IS NULL", params![user], |row| row.get(0))
}

fn get(conn: &Conn<'_>, tenant: &str, id: &str) -> Result<UserRecord, StoreError> {
    tenants::require(conn, tenant)?;
    conn.query_opt(
        "SELECT id, tenant_id, name, devices, scopes, created_at FROM users WHERE id = ?1 AND tenant_id = ?2",
        params![id, tenant],
        read,
    )?
    .ok_or_else(|| user_not_found(tenant, id))
}

fn token(conn: &Conn<'_>, user: &str, id: &str) -> Result<TokenRecord, StoreError> {
    conn.query_opt(
        "SELECT id, user_id, created_at, revoked_at FROM tokens WHERE id = ?1 AND user_id = ?2",
        params![id, user],
        read_token,
    )?
    .ok_or_else(|| StoreError::NotFound(format!("user `{user}` has no token `{id}`")))
}

fn read(row: &Row<'_>) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        name: row.get(2)?,
        devices: from_json(&row.get::<String>(3)?)?,
        scopes: from_json(&row.get::<String>(4)?)?,
        created_at: row.get(5)?,
    })
}

fn read_token(row: &Row<'_>) -> Result<TokenRecord, StoreError> {
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

fn check_devices(conn: &Conn<'_>, tenant: &str, devices: &[String]) -> Result<(), StoreError> {
    for device in devices {
        let exists = "SELECT EXISTS (SELECT 1 FROM devices WHERE tenant_id = ?1 AND id = ?2)";
        if !conn.query_value::<bool>(exists, params![tenant, device])? {
            return Err(StoreError::Conflict(format!(
                "device `{device}` is not a device of tenant `{tenant}`: create it first"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};

    fn user(name: &str, devices: &[&str]) -> NewUser {
        NewUser { name: name.into(), devices: devices.iter().map(|d| d.to_string()).collect(), ..Default::default() }
    }

    on_both! {
    fn a_user_reads_back_as_created_and_is_replaced_whole(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let created = store.create_user("acme", NewUser { scopes: vec!["read".into()], ..user("ops", &["main"]) });
        let created = created.unwrap();
        assert!(uuid::Uuid::parse_str(&created.id).is_ok(), "a fresh UUID: {}", created.id);
        assert_eq!((created.tenant.as_str(), created.name.as_str()), ("acme", "ops"));
        assert_eq!(created.devices, ["main"]);
        assert_eq!(created.scopes, ["read"]);
        assert_eq!(store.user("acme", &created.id).unwrap(), created);
        assert_eq!(store.users("acme").unwrap(), std::slice::from_ref(&created));

        let replaced = store.update_user("acme", &created.id, user("ops 2", &[])).unwrap();
        assert_eq!(replaced, UserRecord { name: "ops 2".into(), devices: vec![], scopes: vec![], ..created.clone() });

        store.delete_user("acme", &created.id).unwrap();
        assert!(matches!(store.user("acme", &created.id), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delete_user("acme", &created.id), Err(StoreError::NotFound(_))));
        assert!(matches!(store.update_user("acme", &created.id, user("x", &[])), Err(StoreError::NotFound(_))));
    }

    fn a_given_id_is_kept_and_may_be_used_once(store) {
        let store = acme(store);
        let id = "0b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a90".to_string();
        let created = store.create_user("acme", NewUser { id: Some(id.clone()), ..Default::default() }).unwrap();
        assert_eq!(created.id, id);
        let again = store.create_user("acme", NewUser { id: Some(id), ..Default::default() });
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        let not_uuid = store.create_user("acme", NewUser { id: Some("ops".into()), ..Default::default() });
        assert!(matches!(not_uuid, Err(StoreError::Invalid(_))));
    }

    fn a_user_may_only_use_devices_of_its_tenant(store) {
        let store = acme(store);
        store.create_tenant(crate::tenants::NewTenant { id: "globex".into(), ..Default::default() }).unwrap();
        store.create_device("globex", "main").unwrap();
        assert!(matches!(store.create_user("acme", user("ops", &["main"])), Err(StoreError::Conflict(_))));
        let created = store.create_user("acme", user("ops", &[])).unwrap();
        assert!(matches!(store.update_user("acme", &created.id, user("ops", &["main"])), Err(StoreError::Conflict(_))));
        // Another tenant's user is not found, not shown.
        assert!(matches!(store.user("globex", &created.id), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delete_user("globex", &created.id), Err(StoreError::NotFound(_))));
        assert!(matches!(store.users("initech"), Err(StoreError::NotFound(_))));
        assert!(matches!(store.create_user("initech", user("ops", &[])), Err(StoreError::NotFound(_))));
    }

    fn a_token_works_until_it_is_revoked_and_stays_listed(store) {
        let store = acme(store);
        let ops = store.create_user("acme", user("ops", &[])).unwrap();
        let (record, token) = store.create_token("acme", &ops.id).unwrap();
        assert_eq!((record.user.as_str(), record.revoked_at.as_deref()), (ops.id.as_str(), None));
        assert!(!record.id.contains(&token) && !token.contains(&record.id), "the id is not the token");
        let active = |store: &Store| store.snapshot().unwrap().tenants[0].users[0].1.clone();
        assert_eq!(active(&store), [TokenHash::of(&token)]);

        let revoked = store.revoke_token("acme", &ops.id, &record.id).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(active(&store).is_empty(), "a revoked token no longer authenticates");
        let again = store.revoke_token("acme", &ops.id, &record.id).expect("revoking twice is not an error");
        assert!(again.revoked_at.is_some());
        assert_eq!(store.tokens("acme", &ops.id).unwrap(), [again], "a revoked token stays listed");
    }

    fn a_token_is_one_users_and_unknown_ones_are_not_found(store) {
        let store = acme(store);
        let ops = store.create_user("acme", user("ops", &[])).unwrap();
        let hash = TokenHash::of("0b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a90");
        store.add_token("acme", &ops.id, &hash).unwrap();
        let other = store.create_user("acme", user("other", &[])).unwrap();
        assert!(matches!(store.add_token("acme", &other.id, &hash), Err(StoreError::Conflict(_))));
        assert!(store.tokens("acme", &other.id).unwrap().is_empty());
        let nobody = uuid::Uuid::new_v4().to_string();
        assert!(matches!(store.create_token("acme", &nobody), Err(StoreError::NotFound(_))));
        assert!(matches!(store.tokens("acme", &nobody), Err(StoreError::NotFound(_))));
        assert!(matches!(store.revoke_token("acme", &ops.id, "no-such-token"), Err(StoreError::NotFound(_))));
        let token = store.tokens("acme", &ops.id).unwrap().remove(0);
        assert!(
            matches!(store.revoke_token("acme", &other.id, &token.id), Err(StoreError::NotFound(_))),
            "not its token"
        );
    }
    }
}

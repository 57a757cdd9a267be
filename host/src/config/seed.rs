//! The configuration file as the seed of an empty store.
//!
//! On the first start the tenants of the configuration file are written to the store, and the
//! store records that it was seeded; from then on the store is the truth and the file's
//! tenants are ignored, so changes made through the admin API (deleting every tenant
//! included) are never undone by a restart.

use waedge_store::routes::RouteRecord;
use waedge_store::tenants::NewTenant;
use waedge_store::token::TokenHash;
use waedge_store::users::NewUser;
use waedge_store::{Store, StoreError};

use super::Config;

impl Config {
    /// Writes the configuration's tenants into `store` unless it was seeded before; returns
    /// whether it did. A seed interrupted by a crash or a failure is undone and done again at
    /// the next start; the store counts as seeded only once all of it is written.
    pub fn seed(&self, store: &Store) -> Result<bool, StoreError> {
        if store.is_seeded()? {
            return Ok(false);
        }
        // Only an interrupted seed can have left tenants behind: nothing else writes tenants
        // before the store is seeded.
        for tenant in &self.tenants {
            match store.delete_tenant(&tenant.id) {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.seed_tenants(store)?;
        store.mark_seeded()?;
        Ok(true)
    }

    fn seed_tenants(&self, store: &Store) -> Result<(), StoreError> {
        for tenant in &self.tenants {
            let t = &tenant.id;
            store.create_tenant(NewTenant {
                id: t.clone(),
                name: None,
                hosts: tenant.hosts.clone(),
                limits: tenant.limits.clone(),
                outbound_hosts: tenant.outbound_hosts.clone(),
                outbound_private_hosts: tenant.outbound_private_hosts.clone(),
                settings: tenant.config.clone(),
            })?;
            for device in &tenant.devices {
                store.create_device(t, &device.id)?;
            }
            for user in &tenant.users {
                let new = NewUser {
                    id: Some(user.id.clone()),
                    name: user.name.clone(),
                    devices: user.devices.clone(),
                    scopes: user.scopes.clone(),
                };
                let created = store.create_user(t, new)?;
                let hash = TokenHash::from_hex(&user.token_sha256).map_err(StoreError::Invalid)?;
                store.add_token(t, &created.id, &hash)?;
            }
            for route in &tenant.routes {
                store.put_route(t, RouteRecord { prefix: route.prefix.clone(), component: route.component.clone() })?;
            }
        }
        Ok(())
    }
}

//! The configuration file as the seed of an empty store.
//!
//! On the first start the tenants of the configuration file are written to the store, and the
//! store records that it was seeded; from then on the store is the truth and the file's
//! tenants are ignored, so changes made through the admin API (deleting every tenant
//! included) are never undone by a restart.

use super::routes::RouteRecord;
use super::tenants::NewTenant;
use super::users::NewUser;
use super::{Store, StoreError};
use crate::config::Config;
use crate::token::TokenHash;

impl Store {
    /// Writes the configuration's tenants into the store unless it was seeded before;
    /// returns whether it did. A seed interrupted by a crash or a failure is undone and done
    /// again at the next start; the store counts as seeded only once all of it is written.
    pub fn seed(&self, config: &Config) -> Result<bool, StoreError> {
        if self.meta("seeded")?.is_some() {
            return Ok(false);
        }
        // Only an interrupted seed can have left tenants behind: nothing else writes tenants
        // before the store is seeded.
        for tenant in &config.tenants {
            match self.delete_tenant(&tenant.id) {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.seed_tenants(config)?;
        self.set_meta("seeded", &super::now())?;
        Ok(true)
    }

    fn seed_tenants(&self, config: &Config) -> Result<(), StoreError> {
        for tenant in &config.tenants {
            let t = &tenant.id;
            self.create_tenant(NewTenant {
                id: t.clone(),
                name: None,
                hosts: tenant.hosts.clone(),
                limits: tenant.limits.clone(),
                outbound_hosts: tenant.outbound_hosts.clone(),
                outbound_private_hosts: tenant.outbound_private_hosts.clone(),
                settings: tenant.config.clone(),
            })?;
            for device in &tenant.devices {
                self.create_device(t, &device.id)?;
            }
            for user in &tenant.users {
                let new = NewUser {
                    id: Some(user.id.clone()),
                    name: user.name.clone(),
                    devices: user.devices.clone(),
                    scopes: user.scopes.clone(),
                };
                let created = self.create_user(t, new)?;
                let hash = TokenHash::from_hex(&user.token_sha256).map_err(StoreError::Invalid)?;
                self.add_token(t, &created.id, &hash)?;
            }
            for route in &tenant.routes {
                self.put_route(t, RouteRecord { prefix: route.prefix.clone(), component: route.component.clone() })?;
            }
        }
        Ok(())
    }
}

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
    /// the next start; the store counts as seeded only once all of it is written. Nodes
    /// sharing a store seed it one at a time: the first seeds, the others find it seeded.
    pub fn seed(&self, store: &Store) -> Result<bool, StoreError> {
        store.exclusively(|| {
            if store.is_seeded()? {
                return Ok(false);
            }
            // Only an interrupted seed can have left tenants behind: nothing else writes
            // tenants before the store is seeded.
            for tenant in &self.tenants {
                match store.delete_tenant(&tenant.id) {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.seed_tenants(store)?;
            store.mark_seeded()?;
            Ok(true)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn nodes_starting_together_on_an_empty_store_seed_it_once() {
        let url = waedge_test_postgres::Postgres::shared().unwrap().create_database().unwrap();
        let config = Config::parse(
            r#"
            [[tenants]]
            id = "acme"
            devices = [{ id = "main" }]
            users = [{ id = "0b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a90", token_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", devices = ["main"] }]
            [[tenants]]
            id = "globex"
            "#,
        )
        .unwrap();
        let nodes: Vec<_> = (0..4)
            .map(|_| {
                let (config, store) = (config.clone(), Store::connect(&url).unwrap());
                std::thread::spawn(move || config.seed(&store))
            })
            .collect();
        let seeded: Vec<bool> = nodes.into_iter().map(|node| node.join().unwrap().unwrap()).collect();
        assert_eq!(seeded.iter().filter(|seeded| **seeded).count(), 1, "one node seeded: {seeded:?}");
        let store = Store::connect(&url).unwrap();
        let tenants: Vec<String> = store.tenants().unwrap().into_iter().map(|tenant| tenant.id).collect();
        assert_eq!(tenants, ["acme", "globex"]);
        assert_eq!(store.users("acme").unwrap().len(), 1);
    }
}

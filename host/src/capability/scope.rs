//! What one tenant's components may reach, as of one snapshot of the tenant.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use waedge_store::token::TokenHash;

use waedge_device::DeviceSession;

use crate::rate::BucketPerKey;

/// An API user of a tenant.
#[derive(Debug, Clone)]
pub struct User {
    /// The user id.
    pub id: String,
    /// Device ids this user may use.
    pub devices: Vec<String>,
    /// Permissions passed to components.
    pub scopes: Vec<String>,
}

/// The tenant a request was routed to, as the host interfaces see it: its id, its device
/// sessions, its API users (by token hash), its settings and the rate its devices may send
/// at, and nothing of other tenants. Built with every snapshot of the tenant and shared by all
/// its requests.
pub struct Scope {
    tenant: String,
    users: HashMap<TokenHash, User>,
    devices: BTreeMap<String, Arc<dyn DeviceSession>>,
    settings: BTreeMap<String, String>,
    sends: Arc<BucketPerKey>,
}

impl Scope {
    /// The scope of `tenant`, with its users by the hashes of their tokens, its device sessions
    /// by id, its settings and its devices' send rate (kept across snapshots by the caller).
    pub fn new(
        tenant: &str,
        users: HashMap<TokenHash, User>,
        devices: BTreeMap<String, Arc<dyn DeviceSession>>,
        settings: BTreeMap<String, String>,
        sends: Arc<BucketPerKey>,
    ) -> Self {
        Scope { tenant: tenant.to_string(), users, devices, settings, sends }
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The user owning the token with this hash, compared in constant time.
    pub fn user_by_token(&self, hash: &TokenHash) -> Option<&User> {
        self.users.get_key_value(hash).filter(|(stored, _)| stored.ct_eq(hash)).map(|(_, user)| user)
    }

    /// The hashes of every live token of the tenant's users.
    pub fn token_hashes(&self) -> impl Iterator<Item = &TokenHash> {
        self.users.keys()
    }

    /// The tenant's device session named `id`.
    pub fn device(&self, id: &str) -> Option<&Arc<dyn DeviceSession>> {
        self.devices.get(id)
    }

    /// Every device session of the tenant, by id.
    pub fn devices(&self) -> impl Iterator<Item = &Arc<dyn DeviceSession>> {
        self.devices.values()
    }

    /// Charges one message to `device`'s send rate; `Err` says how long until it may send.
    pub fn take_send(&self, device: &str) -> Result<(), std::time::Duration> {
        self.sends.take(device)
    }

    /// The tenant's key/value settings, sorted by key.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }
}

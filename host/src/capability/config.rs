//! `waedge:gateway/config`: the tenant's key/value settings.

use super::Capabilities;
use crate::bindings::config::Host;

impl Host for Capabilities {
    async fn get(&mut self, key: String) -> Option<String> {
        self.tenant.settings().get(&key).cloned()
    }

    async fn get_all(&mut self) -> Vec<(String, String)> {
        self.tenant.settings().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

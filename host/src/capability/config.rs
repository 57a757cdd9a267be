//! `wasi:config/store`: the tenant's key/value settings, the standard draft interface.
//!
//! The settings live in the tenant's snapshot, so reading them never fails: the interface's
//! `error` is never returned.

use waedge_contract::config::{Error, Host};

use super::CapabilitiesView;

impl Host for CapabilitiesView<'_> {
    async fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        Ok(self.capabilities.scope.settings().get(&key).cloned())
    }

    /// Every setting, sorted by key.
    async fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
        Ok(self.capabilities.scope.settings().iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

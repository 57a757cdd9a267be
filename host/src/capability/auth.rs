//! `waedge:gateway/auth`: verifying API tokens of the calling tenant only.

use waedge_contract::auth::{Host, Principal};
use waedge_store::token::TokenHash;

use super::{Capabilities, CapabilitiesView};

impl Capabilities {
    /// The principal of `token`, when it is a live token of the calling tenant.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        let user = self.scope.user_by_token(&TokenHash::of(token))?;
        Some(Principal { user: user.id.clone(), devices: user.devices.clone(), scopes: user.scopes.clone() })
    }
}

impl Host for CapabilitiesView<'_> {
    async fn verify_token(&mut self, token: String) -> Option<Principal> {
        self.capabilities.principal(&token)
    }
}

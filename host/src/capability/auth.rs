//! `waedge:gateway/auth`: verifying API tokens of the calling tenant only.

use super::Capabilities;
use crate::bindings::auth::{Host, Principal};
use crate::token::TokenHash;

impl Host for Capabilities {
    async fn verify_token(&mut self, token: String) -> Option<Principal> {
        let user = self.tenant.user_by_token(&TokenHash::of(&token))?;
        Some(Principal {
            tenant: self.tenant.id().to_string(),
            user: user.id.clone(),
            devices: user.devices.clone(),
            scopes: user.scopes.clone(),
        })
    }
}

//! Bearer-token authentication against the host's `auth` interface.

use crate::bindings::waedge::gateway::auth::{self, Principal};
use crate::{ErrorClass, Request};

/// Verifies the request's bearer token with the host and returns its principal.
///
/// Fails with a 401 [`ErrorClass`] (`UNAUTHORIZED`) when the header is missing, not a
/// `Bearer` token, or not a live token of this tenant, with the `WWW-Authenticate` challenge
/// of RFC 6750 §3. The token itself never appears in the error.
pub fn authenticate(request: &Request) -> Result<Principal, ErrorClass> {
    let token = request.bearer_token().ok_or_else(|| {
        ErrorClass::new(401, "UNAUTHORIZED", "missing bearer token: send `Authorization: Bearer <token>`")
            .with_header("www-authenticate", "Bearer")
    })?;
    auth::verify_token(token).ok_or_else(|| {
        ErrorClass::new(401, "UNAUTHORIZED", "invalid or revoked token")
            .with_header("www-authenticate", "Bearer error=\"invalid_token\"")
    })
}

/// Checks that `principal` may use `device`; a 403 [`ErrorClass`] (`FORBIDDEN`) otherwise.
pub fn require_device(principal: &Principal, device: &str) -> Result<(), ErrorClass> {
    if principal.devices.iter().any(|d| d == device) {
        Ok(())
    } else {
        Err(ErrorClass::new(403, "FORBIDDEN", format!("this token may not use device `{device}`")))
    }
}

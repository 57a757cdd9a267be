//! The tenant's settings (`waedge tenant set`), through the standard `wasi:config/store`.

use crate::bindings::wasi::config::store;

/// The tenant's setting `key`, if set. The host's store does not fail; should another host's
/// fail, the setting reads as unset.
pub fn get(key: &str) -> Option<String> {
    store::get(key).ok().flatten()
}

/// Every setting of the tenant as `(key, value)`, sorted by key; empty should the store fail.
pub fn get_all() -> Vec<(String, String)> {
    store::get_all().unwrap_or_default()
}

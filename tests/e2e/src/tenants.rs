//! Two test tenants, acme and globex, with users holding known API tokens: the configuration
//! most end-to-end tests start from.

use waedge_store::token::TokenHash;

/// alice's API token (tenant acme).
pub const ALICE: &str = "0d6f5c1e-8a3b-4c2d-9e1f-2a3b4c5d6e7f";
/// carol's API token (tenant acme).
pub const CAROL: &str = "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d";
/// dave's API token (tenant acme).
pub const DAVE: &str = "2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e";
/// eve's API token (tenant globex).
pub const EVE: &str = "3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f";

/// Two tenants. acme (the default tenant, if `default` is set): alice (all devices, `main`
/// first), carol (only the offline device), dave (no device). globex: eve. Both route both
/// APIs to the built-in components.
pub fn config(default: Option<&str>) -> String {
    let hash = |token: &str| TokenHash::of(token).to_hex();
    let default = default.map(|tenant| format!("default_tenant = {tenant:?}")).unwrap_or_default();
    format!(
        r#"
        {default}

        [[tenants]]
        id = "acme"
        hosts = ["acme.test"]
        limits = {{ max_request_body_bytes = 65536 }}
        devices = [{{ id = "main" }}, {{ id = "stranger" }}, {{ id = "offline" }}, {{ id = "fresh" }}]
        users = [
          {{ id = "a11ce000-0000-4000-8000-000000000001", token_sha256 = "{alice}", devices = ["main", "stranger", "offline", "fresh"] }},
          {{ id = "ca201000-0000-4000-8000-000000000002", token_sha256 = "{carol}", devices = ["offline"] }},
          {{ id = "da7e0000-0000-4000-8000-000000000003", token_sha256 = "{dave}" }},
        ]
        routes = [
          {{ prefix = "/devices", component = "builtin:devices-api" }},
          {{ prefix = "/contacts", component = "builtin:contacts-api" }},
        ]

        [[tenants]]
        id = "globex"
        hosts = ["globex.test"]
        devices = [{{ id = "main" }}]
        users = [{{ id = "e7e00000-0000-4000-8000-000000000004", token_sha256 = "{eve}", devices = ["main"] }}]
        routes = [
          {{ prefix = "/devices", component = "builtin:devices-api" }},
          {{ prefix = "/contacts", component = "builtin:contacts-api" }},
        ]
        "#,
        alice = hash(ALICE),
        carol = hash(CAROL),
        dave = hash(DAVE),
        eve = hash(EVE),
    )
}

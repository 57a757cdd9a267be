//! The configuration file: one TOML document describing the listeners, the data directory,
//! default limits and — as the seed of an empty store — tenants with their users, devices,
//! routes and settings.
//!
//! `waedge.toml` at the repository root is a documented example. Validation happens once, at
//! load time, and every error names the offending entry and what to change. Tenants are read
//! from the file only on the first start; after that the [store](crate::store) is the truth
//! and the admin API changes it.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::is_identifier;
use crate::token::TokenHash;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the API listener binds to.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address the admin API listener binds to. Keep it on loopback or a private network.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// The WhatsApp WebSocket URL devices connect to, e.g. a wa-sim's `ws://127.0.0.1:…/ws`.
    /// Only builds with the test-only `wa-sim` feature accept it: its certificate chain is not
    /// WhatsApp's.
    #[serde(default)]
    pub whatsapp_server: Option<String>,
    /// Directory for device sessions and other state; created if missing.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The tenant that serves requests matching no host name and no token (it may be one
    /// created later through the admin API).
    #[serde(default)]
    pub default_tenant: Option<String>,
    /// Limits every tenant gets unless it overrides them.
    #[serde(default)]
    pub limits: Limits,
    /// The tenants.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

/// Per-tenant resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock budget for one request, component and WhatsApp queries included.
    pub request_timeout_ms: u64,
    /// Linear-memory cap of one component instance, in MiB.
    pub memory_mib: u64,
    /// Largest request body accepted, in bytes.
    pub max_request_body_bytes: usize,
    /// Requests of this tenant served at once; more get 429.
    pub max_concurrent_requests: usize,
    /// How long WhatsApp lookups are cached, in seconds (0 disables the cache).
    pub cache_ttl_seconds: u64,
    /// Largest response body a component may send, in bytes; more is a 500.
    pub max_response_body_bytes: usize,
    /// Outbound HTTP requests one request's component may make.
    pub max_outbound_requests: usize,
    /// Wasm instances one request's component may create (a component is several).
    pub max_instances: usize,
    /// Wasm tables one request's component may create.
    pub max_tables: usize,
    /// Requests one component instance serves, one after another, before it is retired; what
    /// it keeps in memory lasts that long (within the tenant). 1: a fresh instance per request.
    pub requests_per_instance: u32,
    /// Sustained requests per second of this tenant (token bucket; 0: no rate limit).
    pub requests_per_second: u32,
    /// Requests the tenant may send at once above the sustained rate (the bucket's size).
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout_ms: 10_000,
            memory_mib: 64,
            max_request_body_bytes: 1 << 20,
            max_concurrent_requests: 256,
            cache_ttl_seconds: 30,
            max_response_body_bytes: 8 << 20,
            max_outbound_requests: 16,
            max_instances: 64,
            max_tables: 64,
            requests_per_instance: 100,
            requests_per_second: 0,
            burst: 100,
        }
    }
}

/// Limits a tenant sets for itself; unset fields fall back to the server's `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::request_timeout_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// See [`Limits::memory_mib`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// See [`Limits::max_request_body_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<usize>,
    /// See [`Limits::max_concurrent_requests`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<usize>,
    /// See [`Limits::cache_ttl_seconds`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<u64>,
    /// See [`Limits::max_response_body_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_body_bytes: Option<usize>,
    /// See [`Limits::max_outbound_requests`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outbound_requests: Option<usize>,
    /// See [`Limits::max_instances`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<usize>,
    /// See [`Limits::max_tables`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tables: Option<usize>,
    /// See [`Limits::requests_per_instance`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_instance: Option<u32>,
    /// See [`Limits::requests_per_second`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// See [`Limits::burst`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// The range each limit must lie in: `(name, value, least, most)`.
fn ranges(limits: &LimitOverrides) -> [(&'static str, Option<u64>, u64, u64); 12] {
    let size = |value: Option<usize>| value.map(|v| v as u64);
    [
        ("request_timeout_ms", limits.request_timeout_ms, 1, 600_000),
        ("memory_mib", limits.memory_mib, 1, 4096),
        ("max_request_body_bytes", size(limits.max_request_body_bytes), 0, 1 << 30),
        ("max_concurrent_requests", size(limits.max_concurrent_requests), 1, 1_000_000),
        ("cache_ttl_seconds", limits.cache_ttl_seconds, 0, 86_400),
        ("max_response_body_bytes", size(limits.max_response_body_bytes), 0, 1 << 30),
        ("max_outbound_requests", size(limits.max_outbound_requests), 0, 10_000),
        ("max_instances", size(limits.max_instances), 1, 10_000),
        ("max_tables", size(limits.max_tables), 1, 10_000),
        ("requests_per_instance", limits.requests_per_instance.map(u64::from), 1, 10_000),
        ("requests_per_second", limits.requests_per_second.map(u64::from), 0, 1_000_000),
        ("burst", limits.burst.map(u64::from), 0, 1_000_000),
    ]
}

impl LimitOverrides {
    /// Every limit set, as overrides (for checking the file's `[limits]`).
    pub fn of(limits: &Limits) -> Self {
        LimitOverrides {
            request_timeout_ms: Some(limits.request_timeout_ms),
            memory_mib: Some(limits.memory_mib),
            max_request_body_bytes: Some(limits.max_request_body_bytes),
            max_concurrent_requests: Some(limits.max_concurrent_requests),
            cache_ttl_seconds: Some(limits.cache_ttl_seconds),
            max_response_body_bytes: Some(limits.max_response_body_bytes),
            max_outbound_requests: Some(limits.max_outbound_requests),
            max_instances: Some(limits.max_instances),
            max_tables: Some(limits.max_tables),
            requests_per_instance: Some(limits.requests_per_instance),
            requests_per_second: Some(limits.requests_per_second),
            burst: Some(limits.burst),
        }
    }

    /// Checks every limit that is set against its range; the error names the limit and says
    /// what it may be, e.g. `memory_mib: 0 is out of range; use 1 to 4096`.
    pub fn check(&self) -> Result<(), String> {
        for (name, value, least, most) in ranges(self) {
            if let Some(value) = value
                && !(least..=most).contains(&value)
            {
                return Err(format!("{name}: {value} is out of range; use {least} to {most}"));
            }
        }
        Ok(())
    }

    /// `defaults` with this tenant's overrides applied.
    pub fn apply(&self, defaults: Limits) -> Limits {
        Limits {
            request_timeout_ms: self.request_timeout_ms.unwrap_or(defaults.request_timeout_ms),
            memory_mib: self.memory_mib.unwrap_or(defaults.memory_mib),
            max_request_body_bytes: self.max_request_body_bytes.unwrap_or(defaults.max_request_body_bytes),
            max_concurrent_requests: self.max_concurrent_requests.unwrap_or(defaults.max_concurrent_requests),
            cache_ttl_seconds: self.cache_ttl_seconds.unwrap_or(defaults.cache_ttl_seconds),
            max_response_body_bytes: self.max_response_body_bytes.unwrap_or(defaults.max_response_body_bytes),
            max_outbound_requests: self.max_outbound_requests.unwrap_or(defaults.max_outbound_requests),
            max_instances: self.max_instances.unwrap_or(defaults.max_instances),
            max_tables: self.max_tables.unwrap_or(defaults.max_tables),
            requests_per_instance: self.requests_per_instance.unwrap_or(defaults.requests_per_instance),
            requests_per_second: self.requests_per_second.unwrap_or(defaults.requests_per_second),
            burst: self.burst.unwrap_or(defaults.burst),
        }
    }
}

/// One tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Stable identifier, e.g. `acme`.
    pub id: String,
    /// Host names (without port) whose requests go to this tenant.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Limits for this tenant.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Outbound HTTP: host names components of this tenant may call.
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    /// Of those, the hosts that may resolve to loopback, private or link-local addresses.
    #[serde(default)]
    pub outbound_private_hosts: Vec<String>,
    /// Key/value settings the tenant's components read through the `config` interface.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The tenant's WhatsApp devices.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// API users and their tokens.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Path prefixes and the component serving each.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// One WhatsApp device (a linked phone) of a tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The device id used in API paths, e.g. `main`.
    pub id: String,
}

/// One API user of a tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user id, a UUID.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// SHA-256 of the user's API token, in hex (`waedge hash-token` prints it).
    pub token_sha256: String,
    /// Devices this user may use; the first is the user's own device for the contacts API.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Permissions passed to components.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One route: requests whose path starts with `prefix` (at a `/` boundary) go to `component`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, starting with `/`, e.g. `/devices`.
    pub prefix: String,
    /// `builtin:NAME` for a built-in component, or a path to a `.wasm` component file
    /// (relative paths are relative to the configuration file).
    pub component: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error, with line and column.
        source: Box<toml::de::Error>,
    },
    /// The file parses but contradicts itself.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths inside it (the data
    /// directory, component files) are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.to_path_buf(), source },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.data_dir = base.join(&config.data_dir);
        for route in config.tenants.iter_mut().flat_map(|t| t.routes.iter_mut()) {
            if !route.component.starts_with("builtin:") {
                route.component = base.join(&route.component).display().to_string();
            }
        }
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: PathBuf::from("<config>"), source: Box::new(source) })?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let mut tenant_ids = HashSet::new();
        let mut hosts = HashSet::new();
        let mut tokens = HashSet::new();
        for tenant in &self.tenants {
            let t = &tenant.id;
            if !is_identifier(t) {
                return Err(format!("tenant id `{t}`: use letters, digits, `-` and `_` only"));
            }
            if !tenant_ids.insert(t.as_str()) {
                return Err(format!("tenant `{t}` is defined twice: tenant ids must be unique"));
            }
            for host in &tenant.hosts {
                if !hosts.insert(host.to_ascii_lowercase()) {
                    return Err(format!("tenant `{t}`: host `{host}` already belongs to another tenant"));
                }
            }
            let mut device_ids = HashSet::new();
            for device in &tenant.devices {
                if !is_identifier(&device.id) {
                    return Err(format!(
                        "tenant `{t}`: device id `{}`: use letters, digits, `-` and `_` only",
                        device.id
                    ));
                }
                if !device_ids.insert(device.id.as_str()) {
                    return Err(format!("tenant `{t}`: device `{}` is defined twice", device.id));
                }
            }
            for user in &tenant.users {
                if uuid::Uuid::parse_str(&user.id).is_err() {
                    return Err(format!("tenant `{t}`, user `{}`: user ids are UUIDs", user.id));
                }
                let hash = TokenHash::from_hex(&user.token_sha256)
                    .map_err(|e| format!("tenant `{t}`, user `{}`: token_sha256 is {e}", user.id))?;
                if !tokens.insert(hash) {
                    return Err(format!(
                        "tenant `{t}`, user `{}`: this token is already used by another user",
                        user.id
                    ));
                }
                if let Some(unknown) = user.devices.iter().find(|d| !device_ids.contains(d.as_str())) {
                    return Err(format!(
                        "tenant `{t}`, user `{}`: device `{unknown}` is not a device of this tenant",
                        user.id
                    ));
                }
            }
            for route in &tenant.routes {
                if !route.prefix.starts_with('/') {
                    return Err(format!("tenant `{t}`: route prefix `{}` must start with `/`", route.prefix));
                }
            }
            tenant.limits.check().map_err(|problem| format!("tenant `{t}`, limits.{problem}"))?;
        }
        LimitOverrides::of(&self.limits).check().map_err(|problem| format!("[limits] {problem}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const USER: &str = "0b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a90";

    fn tenant(extra: &str) -> String {
        format!(
            r#"
            [[tenants]]
            id = "acme"
            devices = [{{ id = "main" }}]
            users = [{{ id = "{USER}", token_sha256 = "{HASH_A}", devices = ["main"] }}]
            routes = [{{ prefix = "/devices", component = "builtin:devices-api" }}]
            {extra}
            "#
        )
    }

    #[test]
    fn parses_with_defaults_and_overrides() {
        let config = Config::parse(&format!("{}\nlimits = {{ memory_mib = 8 }}", tenant(""))).unwrap();
        assert_eq!(config.listen, default_listen());
        let limits = config.tenants[0].limits.apply(config.limits);
        assert_eq!(limits.memory_mib, 8);
        assert_eq!(limits.request_timeout_ms, Limits::default().request_timeout_ms);
    }

    #[test]
    fn rejects_contradictions_with_a_reason() {
        let cases = [
            (format!("{}{}", tenant(""), tenant("")), "defined twice"),
            (tenant("hosts = ['a']\n[[tenants]]\nid = 'b'\nhosts = ['A']"), "already belongs"),
            (tenant("").replace("devices = [\"main\"]", "devices = [\"other\"]"), "not a device of this tenant"),
            (tenant("").replace(HASH_A, "nothex"), "token_sha256"),
            (tenant("").replace("\"/devices\"", "\"devices\""), "must start with `/`"),
            (tenant("limits = { memory_mib = 0 }"), "memory_mib: 0 is out of range; use 1 to 4096"),
            (format!("[limits]\nmax_concurrent_requests = 100000000000\n{}", tenant("")), "max_concurrent_requests"),
            (tenant("").replace("\"acme\"", "\"a b\""), "letters, digits"),
            (
                format!(
                    "{}\n[[tenants]]\nid = 'b'\nusers = [{{ id = '1b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a90', token_sha256 = '{HASH_A}' }}]",
                    tenant("")
                ),
                "already used",
            ),
            (tenant("").replace(USER, "u1"), "user ids are UUIDs"),
        ];
        for (text, expected) in cases {
            let error = Config::parse(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        }
    }

    #[test]
    fn rejects_unknown_keys() {
        let error = Config::parse("listen = '127.0.0.1:1'\nlisten_port = 3").unwrap_err().to_string();
        assert!(error.contains("listen_port"), "{error}");
    }
}

//! The configuration file: one TOML document describing the listeners, the data directory,
//! default limits and — as the seed of an empty store — tenants with their users, devices,
//! routes and settings.
//!
//! `waedge.toml` at the repository root is a documented example. Validation happens once, at
//! load time, and every error names the offending entry and what to change. Tenants are read
//! from the file only on the first start; after that the [store](waedge_store) is the truth
//! and the admin API changes it.

mod seed;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use waedge_store::limits::LimitOverrides;
use waedge_store::token::TokenHash;
use waedge_store::{ComponentRef, is_identifier};

use crate::limits::Limits;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the API listener binds to.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address the admin API listener binds to: a loopback address unless
    /// `admin_allow_remote` says otherwise.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Lets `admin_listen` be an address other machines reach. The admin API speaks plain
    /// HTTP and its tokens rule every tenant: only set this behind a TLS-terminating proxy or
    /// on a network that only operators reach.
    #[serde(default)]
    pub admin_allow_remote: bool,
    /// Limits on the connections of both listeners.
    #[serde(default)]
    pub connections: Connections,
    /// What compiling one component a tenant deploys may use.
    #[serde(default)]
    pub compile: CompileBudget,
    /// Resident memory of the process, in MiB, above which new API requests are refused with
    /// `503 CAPACITY` until it is below again (the admin API is never refused). Unset: none.
    #[serde(default)]
    pub memory_watermark_mib: Option<u64>,
    /// The WhatsApp WebSocket URL devices connect to, e.g. a wa-sim's `ws://127.0.0.1:…/ws`.
    /// Only builds with the test-only `wa-sim` feature accept it: its certificate chain is not
    /// WhatsApp's.
    #[serde(default)]
    pub whatsapp_server: Option<String>,
    /// The DNS server (UDP) outbound HTTP looks names up at instead of the system's, e.g. a
    /// test's own server on loopback. Only builds with the test-only `wa-sim` feature accept it.
    #[serde(default)]
    pub dns_server: Option<SocketAddr>,
    /// Addresses outbound HTTP treats as globally reachable although they are not, so a test
    /// can reach a listener of its own (e.g. `127.0.0.2`) as a public host. Only builds with
    /// the test-only `wa-sim` feature accept it.
    #[serde(default)]
    pub public_test_addresses: Vec<IpAddr>,
    /// Directory for device sessions and other state; created if missing.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where the store lives. Unset: `waedge.db` in the data directory (SQLite, one
    /// machine). A `postgres://user:password@host:port/database` URL: that PostgreSQL
    /// database, which several nodes can share (`waedge store migrate` copies a SQLite store
    /// into it).
    #[serde(default)]
    pub store: Option<DatabaseUrl>,
    /// How this node shares the devices with the other nodes of a PostgreSQL `store`.
    #[serde(default)]
    pub cluster: Option<Cluster>,
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

/// Limits on the connections of both listeners: what a client that never finishes a request,
/// or opens many connections, can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Time a client has to send a request's headers, and the longest an HTTP/1.1 connection
    /// waits idle for its next request.
    pub header_read_timeout_ms: u64,
    /// Time a client has to send a request's whole body.
    pub body_read_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2 too).
    pub idle_timeout_ms: u64,
    /// Connections open at once, per listener; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64), per listener.
    pub max_connections_per_client: usize,
    /// Largest header block of a request, in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in a request.
    pub max_headers: usize,
    /// Requests in flight at once on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
            max_connections_per_client: 256,
            max_header_bytes: 64 << 10,
            max_headers: 100,
            max_concurrent_streams: 100,
        }
    }
}

/// What compiling one component a tenant deploys may use: it is compiled in a child process
/// under these limits, and refused when it needs more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompileBudget {
    /// CPU time of all the compiler's threads together, in seconds.
    pub cpu_seconds: u64,
    /// Address space of the compiler process, in MiB.
    pub memory_mib: u64,
}

impl Default for CompileBudget {
    fn default() -> Self {
        CompileBudget { cpu_seconds: 60, memory_mib: 4096 }
    }
}

impl CompileBudget {
    fn check(&self) -> Result<(), String> {
        in_ranges([("cpu_seconds", self.cpu_seconds, 1, 3600), ("memory_mib", self.memory_mib, 128, 1 << 20)])
    }
}

/// `Ok` when every `(name, value, least, most)` has its value in range; else says which not.
fn in_ranges<const N: usize>(ranges: [(&str, u64, u64, u64); N]) -> Result<(), String> {
    match ranges.into_iter().find(|&(_, value, least, most)| !(least..=most).contains(&value)) {
        Some((name, value, least, most)) => Err(format!("{name}: {value} is out of range; use {least} to {most}")),
        None => Ok(()),
    }
}

impl Connections {
    fn check(&self) -> Result<(), String> {
        in_ranges([
            ("header_read_timeout_ms", self.header_read_timeout_ms, 100, 600_000),
            ("body_read_timeout_ms", self.body_read_timeout_ms, 100, 3_600_000),
            ("idle_timeout_ms", self.idle_timeout_ms, 100, 3_600_000),
            ("max_connections", self.max_connections as u64, 1, 1_000_000),
            ("max_connections_per_client", self.max_connections_per_client as u64, 1, 1_000_000),
            // hyper reads HTTP/1.1 into a buffer of at least 8 KiB.
            ("max_header_bytes", self.max_header_bytes as u64, 8 << 10, 16 << 20),
            ("max_headers", self.max_headers as u64, 1, 10_000),
            ("max_concurrent_streams", u64::from(self.max_concurrent_streams), 1, 10_000),
        ])
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
    /// `builtin:NAME` for a built-in component, `component:NAME` for a deployed one, or a path
    /// to a `.wasm` component file (relative paths are relative to the configuration file).
    pub component: ComponentRef,
}

/// How a node takes part in a cluster: the nodes of one PostgreSQL store share its devices
/// out, each device run by the one node that holds its lease.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// This node's name, in the leases and the nodes of the store. Unset: the host name.
    pub node: Option<String>,
    /// How long a node's hold on a device lasts unless renewed (every quarter of it). A device
    /// whose node died is taken over by another within about 1.25 times this.
    pub lease_ms: u64,
    /// Connections this node keeps to PostgreSQL for the devices' state (all its devices
    /// share them).
    pub connections: usize,
    /// Where this node's cluster listener binds: the other nodes forward to it the calls on
    /// the devices it runs. Unset: no node forwards to this one, and a call on a device
    /// another node runs answers `DEVICE_NOT_CONNECTED` here. Needs `secret`.
    pub listen: Option<SocketAddr>,
    /// The address the other nodes reach the cluster listener at (`host:port`). Unset: the
    /// address `listen` bound, which must then be one another machine can reach.
    pub advertise: Option<String>,
    /// What the nodes of the cluster prove they are with: the same on every node, at least
    /// [`MIN_SECRET_CHARS`] characters (e.g. `openssl rand -hex 32`).
    pub secret: Option<ClusterSecret>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster { node: None, lease_ms: 8_000, connections: 4, listen: None, advertise: None, secret: None }
    }
}

/// The shortest cluster secret.
pub const MIN_SECRET_CHARS: usize = 32;

/// The secret the nodes of a cluster share, never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClusterSecret(String);

impl ClusterSecret {
    /// The secret itself: only for proving and checking it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClusterSecret {
    type Error = String;

    fn try_from(secret: String) -> Result<Self, Self::Error> {
        let printable = secret.chars().all(|c| c.is_ascii_graphic());
        if secret.chars().count() >= MIN_SECRET_CHARS && printable {
            Ok(ClusterSecret(secret))
        } else {
            Err(format!(
                "cluster.secret: use at least {MIN_SECRET_CHARS} printable ASCII characters without spaces \
                 (e.g. `openssl rand -hex 32`), the same on every node"
            ))
        }
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The shortest lease: a renewal waits up to 5 s for PostgreSQL before its connection is
/// replaced, and must still land before the lease ends.
const MIN_LEASE_MS: u64 = 6_000;

/// A PostgreSQL URL, whose password is never printed (`Debug` shows `***` in its place).
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its password, for messages: the password of `user:password@` and the
    /// whole query (where `password=` may be too) are shown as `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "***".into();
        };
        // Credentials run to the first `@`, as the driver reads them (a password may hold a `?`).
        let (user, place) = match rest.split_once('@') {
            Some((credentials, place)) => match credentials.split_once(':') {
                Some((user, _)) => (format!("{user}:***@"), place),
                None => (format!("{credentials}@"), place),
            },
            None => (String::new(), rest),
        };
        let (place, query) = match place.split_once('?') {
            Some((place, _)) => (place, "?***"),
            None => (place, ""),
        };
        format!("{scheme}://{user}{place}{query}")
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, Self::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl(url))
        } else {
            Err("`store` is a PostgreSQL URL, postgres://user:password@host:port/database; \
                 leave it out for the SQLite store in the data directory"
                .into())
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
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
            if let ComponentRef::File(path) = &mut route.component {
                *path = base.join(&*path).display().to_string();
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
        if let Some(cluster) = &self.cluster {
            if self.store.is_none() {
                return Err("`[cluster]` shares the devices of a PostgreSQL store: set `store = \"postgres://…\"`, \
                            or remove the section"
                    .into());
            }
            if cluster.lease_ms < MIN_LEASE_MS {
                return Err(format!(
                    "cluster.lease_ms: {} is too short; use at least {MIN_LEASE_MS}",
                    cluster.lease_ms
                ));
            }
            if !(1..=64).contains(&cluster.connections) {
                return Err(format!("cluster.connections: {} is out of range; use 1 to 64", cluster.connections));
            }
            if cluster.node.as_deref().is_some_and(|node| !is_identifier(node)) {
                return Err("cluster.node: use 1 to 64 letters, digits, `-` and `_`".into());
            }
            if cluster.listen.is_some() != cluster.secret.is_some() {
                return Err("cluster.listen and cluster.secret go together: the other nodes forward device calls \
                            to the listener, proving with the secret that they are nodes of the cluster"
                    .into());
            }
            if cluster.advertise.is_some() && cluster.listen.is_none() {
                return Err("cluster.advertise names where the cluster listener is reached: set cluster.listen".into());
            }
            if let Some(advertise) = &cluster.advertise
                && (advertise.contains('@')
                    || advertise.parse::<http::uri::Authority>().ok().and_then(|a| a.port_u16()).is_none())
            {
                return Err(format!("cluster.advertise: `{advertise}` is not `host:port`"));
            }
            if cluster.advertise.is_none() && cluster.listen.is_some_and(|listen| listen.ip().is_unspecified()) {
                return Err("cluster.listen binds every address: set cluster.advertise to the `host:port` the other \
                            nodes reach this one at"
                    .into());
            }
        }
        let mut tenant_ids = HashSet::new();
        let mut hosts = HashSet::new();
        let mut tokens = HashSet::new();
        for tenant in &self.tenants {
            let t = &tenant.id;
            if !is_identifier(t) {
                return Err(format!("tenant id `{t}`: use letters, digits, `-` and `_` only"));
            }
            if !tenant_ids.insert(t.to_ascii_lowercase()) {
                return Err(format!(
                    "tenant `{t}` is defined twice: tenant ids must be unique, also ignoring case (they name directories)"
                ));
            }
            for host in &tenant.hosts {
                if !hosts.insert(host.to_ascii_lowercase()) {
                    return Err(format!("tenant `{t}`: host `{host}` already belongs to another tenant"));
                }
            }
            let mut device_ids = HashSet::new();
            let mut folded_device_ids = HashSet::new();
            for device in &tenant.devices {
                if !is_identifier(&device.id) {
                    return Err(format!(
                        "tenant `{t}`: device id `{}`: use letters, digits, `-` and `_` only",
                        device.id
                    ));
                }
                if !device_ids.insert(device.id.as_str()) || !folded_device_ids.insert(device.id.to_ascii_lowercase()) {
                    return Err(format!(
                        "tenant `{t}`: device `{}` is defined twice (ids must differ also ignoring case)",
                        device.id
                    ));
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
        self.limits.as_overrides().check().map_err(|problem| format!("[limits] {problem}"))?;
        self.connections.check().map_err(|problem| format!("[connections] {problem}"))?;
        self.compile.check().map_err(|problem| format!("[compile] {problem}"))?;
        if let Some(mib) = self.memory_watermark_mib {
            in_ranges([("memory_watermark_mib", mib, 1, 1 << 30)])?;
        }
        if !self.admin_listen.ip().is_loopback() && !self.admin_allow_remote {
            return Err(format!(
                "admin_listen = \"{}\" is not a loopback address: the admin API (plain HTTP, tokens that rule \
                 every tenant, /metrics naming every tenant and device) would be reachable from other machines. \
                 Keep it on 127.0.0.1 or [::1] and reach it through SSH or a TLS-terminating proxy, or set \
                 admin_allow_remote = true if only operators can reach that address",
                self.admin_listen
            ));
        }
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
        let limits = config.limits.overridden(&config.tenants[0].limits);
        assert_eq!(limits.memory_mib, 8);
        assert_eq!(limits.request_timeout_ms, Limits::default().request_timeout_ms);
    }

    #[test]
    fn a_store_url_is_postgres_and_its_password_is_never_printed() {
        let config = Config::parse("store = 'postgres://waedge:s3cret@db.internal:5432/waedge'").unwrap();
        let url = config.store.as_ref().expect("the store URL");
        assert_eq!(url.expose(), "postgres://waedge:s3cret@db.internal:5432/waedge");
        assert_eq!(url.redacted(), "postgres://waedge:***@db.internal:5432/waedge");
        assert!(!format!("{config:?}").contains("s3cret"), "a logged configuration shows no password");
        let no_password = Config::parse("store = 'postgresql://waedge@db/waedge'").unwrap();
        assert_eq!(no_password.store.unwrap().redacted(), "postgresql://waedge@db/waedge");
        let in_query = Config::parse("store = 'postgres://db/waedge?user=w&password=s3cret'").unwrap();
        assert_eq!(in_query.store.unwrap().redacted(), "postgres://db/waedge?***");
        let question_in_password = Config::parse("store = 'postgres://w:pa?ss@db/waedge?sslmode=require'").unwrap();
        assert_eq!(question_in_password.store.unwrap().redacted(), "postgres://w:***@db/waedge?***");
        assert!(Config::parse("").unwrap().store.is_none(), "SQLite in the data directory by default");
        let refused = Config::parse("store = 'sqlite:///var/lib/waedge.db'").unwrap_err().to_string();
        assert!(refused.contains("leave it out for the SQLite store"), "{refused}");
    }

    /// A cluster secret long enough.
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_cluster_needs_a_postgres_store_and_sane_leases() {
        let store = "store = 'postgres://waedge@db/waedge'\n";
        let config = Config::parse(&format!("{store}[cluster]\nnode = 'node-1'")).unwrap();
        assert_eq!(config.cluster, Some(Cluster { node: Some("node-1".into()), ..Cluster::default() }));
        let listening = format!("{store}[cluster]\nlisten = '0.0.0.0:7700'\nadvertise = 'node-1.internal:7700'");
        let config = Config::parse(&format!("{listening}\nsecret = '{SECRET}'")).unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.advertise.as_deref(), Some("node-1.internal:7700"));
        assert_eq!(cluster.secret.as_ref().map(ClusterSecret::expose), Some(SECRET));
        assert!(!format!("{cluster:?}").contains(SECRET), "the secret is never printed: {cluster:?}");
        let config = Config::parse(&format!("{store}[cluster]\nlisten = '10.0.0.1:7700'\nsecret = '{SECRET}'"));
        assert_eq!(config.unwrap().cluster.unwrap().listen, Some("10.0.0.1:7700".parse().unwrap()));
        for (text, reason) in [
            ("[cluster]\nnode = 'node-1'".to_string(), "set `store = \"postgres://…\"`"),
            (format!("{store}[cluster]\nlease_ms = 1000"), "lease_ms: 1000 is too short; use at least 6000"),
            (format!("{store}[cluster]\nconnections = 0"), "connections: 0 is out of range"),
            (format!("{store}[cluster]\nnode = 'a b'"), "cluster.node: use 1 to 64 letters"),
            (format!("{store}[cluster]\nlisten = '10.0.0.1:7700'"), "cluster.listen and cluster.secret go together"),
            (format!("{store}[cluster]\nsecret = '{SECRET}'"), "cluster.listen and cluster.secret go together"),
            (format!("{store}[cluster]\nlisten = '10.0.0.1:7700'\nsecret = 'short'"), "at least 32 printable"),
            (format!("{store}[cluster]\nlisten = '0.0.0.0:7700'\nsecret = '{SECRET}'"), "set cluster.advertise"),
            (
                format!("{store}[cluster]\nlisten = '0.0.0.0:7700'\nadvertise = 'node-1'\nsecret = '{SECRET}'"),
                "`node-1` is not `host:port`",
            ),
            (
                format!("{store}[cluster]\nlisten = '0.0.0.0:7700'\nadvertise = 'a@b:1'\nsecret = '{SECRET}'"),
                "`a@b:1` is not `host:port`",
            ),
            (format!("{store}[cluster]\nadvertise = 'node-1:7700'"), "set cluster.listen"),
        ] {
            let refused = Config::parse(&text).unwrap_err().to_string();
            assert!(refused.contains(reason), "{text}: {refused}");
        }
    }

    #[test]
    fn rejects_contradictions_with_a_reason() {
        let cases = [
            (format!("{}{}", tenant(""), tenant("")), "defined twice"),
            (format!("{}{}", tenant(""), tenant("").replace("\"acme\"", "\"Acme\"")), "also ignoring case"),
            (tenant("hosts = ['a']\n[[tenants]]\nid = 'b'\nhosts = ['A']"), "already belongs"),
            (tenant("").replace("devices = [\"main\"]", "devices = [\"other\"]"), "not a device of this tenant"),
            (tenant("").replace(HASH_A, "nothex"), "token_sha256"),
            (tenant("").replace("\"/devices\"", "\"devices\""), "must start with `/`"),
            (tenant("limits = { memory_mib = 0 }"), "memory_mib: 0 is out of range; use 1 to 256"),
            (tenant("limits = { memory_mib = 1024 }"), "memory_mib: 1024 is out of range; use 1 to 256"),
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
    fn the_admin_listener_stays_on_loopback_unless_told_otherwise() {
        let error = Config::parse("admin_listen = '0.0.0.0:8081'").unwrap_err().to_string();
        assert!(error.contains("not a loopback address") && error.contains("admin_allow_remote"), "{error}");
        assert!(Config::parse("admin_listen = '[::1]:8081'").is_ok());
        let config = Config::parse("admin_listen = '0.0.0.0:8081'\nadmin_allow_remote = true").unwrap();
        assert!(config.admin_allow_remote);
    }

    #[test]
    fn connection_limits_are_checked() {
        let config = Config::parse("[connections]\nmax_connections_per_client = 4").unwrap();
        assert_eq!(config.connections.max_connections_per_client, 4);
        assert_eq!(config.connections.header_read_timeout_ms, Connections::default().header_read_timeout_ms);
        let error = Config::parse("[connections]\nmax_header_bytes = 100").unwrap_err().to_string();
        assert!(error.contains("[connections] max_header_bytes: 100 is out of range; use 8192 to"), "{error}");
    }

    #[test]
    fn the_compile_budget_is_checked() {
        let config = Config::parse("[compile]\ncpu_seconds = 5").unwrap();
        assert_eq!(config.compile, CompileBudget { cpu_seconds: 5, memory_mib: 4096 });
        let error = Config::parse("[compile]\nmemory_mib = 10").unwrap_err().to_string();
        assert!(error.contains("[compile] memory_mib: 10 is out of range; use 128 to 1048576"), "{error}");
    }

    #[test]
    fn rejects_unknown_keys() {
        let error = Config::parse("listen = '127.0.0.1:1'\nlisten_port = 3").unwrap_err().to_string();
        assert!(error.contains("listen_port"), "{error}");
    }
}

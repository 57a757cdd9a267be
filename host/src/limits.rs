//! Per-tenant resource limits, defined once: each limit's name, type, default and range come
//! from one list, from which the server's defaults ([`Limits`]), a tenant's own settings
//! ([`LimitOverrides`], stored and served by the admin API) and their checks are made.

use serde::{Deserialize, Serialize};

/// The largest linear memory any component instance may have, in MiB: the pooling
/// allocator's memory slot size. A tenant's `memory_mib` is at most this.
pub const MAX_MEMORY_MIB: u64 = 256;

/// Defines [`Limits`] (every limit with its default), [`LimitOverrides`] (what a tenant sets
/// for itself) and the range each limit must lie in, from one list.
macro_rules! limits {
    ($($(#[doc = $doc:expr])+ $name:ident: $ty:ty = $default:expr, $least:literal..=$most:expr;)+) => {
        /// Per-tenant resource limits.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Limits {
            $($(#[doc = $doc])+ pub $name: $ty,)+
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $($name: $default,)+ }
            }
        }

        /// Limits a tenant sets for itself; unset fields fall back to the server's `[limits]`.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LimitOverrides {
            $(
                #[doc = concat!("See [`Limits::", stringify!($name), "`].")]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )+
        }

        impl LimitOverrides {
            /// Every limit set, as overrides (for checking the file's `[limits]`).
            pub fn of(limits: &Limits) -> Self {
                LimitOverrides { $($name: Some(limits.$name),)+ }
            }

            /// `defaults` with this tenant's overrides applied.
            pub fn apply(&self, defaults: Limits) -> Limits {
                Limits { $($name: self.$name.unwrap_or(defaults.$name),)+ }
            }

            /// The range each limit must lie in: `(name, value, least, most)`.
            fn ranges(&self) -> Vec<(&'static str, Option<u64>, u64, u64)> {
                vec![$((stringify!($name), self.$name.map(|v| v as u64), $least, $most),)+]
            }
        }
    };
}

limits! {
    /// Wall-clock budget for one request, from its arrival: reading its body, the component
    /// and WhatsApp queries included.
    request_timeout_ms: u64 = 10_000, 1..=600_000;
    /// Linear-memory cap of one component instance, in MiB: all its memories together. At most
    /// the instance pool's largest memory.
    memory_mib: u64 = 64, 1..=MAX_MEMORY_MIB;
    /// Largest request body accepted, in bytes.
    max_request_body_bytes: usize = 1 << 20, 0..=1 << 30;
    /// Requests with a valid API token of this tenant served at once; more get 429.
    max_concurrent_requests: usize = 256, 1..=1_000_000;
    /// Requests without a valid API token of this tenant (signed webhooks, public routes, and
    /// strangers) served at once; more get 429. A budget of their own, so that they can never
    /// take the one of the tenant's users.
    anonymous_concurrent_requests: usize = 32, 1..=1_000_000;
    /// Of those, requests from one client address at once (IPv6: one /64).
    anonymous_concurrent_per_client: usize = 8, 1..=1_000_000;
    /// Sustained requests per second without a valid API token (token bucket of `burst`
    /// requests; 0: no rate limit).
    anonymous_requests_per_second: u32 = 0, 0..=1_000_000;
    /// Of those, sustained requests per second from one client address (IPv6: one /64), in a
    /// token bucket of `burst` requests of its own; 0: no rate limit per client.
    anonymous_requests_per_second_per_client: u32 = 0, 0..=1_000_000;
    /// How long WhatsApp lookups are cached, in seconds (0 disables the cache).
    cache_ttl_seconds: u64 = 30, 0..=86_400;
    /// Largest response body a component may send, in bytes; more is a 500.
    max_response_body_bytes: usize = 8 << 20, 0..=1 << 30;
    /// Outbound HTTP requests one request's component may make.
    max_outbound_requests: usize = 16, 0..=10_000;
    /// Wasm instances one request's component may create (a component is several).
    max_instances: usize = 64, 1..=10_000;
    /// Wasm tables one request's component may create.
    max_tables: usize = 64, 1..=10_000;
    /// Requests one component instance serves, one after another, before it is retired; what
    /// it keeps in memory lasts that long (within the tenant). 1: a fresh instance per request.
    requests_per_instance: u32 = 100, 1..=10_000;
    /// Sustained requests per second with a valid API token of this tenant (token bucket; 0: no
    /// rate limit).
    requests_per_second: u32 = 0, 0..=1_000_000;
    /// Requests the tenant may send at once above the sustained rate (the bucket's size).
    burst: u32 = 100, 0..=1_000_000;
    /// Guest CPU time all the tenant's requests together may use, in thousandths of a core
    /// (1000: one core), with up to a second of it at once; above it, its components are
    /// slowed down, so that they cannot starve other tenants or the device sessions.
    cpu_millicores: u32 = 1000, 1..=1_000_000;
}

impl LimitOverrides {
    /// Checks every limit that is set against its range; the error names the limit and says
    /// what it may be, e.g. `memory_mib: 0 is out of range; use 1 to 256`.
    pub fn check(&self) -> Result<(), String> {
        for (name, value, least, most) in self.ranges() {
            if let Some(value) = value
                && !(least..=most).contains(&value)
            {
                return Err(format!("{name}: {value} is out of range; use {least} to {most}"));
            }
        }
        Ok(())
    }
}

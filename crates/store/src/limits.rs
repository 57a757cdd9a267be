//! A tenant's own resource limits as stored ([`LimitOverrides`]), and the one table every
//! limit is defined in ([`limit_table!`](crate::limit_table)): its name, type, default and
//! range. The store checks a tenant's limits against their ranges; the host makes its
//! server-wide defaults and resolves a tenant's limits from the same table
//! (`waedge::limits::Limits`).

use serde::{Deserialize, Serialize};

/// The largest linear memory any component instance may have, in MiB: the pooling
/// allocator's memory slot size. A tenant's `memory_mib` is at most this.
pub const MAX_MEMORY_MIB: u64 = 256;

/// The table of limits: calls `$callback!` with one entry per limit, written
/// `/// docs… name: type = default, least..=most;`. Each crate makes what it needs of a limit
/// from this one list: the store its [`LimitOverrides`] and their ranges, the host its
/// defaults and their resolution.
#[macro_export]
macro_rules! limit_table {
    ($callback:ident) => {
        $callback! {
            /// Wall-clock budget for one request, from its arrival: reading its body, the
            /// component and WhatsApp queries included.
            request_timeout_ms: u64 = 10_000, 1..=600_000;
            /// Linear-memory cap of one component instance, in MiB: all its memories together.
            /// At most the instance pool's largest memory.
            memory_mib: u64 = 64, 1..=$crate::limits::MAX_MEMORY_MIB;
            /// Largest request body accepted, in bytes.
            max_request_body_bytes: usize = 1 << 20, 0..=1 << 30;
            /// Requests with a valid API token of this tenant served at once; more get 429.
            max_concurrent_requests: usize = 256, 1..=1_000_000;
            /// Requests without a valid API token of this tenant (signed webhooks, public
            /// routes, and strangers) served at once; more get 429. A budget of their own, so
            /// that they can never take the one of the tenant's users.
            anonymous_concurrent_requests: usize = 32, 1..=1_000_000;
            /// Of those, requests from one client address at once (IPv6: one /64).
            anonymous_concurrent_per_client: usize = 8, 1..=1_000_000;
            /// Sustained requests per second without a valid API token (token bucket of
            /// `burst` requests; 0: no rate limit).
            anonymous_requests_per_second: u32 = 0, 0..=1_000_000;
            /// Of those, sustained requests per second from one client address (IPv6: one
            /// /64), in a token bucket of `burst` requests of its own; 0: no rate limit per
            /// client.
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
            /// Requests one component instance serves, one after another, before it is
            /// retired; what it keeps in memory lasts that long (within the tenant). 1: a fresh
            /// instance per request.
            requests_per_instance: u32 = 100, 1..=10_000;
            /// Sustained requests per second with a valid API token of this tenant (token
            /// bucket; 0: no rate limit).
            requests_per_second: u32 = 0, 0..=1_000_000;
            /// Requests the tenant may send at once above the sustained rate (the bucket's size).
            burst: u32 = 100, 0..=1_000_000;
            /// Guest CPU time all the tenant's requests together may use, in thousandths of a
            /// core (1000: one core), with up to a second of it at once; above it, its
            /// components are slowed down, so that they cannot starve other tenants or the
            /// device sessions.
            cpu_millicores: u32 = 1000, 1..=1_000_000;
        }
    };
}

/// Defines [`LimitOverrides`] and the range of each limit from the [table](crate::limit_table).
macro_rules! overrides {
    ($($(#[doc = $doc:expr])+ $name:ident: $ty:ty = $default:expr, $least:literal..=$most:expr;)+) => {
        /// Limits a tenant sets for itself; unset fields fall back to the server's `[limits]`.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LimitOverrides {
            $($(#[doc = $doc])+ #[serde(default, skip_serializing_if = "Option::is_none")] pub $name: Option<$ty>,)+
        }

        impl LimitOverrides {
            /// The range each limit must lie in: `(name, value, least, most)`.
            fn ranges(&self) -> Vec<(&'static str, Option<u64>, u64, u64)> {
                vec![$((stringify!($name), self.$name.map(|v| v as u64), $least, $most),)+]
            }
        }
    };
}

limit_table!(overrides);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_out_of_its_range_is_named_with_the_range() {
        assert_eq!(LimitOverrides::default().check(), Ok(()));
        let zero_memory = LimitOverrides { memory_mib: Some(0), ..Default::default() };
        assert_eq!(zero_memory.check(), Err("memory_mib: 0 is out of range; use 1 to 256".into()));
        let too_much = LimitOverrides { memory_mib: Some(MAX_MEMORY_MIB + 1), ..Default::default() };
        assert!(too_much.check().is_err());
        let largest =
            LimitOverrides { memory_mib: Some(MAX_MEMORY_MIB), cpu_millicores: Some(1), ..Default::default() };
        assert_eq!(largest.check(), Ok(()));
    }

    #[test]
    fn unset_limits_are_left_out_of_the_record() {
        let limits = LimitOverrides { burst: Some(5), ..Default::default() };
        assert_eq!(serde_json::to_value(&limits).unwrap(), serde_json::json!({ "burst": 5 }));
        assert!(serde_json::from_value::<LimitOverrides>(serde_json::json!({ "bursts": 5 })).is_err());
    }
}

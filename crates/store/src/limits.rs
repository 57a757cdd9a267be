//! A tenant's own resource limits as stored ([`LimitOverrides`]), and the one table every
//! limit is defined in ([`limit_table!`](crate::limit_table)): its name, type, default and
//! range. The store checks a tenant's limits against their ranges; the host makes its
//! server-wide defaults and resolves a tenant's limits from the same table
//! (`waedge::limits::Limits`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};
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
            /// Sustained messages per minute one device of the tenant may send (token bucket
            /// of `send_burst` messages; 0: no limit). More get 429: WhatsApp bans accounts
            /// that send in bulk.
            sends_per_minute: u32 = 60, 0..=1_000_000;
            /// Messages one device may send at once above its sustained rate.
            send_burst: u32 = 20, 1..=1_000_000;
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
            $($(#[doc = $doc])+ #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole")]
                pub $name: Option<$ty>,)+
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

/// Reads a limit: a whole number, which JSON Schema 2020-12 (the admin API's document) lets a
/// client write as a float with no fraction, `72.0` as well as `72`; `72.5`, a negative number,
/// one too large for the limit's type and `null` are refused, saying what was given.
fn whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    /// Visits one number as a `T`.
    struct Whole<T>(PhantomData<T>);

    impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number (such as 72 or 72.0)")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            let unsigned = u64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))?;
            self.visit_u64(unsigned)
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
            // 2^64 is exactly representable; every whole float below it converts exactly.
            if value.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&value) {
                self.visit_u64(value as u64)
            } else {
                Err(E::invalid_value(Unexpected::Float(value), &self))
            }
        }
    }

    deserializer.deserialize_any(Whole(PhantomData)).map(Some)
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

    #[test]
    fn a_limit_written_as_a_float_without_fraction_is_that_whole_number() {
        let read = |text: &str| serde_json::from_str::<LimitOverrides>(text).map_err(|e| e.to_string());
        let limits = read(r#"{"memory_mib": 72.0, "burst": 5, "max_tables": 1e3, "cache_ttl_seconds": -0.0}"#);
        let expected = LimitOverrides {
            memory_mib: Some(72),
            burst: Some(5),
            max_tables: Some(1000),
            cache_ttl_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(limits, Ok(expected));
        assert_eq!(read(r#"{"burst": 4294967295.0}"#).map(|l| l.burst), Ok(Some(u32::MAX)));
        for refused in ["72.5", "-1", "-1.0", "4294967296", "4294967296.0", "1e20", "null", "\"72\""] {
            let error = read(&format!(r#"{{"burst": {refused}}}"#)).expect_err(refused);
            assert!(error.contains("expected a whole number"), "{refused}: {error}");
        }
    }
}

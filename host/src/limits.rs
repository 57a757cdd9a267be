//! Per-tenant resource limits as the host enforces them: the server's defaults ([`Limits`],
//! the file's `[limits]`) and a tenant's limits resolved against them. Each limit's name, type,
//! default and range come from one table, `waedge_store::limit_table!`, from which the store
//! also makes the limits a tenant sets for itself ([`LimitOverrides`]) and their checks.

use serde::Deserialize;
use waedge_store::limits::LimitOverrides;

/// Defines [`Limits`] (every limit with its default) and its resolution from the table.
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

        impl Limits {
            /// These limits with a tenant's `overrides` applied.
            pub fn overridden(self, overrides: &LimitOverrides) -> Limits {
                Limits { $($name: overrides.$name.unwrap_or(self.$name),)+ }
            }

            /// Every limit set, as overrides (for checking the file's `[limits]`).
            pub fn as_overrides(&self) -> LimitOverrides {
                LimitOverrides { $($name: Some(self.$name),)+ }
            }
        }
    };
}

waedge_store::limit_table!(limits);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_overrides_only_the_limits_it_sets() {
        let defaults = Limits::default();
        let overrides = LimitOverrides { memory_mib: Some(32), burst: Some(0), ..Default::default() };
        let limits = defaults.overridden(&overrides);
        assert_eq!((limits.memory_mib, limits.burst), (32, 0));
        assert_eq!(Limits { memory_mib: defaults.memory_mib, burst: defaults.burst, ..limits }, defaults);
        assert_eq!(defaults.as_overrides().check(), Ok(()), "the defaults lie in their ranges");
        assert_eq!(Limits::default().overridden(&defaults.as_overrides()), defaults);
    }
}

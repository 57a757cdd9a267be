//! The built-in components, compiled by `build.rs` from the guest crates under `components/`
//! and embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/builtin_components.rs"));

/// The component bytes of the built-in named `name` (e.g. `devices-api`).
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTIN_COMPONENTS.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// The names of every built-in component.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN_COMPONENTS.iter().map(|(name, _)| *name)
}

//! The test components of `tests/guests/` and the example plugins of `components/examples/`,
//! built by this crate's build script.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The component built from the guest crate `name`, e.g. `probe` or `hello`.
pub fn get(name: &str) -> &'static [u8] {
    GUESTS
        .iter()
        .find(|(guest, _)| *guest == name)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no test guest `{name}`"))
}

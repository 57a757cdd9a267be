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

/// `component` with a custom section `note` holding `note` appended: the same component as
/// another version (another SHA-256), for swapping between versions.
pub fn with_note(component: &[u8], note: &str) -> Vec<u8> {
    let name = b"note";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    let mut bytes = component.to_vec();
    bytes.push(0); // custom section id
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    bytes
}

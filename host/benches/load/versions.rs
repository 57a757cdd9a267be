//! Distinct versions of the built-in devices API for tenants to deploy as their own: the same
//! component with a custom section appended, so each has its own hash and its own compiled
//! artefact while it behaves exactly like the built-in.

/// The custom section's name.
const SECTION: &str = "waedge-bench";

/// The built-in devices API with a custom section holding `tag`.
pub fn devices_api(tag: &str) -> Vec<u8> {
    let builtin = waedge::runtime::builtin::get("devices-api").expect("waedge embeds the devices API");
    let mut content = leb128(SECTION.len());
    content.extend_from_slice(SECTION.as_bytes());
    content.extend_from_slice(tag.as_bytes());
    let mut component = builtin.to_vec();
    component.push(0); // section id 0: custom
    component.extend(leb128(content.len()));
    component.extend(content);
    component
}

/// `n` as unsigned LEB128.
fn leb128(mut n: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(low);
            return bytes;
        }
        bytes.push(low | 0x80);
    }
}

//! Builds the test components under `tests/guests/` (hostile ones, for the sandbox tests) and
//! the example plugins under `components/examples/` into WebAssembly components the tests
//! deploy; see `waedge_e2e::guests`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().and_then(|tests| tests.parent()).expect("tests/e2e lives in the workspace");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let guests = waedge_guest_toolchain::build(workspace, &["tests/guests", "components/examples"], &out_dir);
    let mut table = String::from("/// Every test component: (name, component bytes).\n");
    table.push_str("static GUESTS: &[(&str, &[u8])] = &[\n");
    for guest in &guests {
        writeln!(table, "    ({:?}, include_bytes!({:?})),", guest.name, guest.component.display().to_string())
            .unwrap();
    }
    table.push_str("];\n");
    fs::write(out_dir.join("guests.rs"), table).expect("OUT_DIR is writable");
}

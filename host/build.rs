//! Builds every guest crate under `components/` into a WebAssembly component and embeds the
//! result in the host as its built-in components, so `cargo build` is the only step. The
//! building is `waedge-guest-toolchain`'s (components/toolchain).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("host/ lives in the workspace");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let guests = waedge_guest_toolchain::build(workspace, &["components"], &out_dir);
    let mut table = String::from("/// Every built-in component: (name, component bytes).\n");
    table.push_str("pub(crate) static BUILTIN_COMPONENTS: &[(&str, &[u8])] = &[\n");
    for guest in &guests {
        writeln!(table, "    ({:?}, include_bytes!({:?})),", guest.name, guest.component.display().to_string())
            .unwrap();
    }
    table.push_str("];\n");
    fs::write(out_dir.join("builtin_components.rs"), table).expect("OUT_DIR is writable");
}

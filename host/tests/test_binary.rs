//! The binary the live tests start is the one with the `wa-sim` feature, whatever else was
//! built in the same target directory before.
//!
//! Cargo names a binary after its `[[bin]]` target, and leaves out a target whose
//! `required-features` are off. So the property holds when the live tests run the
//! `waedge-sim` target, that target needs `wa-sim`, and the plain `waedge` target (what
//! `cargo build` and `scripts/run` make) needs nothing: a default `cargo build --bin waedge`
//! then never writes the file the live tests start. This reads the manifest as cargo does
//! (`cargo metadata`, no build) rather than building the default variant a second time, which
//! rebuilt the WhatsApp client and the host and cost CI a quarter of an hour.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{Waedge, write_config};

/// The `bin` targets of the `waedge` package as cargo resolves its manifest: name and
/// required features.
fn waedge_binaries() -> Vec<(String, Vec<String>)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args(["metadata", "--locked", "--offline", "--no-deps", "--format-version", "1"])
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata answers JSON");
    let package = metadata["packages"]
        .as_array()
        .expect("a package list")
        .iter()
        .find(|package| package["name"] == "waedge")
        .expect("the waedge package");
    let strings = |value: &Value| -> Vec<String> {
        value.as_array().map(|list| list.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
    };
    package["targets"]
        .as_array()
        .expect("a target list")
        .iter()
        .filter(|target| strings(&target["kind"]) == ["bin"])
        .map(|target| (target["name"].as_str().unwrap().to_owned(), strings(&target["required-features"])))
        .collect()
}

#[test]
fn the_live_tests_run_a_binary_a_default_build_never_writes() {
    let binary = Path::new(support::WAEDGE);
    assert_eq!(binary.file_stem().unwrap(), "waedge-sim", "the live tests must run the wa-sim build");

    let mut binaries = waedge_binaries();
    binaries.sort();
    assert_eq!(
        binaries,
        [("waedge".to_owned(), vec![]), ("waedge-sim".to_owned(), vec!["wa-sim".to_owned()])],
        "`waedge` must build by default and `waedge-sim` only with the wa-sim feature"
    );
}

#[test]
fn the_binary_the_live_tests_run_connects_to_a_wa_sim() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: devices would only fail to connect, and there are none.
    let config = write_config(dir.path(), "whatsapp_server = \"ws://127.0.0.1:9/ws\"");
    let gateway = Waedge::start(&config);
    assert!(gateway.log().contains("not WhatsApp (test build)"), "log:\n{}", gateway.log());
    std::thread::sleep(Duration::from_millis(200));
    let log = gateway.stop();
    assert!(log.contains("waedge stopped"), "log:\n{log}");
}

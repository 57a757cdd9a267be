//! The binary the live tests start is the one with the `wa-sim` feature, whatever else was
//! built in the same target directory before: a default `cargo build --bin waedge` (which
//! makes cargo copy the default variant to `target/*/waedge`) leaves it alone.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Waedge, write_config};

/// Builds the default `waedge` into this test build's target directory, as a contributor's
/// `cargo build --bin waedge` would.
fn build_default_waedge(target_dir: &Path, profile: &str) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args(["build", "--locked", "--bin", "waedge", "--profile", profile, "--target-dir"])
        .arg(target_dir)
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo build --bin waedge failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_default_build_of_waedge_does_not_change_the_binary_the_live_tests_run() {
    let binary = Path::new(support::WAEDGE);
    assert_eq!(binary.file_stem().unwrap(), "waedge-sim", "the live tests must run the wa-sim build");
    let profile_dir = binary.parent().expect("the profile directory");
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    build_default_waedge(profile_dir.parent().expect("the target directory"), profile);

    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: devices would only fail to connect, and there are none.
    let config = write_config(dir.path(), "whatsapp_server = \"ws://127.0.0.1:9/ws\"");

    // What cargo copied last to target/*/waedge is the default build: it refuses wa-sim...
    let default = Command::new(profile_dir.join("waedge"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .expect("the default waedge runs");
    let stderr = String::from_utf8_lossy(&default.stderr);
    assert!(!default.status.success(), "the default build accepted `whatsapp_server`:\n{stderr}");
    assert!(stderr.contains("this build only connects to WhatsApp"), "unexpected refusal:\n{stderr}");

    // ...while the binary the live tests start still serves with it.
    let gateway = Waedge::start(&config);
    assert!(gateway.log().contains("not WhatsApp (test build)"), "log:\n{}", gateway.log());
    std::thread::sleep(Duration::from_millis(200));
    let log = gateway.stop();
    assert!(log.contains("waedge stopped"), "log:\n{log}");
}

//! The release build's feature set: no `danger-` feature of the WhatsApp client may be on
//! unless the test-only `wa-sim` feature asks for it, and the benchmarks' native baseline
//! (feature `bench`) is not in it. The client is a dependency of `waedge-device` only, whose
//! `wa-sim` feature is the one that turns a `danger-` feature on; `waedge`'s `wa-sim` turns
//! that on.

use std::path::Path;
use std::process::Command;

/// `cargo tree` of the features whatsapp-rust and wacore get in a build of the workspace with
/// `selection` (e.g. `-p waedge`), normal dependencies only: what `cargo build` compiles.
fn client_features(selection: &[&str]) -> String {
    features_of(&["whatsapp-rust", "wacore"], selection)
}

/// `cargo tree` of the features `crates` get in a build of the workspace with `selection`,
/// normal dependencies only.
fn features_of(crates: &[&str], selection: &[&str]) -> String {
    let inverted: Vec<&str> = crates.iter().flat_map(|name| ["-i", name]).collect();
    cargo_tree(&[&["-e", "features", "--edges", "normal"], &inverted[..], selection].concat())
}

/// The output of `cargo tree` with `args`, in the workspace.
fn cargo_tree(args: &[&str]) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let output =
        Command::new(env!("CARGO")).current_dir(workspace).arg("tree").args(args).output().expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn default_features_enable_no_danger_feature() {
    let tree = client_features(&["-p", "waedge"]);
    assert!(tree.contains("whatsapp-rust feature \"signal\""), "unexpected tree:\n{tree}");
    assert!(!tree.contains("danger-"), "a danger feature is on in the release build:\n{tree}");
}

#[test]
fn a_workspace_build_enables_no_danger_feature() {
    // The end-to-end tests enable `wa-sim` as a dev-dependency only, out of `cargo build`.
    let tree = client_features(&[]);
    assert!(tree.contains("whatsapp-rust feature \"signal\""), "unexpected tree:\n{tree}");
    assert!(!tree.contains("danger-"), "a danger feature is on in `cargo build`:\n{tree}");
}

#[test]
fn the_device_crate_enables_no_danger_feature_by_default() {
    let tree = client_features(&["-p", "waedge-device"]);
    assert!(tree.contains("whatsapp-rust feature \"signal\""), "unexpected tree:\n{tree}");
    assert!(!tree.contains("danger-"), "a danger feature is on in waedge-device's default build:\n{tree}");
}

#[test]
fn the_wa_sim_feature_is_what_enables_the_danger_feature() {
    let tree = client_features(&["-p", "waedge", "--features", "wa-sim"]);
    assert!(tree.contains("feature \"danger-skip-cert-chain-verify\""), "unexpected tree:\n{tree}");
    assert!(tree.contains("waedge-device feature \"wa-sim\""), "not through waedge-device's wa-sim:\n{tree}");
}

#[test]
fn only_the_device_crate_depends_on_the_whatsapp_client() {
    // The crates that name whatsapp-rust themselves, of every kind of dependency.
    let tree = cargo_tree(&[
        "-i",
        "whatsapp-rust",
        "--depth",
        "1",
        "-e",
        "normal,build,dev",
        "--workspace",
        "--prefix",
        "none",
    ]);
    let dependents: Vec<&str> = tree.lines().skip(1).filter_map(|line| line.split(' ').next()).collect();
    assert!(dependents.contains(&"waedge-device"), "unexpected tree:\n{tree}");
    for host_crate in ["waedge", "waedge-store", "waedge-contract"] {
        assert!(!dependents.contains(&host_crate), "{host_crate} depends on whatsapp-rust itself:\n{tree}");
    }
}

#[test]
fn the_native_baseline_is_only_in_benchmark_builds() {
    let tree = features_of(&["waedge"], &[]);
    assert!(tree.contains("waedge v"), "unexpected tree:\n{tree}");
    assert!(!tree.contains("waedge feature \"bench\""), "the bench feature is on in `cargo build`:\n{tree}");
    let tree = features_of(&["waedge"], &["-p", "waedge", "--features", "bench"]);
    assert!(tree.contains("waedge feature \"bench\""), "unexpected tree:\n{tree}");
}

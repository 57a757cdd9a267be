//! The release build's feature set: no `danger-` feature of the WhatsApp client may be on
//! unless the test-only `wa-sim` feature asks for it, and the benchmarks' native baseline
//! (feature `bench`) is not in it.

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
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args(["tree", "-e", "features", "--edges", "normal"])
        .args(crates.iter().flat_map(|name| ["-i", name]))
        .args(selection)
        .output()
        .expect("cargo tree runs");
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
fn the_wa_sim_feature_is_what_enables_the_danger_feature() {
    let tree = client_features(&["-p", "waedge", "--features", "wa-sim"]);
    assert!(tree.contains("feature \"danger-skip-cert-chain-verify\""), "unexpected tree:\n{tree}");
}

#[test]
fn the_native_baseline_is_only_in_benchmark_builds() {
    let tree = features_of(&["waedge"], &[]);
    assert!(tree.contains("waedge v"), "unexpected tree:\n{tree}");
    assert!(!tree.contains("waedge feature \"bench\""), "the bench feature is on in `cargo build`:\n{tree}");
    let tree = features_of(&["waedge"], &["-p", "waedge", "--features", "bench"]);
    assert!(tree.contains("waedge feature \"bench\""), "unexpected tree:\n{tree}");
}

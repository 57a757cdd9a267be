//! The short run of the coverage-guided fuzz targets (`scripts/fuzz`, see `fuzz/README.md`)
//! as part of the test command: every target builds and runs for a few seconds without a
//! finding.

use std::path::Path;
use std::process::Command;

/// What `scripts/fuzz` exits with when it cannot run at all: no cargo-fuzz, no C++ compiler.
const CANNOT_RUN: i32 = 77;

/// The fuzz targets of `fuzz/Cargo.toml`.
const TARGETS: [&str; 2] = ["jid", "query"];

#[test]
#[ignore = "needs a C++ compiler and cargo-fuzz: scripts/test runs it where scripts/setup --test-tools finds them"]
fn every_fuzz_target_runs_without_a_finding() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = Command::new(root.join("scripts/fuzz")).current_dir(&root).output().expect("scripts/fuzz starts");
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_ne!(run.status.code(), Some(CANNOT_RUN), "scripts/fuzz cannot run:\n{stderr}");
    assert!(run.status.success(), "scripts/fuzz failed ({}):\n{stdout}\n{stderr}", run.status);
    for target in TARGETS {
        let report = stdout.lines().find(|line| line.starts_with(&format!("fuzz: {target} ok: ")));
        let report = report.unwrap_or_else(|| panic!("no report of target {target}:\n{stdout}\n{stderr}"));
        let inputs: u64 = report["fuzz: ".len() + target.len() + " ok: ".len()..]
            .split(' ')
            .next()
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("no input count in {report:?}"));
        assert!(inputs >= 1_000, "{target} ran {inputs} inputs only: {report}");
        eprintln!("{report}");
    }
}

//! The tests that run the real binary against wa-sim (`live_operator`, `test_binary`) need the
//! test-only `wa-sim` feature, which `cargo test --workspace` (and so `scripts/test`) turns
//! on. A `cargo test -p waedge` without it leaves them out; this test says so instead of
//! letting them vanish: it is reported as ignored, and fails when run.

#[cfg(not(feature = "wa-sim"))]
#[test]
#[ignore = "the live binary tests need the wa-sim feature: cargo test -p waedge --features wa-sim (or scripts/test)"]
fn the_live_binary_tests_need_the_wa_sim_feature() {
    panic!("live_operator and test_binary did not run: add --features wa-sim, or run scripts/test");
}

//! `waedge` as the live tests and the load benchmark run it: the same command, built with the
//! test-only `wa-sim` feature so that `whatsapp_server` can point devices at wa-sim.
//!
//! It is a binary of its own name so that cargo never mixes it up with a default build of
//! `waedge` in the same target directory; `cargo build` and release builds leave it out
//! (`required-features`), so they still never carry the feature.

fn main() -> std::process::ExitCode {
    waedge::cli::main()
}

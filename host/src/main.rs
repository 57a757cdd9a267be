//! The `waedge` command: run the gateway, and manage a running one through its admin API.

fn main() -> std::process::ExitCode {
    waedge::cli::main()
}

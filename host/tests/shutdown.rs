//! A SIGTERM stops `waedge serve` cleanly (exit status 0, sessions flushed) whenever it
//! arrives — the moment the gateway says it listens included, as an orchestrator that stops a
//! container right after its start does. (The signal used to be listened for only after that
//! line, so a SIGTERM in between killed the process; the window is short, so the test tries
//! several times.)

mod support;

use support::{Waedge, write_config};

#[test]
fn a_sigterm_the_moment_the_gateway_listens_stops_it_cleanly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "");
    for _ in 0..10 {
        // `stop` sends SIGTERM at once and asserts a clean exit.
        let log = Waedge::start(&config).stop();
        assert!(log.contains("shutting down"), "the gateway saw the signal: {log}");
    }
}

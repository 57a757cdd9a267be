//! No server outlives its test process: a process killed with SIGKILL (no destructor runs)
//! leaves no postmaster and no directory behind, because each server's watchdog stops it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the helper starts its line with the postmaster's pid and the server's directory.
const SERVING: &str = "serving:";
/// How long a watchdog may take to stop a server and delete its files: the 5 s before a
/// SIGKILL, and a margin for a loaded machine.
const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(15);

#[test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
fn a_killed_test_process_leaves_no_server_behind() {
    let mut helper = Command::new(env!("CARGO_BIN_EXE_postgres-until-killed"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the helper starts");
    let line = BufReader::new(helper.stdout.take().unwrap())
        .lines()
        .map(|line| line.unwrap())
        .find(|line| line.starts_with(SERVING))
        .expect("the helper exited without starting a server (its stderr above says why)");
    let (pid, dir) = line[SERVING.len()..].trim().split_once(' ').unwrap();
    let (pid, dir): (u32, PathBuf) = (pid.parse().unwrap(), PathBuf::from(dir));
    assert!(runs(pid) && dir.exists(), "the helper's server {pid} in {} is not up", dir.display());
    helper.kill().unwrap(); // SIGKILL: no destructor runs, not even the server's Drop.
    helper.wait().unwrap();
    assert_stops_within(WATCHDOG_TIMEOUT, pid, &dir);
}

/// Fails unless, within `timeout`, the postmaster `pid` has exited and `dir` is gone; a
/// postmaster still running then is killed, not to outlive the failed test.
fn assert_stops_within(timeout: Duration, pid: u32, dir: &Path) {
    let deadline = Instant::now() + timeout;
    loop {
        let (running, exists) = (runs(pid), dir.exists());
        if !running && !exists {
            return;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) touches no memory of ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!(
                "{}s on, the postmaster {pid} runs: {running}, {} exists: {exists}",
                timeout.as_secs(),
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the process `pid` runs. An exited one that nobody reaps (an orphan, under an init
/// that does not reap them) stays a zombie, which kill(2) still finds, but /proc tells apart.
fn runs(pid: u32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    exists && !zombie
}

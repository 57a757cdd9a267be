//! A process that stops the server and deletes its files once the test process has let go of
//! it, however the test process ended: `Drop` never runs for a server in a `static`, nor in a
//! process killed by SIGKILL.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

/// The watchdog, run by `sh -c` with the postmaster's pid (`$1`), the server's temporary
/// directory (`$2`) and how many times to check on the postmaster before SIGKILL (`$3`).
///
/// `read` returns at the first line or at the end of stdin, a pipe whose write end only the
/// [`Watchdog`] holds: the end comes when the test process exits, whichever way. The line
/// `stopped` comes from `Drop`, which stops the server and deletes the directory itself. The
/// rest mirrors `Postmaster::stop`: immediate shutdown, SIGKILL if the postmaster outlasts the
/// checks. `kill -0` succeeds on a zombie too, which an init that does not reap orphans leaves
/// for good: `/proc` tells it apart, where there is one.
const SCRIPT: &str = r#"
read -r line
[ "$line" = stopped ] && exit 0
running() {
    kill -0 "$1" 2>/dev/null && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null
}
kill -QUIT "$1" 2>/dev/null
checks=0
while running "$1" && [ "$checks" -lt "$3" ]; do
    sleep 0.1
    checks=$((checks + 1))
done
running "$1" && kill -KILL "$1" 2>/dev/null
rm -rf "$2"
"#;

/// How often the watchdog checks on the postmaster it stops (its `sleep 0.1`).
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The watchdog process of one postmaster. Dropping it dismisses the watchdog: the owner stops
/// the server and deletes the directory itself.
#[derive(Debug)]
pub(crate) struct Watchdog(Child);

impl Watchdog {
    /// Starts a watchdog that, once this process has exited, stops the postmaster `pid`
    /// (waiting `stop_timeout` before SIGKILL) and deletes `dir`.
    ///
    /// It runs as this process's user, so under root it may signal the postmaster that runs as
    /// `nobody` and delete the files `nobody` owns. Its process group is its own, so a Ctrl-C
    /// in a terminal, which signals the foreground group, ends the test process without it.
    pub(crate) fn spawn(pid: u32, dir: &Path, stop_timeout: Duration) -> Result<Watchdog> {
        let checks = stop_timeout.as_millis() / CHECK_INTERVAL.as_millis();
        let mut sh = Command::new("/bin/sh");
        // std creates the stdin pipe close-on-exec, and only the child's copy of the read end
        // (its stdin) survives its exec: the write end stays with this process alone, never
        // inherited by a child spawned later (the next postmaster, `createdb`), which would
        // keep the watchdog waiting after this process has exited.
        sh.args(["-c", SCRIPT, "sh", &pid.to_string()])
            .arg(dir)
            .arg(checks.to_string())
            .stdin(Stdio::piped())
            // Not the test process's stdout or stderr: a reader of those (a pipe to the test
            // runner) would wait for the watchdog to exit too.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = sh.spawn().context("starting the PostgreSQL server's watchdog (/bin/sh)")?;
        Ok(Watchdog(child))
    }
}

impl Drop for Watchdog {
    /// Tells the watchdog to leave the server alone and waits for it to exit, so that it does
    /// not linger as a zombie.
    fn drop(&mut self) {
        if let Some(mut stdin) = self.0.stdin.take() {
            // Fails only if the watchdog has exited already: there is nothing to dismiss then.
            let _ = stdin.write_all(b"stopped\n");
        }
        let _ = self.0.wait();
    }
}

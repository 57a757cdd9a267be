//! Starts a throwaway PostgreSQL server, prints `serving: <postmaster pid> <directory>` and
//! waits to be killed: the process `tests/watchdog.rs` kills with SIGKILL, to see that the
//! server does not outlive it.

use std::io::Write;

fn main() -> anyhow::Result<()> {
    let server = waedge_test_postgres::Postgres::start()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "serving: {} {}", server.pid(), server.dir().display())?;
    stdout.flush()?;
    loop {
        std::thread::park();
    }
}

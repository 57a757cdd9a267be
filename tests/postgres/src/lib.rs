//! A throwaway PostgreSQL server for tests.
//!
//! [`Postgres::start`] runs `initdb` into a fresh temporary directory and starts `postgres` on a
//! free loopback port; dropping the [`Postgres`] stops the server and deletes the directory.
//! The server trusts every connection, as its superuser `waedge`, and trades durability for
//! speed (`fsync`, `synchronous_commit` and `full_page_writes` off). Several tests can share
//! one server, each with a database of its own; [`Postgres::shared`] is one server for the whole
//! test process, started by the first test that asks for it:
//!
//! ```no_run
//! let server = waedge_test_postgres::Postgres::shared()?;
//! let url = server.create_database()?; // postgres://waedge@127.0.0.1:<port>/test_1
//! # anyhow::Ok(())
//! ```
//!
//! `start` (and the first `shared`) blocks for about a second (mostly `initdb`): from async
//! tests, call it through `tokio::task::spawn_blocking`. The binaries come from Debian's
//! `postgresql` package (`/usr/lib/postgresql/<major>/bin`, the highest major), else from
//! `pg_config --bindir`, else from `PATH`; `scripts/setup --test-tools` installs the package.
//! `initdb` refuses to run as root, so under root the server runs as the unprivileged user
//! `nobody`.
//!
//! No server outlives its test process. Dropping a [`Postgres`] stops the server; so does, for
//! one never dropped (in a `static`, such as the shared one) or in a process killed by SIGKILL,
//! a watchdog process: once the test process has exited, whichever way, it stops the server and
//! deletes its directory. Only a process killed in the instant between starting the postmaster
//! and its watchdog, or during `initdb` (which leaves files but no server), escapes it.

#![deny(missing_docs)]

mod bin_dir;
mod server_user;
mod watchdog;

use std::fs::{self, File, Permissions};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use bin_dir::BinDir;
use server_user::ServerUser;
use watchdog::Watchdog;

/// The only address the server listens on.
const HOST: &str = "127.0.0.1";
/// The superuser `initdb` creates; every connection is trusted.
const USER: &str = "waedge";
/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the postmaster gets to exit after SIGQUIT, before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often startup and shutdown are checked on.
const POLL: Duration = Duration::from_millis(20);
/// Starts tried: the free port is found by binding port 0 and letting it go, so another
/// process may take it before the server binds it.
const PORT_ATTEMPTS: u32 = 5;
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

/// A PostgreSQL server of its own, in a temporary directory, listening on `127.0.0.1` only.
///
/// Dropping it stops the server (immediate shutdown: SIGQUIT, SIGKILL after a few seconds) and
/// deletes the directory with the data; its watchdog does the same when the test process exits
/// without dropping it.
#[derive(Debug)]
pub struct Postgres {
    bin: BinDir,
    port: u16,
    /// Databases created so far, for their names.
    databases: AtomicU32,
    postmaster: Postmaster,
    /// Dropped after the server is stopped and before the directory is deleted, so it neither
    /// signals a postmaster that is gone nor deletes files along with `dir`.
    _watchdog: Watchdog,
    /// Holds the data, the sockets and the server log; deleted when dropped, after `drop`.
    dir: TempDir,
}

impl Postgres {
    /// Creates a database cluster in a new temporary directory and starts a server on it,
    /// returning once the server accepts connections (at most 30 s).
    ///
    /// Fails, with what to do, if PostgreSQL is not installed, and with the end of the
    /// server's log if it does not come up.
    pub fn start() -> Result<Postgres> {
        let bin = BinDir::find()?;
        let user = ServerUser::for_this_process();
        let dir = tempfile::Builder::new()
            .prefix("waedge-postgres-")
            .permissions(Permissions::from_mode(0o700))
            .tempdir()
            .context("creating a temporary directory for a PostgreSQL server (is TMPDIR writable?)")?;
        let sockets = dir.path().join("sockets");
        fs::create_dir(&sockets).with_context(|| format!("creating {}", sockets.display()))?;
        if let Some(user) = &user {
            user.check_can_reach(dir.path())?;
            user.give(dir.path())?;
            user.give(&sockets)?;
        }
        let data = dir.path().join("data");
        init(&bin, user.as_ref(), &data)?;

        let log = log_path(dir.path());
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let mut command = bin.command("postgres");
            command
                .arg("-D")
                .arg(&data)
                .args(["-c", &format!("listen_addresses={HOST}"), "-c", &format!("port={port}")])
                .args(["-c", &format!("unix_socket_directories={}", sockets.display())])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
                .args(["-c", "max_connections=300"])
                .current_dir(dir.path())
                .stdin(Stdio::null());
            let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            command.stderr(log_file.try_clone().context("duplicating the server log's descriptor")?).stdout(log_file);
            if let Some(user) = &user {
                user.run_as(&mut command);
            }
            let child = command.spawn().with_context(|| format!("starting {:?}", command.get_program()))?;
            let mut postmaster = Postmaster(child);
            // Watches from before the server is ready, so that a test process killed while it
            // starts leaves no server either.
            let watchdog = Watchdog::spawn(postmaster.0.id(), dir.path(), STOP_TIMEOUT)?;
            match postmaster.wait_until_ready(&bin, port, &data)? {
                Startup::Ready => {
                    return Ok(Postgres {
                        bin,
                        port,
                        databases: AtomicU32::new(0),
                        postmaster,
                        _watchdog: watchdog,
                        dir,
                    });
                }
                Startup::Exited(_) if attempt < PORT_ATTEMPTS && log_tail(&log).contains("could not bind") => {
                    attempt += 1;
                }
                Startup::Exited(status) => bail!(
                    "the PostgreSQL server exited while starting ({status}{}); the end of its log:\n{}",
                    running_as(user.as_ref()),
                    log_tail(&log)
                ),
                Startup::TimedOut => {
                    drop(postmaster);
                    bail!(
                        "the PostgreSQL server did not accept connections on port {port} within {}s \
                         (is the machine overloaded?); the end of its log:\n{}",
                        READY_TIMEOUT.as_secs(),
                        log_tail(&log)
                    )
                }
            }
        }
    }

    /// The server of this test process, for suites that want a database per test
    /// ([`create_database`](Self::create_database)) without a server per test.
    ///
    /// The first call starts it (see [`start`](Self::start)) and blocks, as do calls from other
    /// threads meanwhile; later calls return the same server, or fail with the same message if
    /// it did not start (it is not tried again). Kept in a `static`, it is never dropped: its
    /// watchdog stops it and deletes its files once the test process has exited.
    pub fn shared() -> Result<&'static Postgres> {
        // A message, not the error: `anyhow::Error` cannot be cloned for each caller.
        static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| Postgres::start().map_err(|error| format!("{error:#}")));
        shared.as_ref().map_err(|message| anyhow!("{message}"))
    }

    /// The postmaster's process id (the harness's own tests watch it).
    pub fn pid(&self) -> u32 {
        self.postmaster.0.id()
    }

    /// The temporary directory with the server's data, sockets and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The TCP port the server listens on, on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL of `database` on this server, as the superuser `waedge` (no password):
    /// `postgres://waedge@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@{HOST}:{}/{database}", self.port)
    }

    /// Creates a new, empty database with a name unique on this server (`test_1`, `test_2`, …)
    /// and returns its [`url`](Self::url).
    ///
    /// Safe to call from many threads at once: each call takes a name of its own (an atomic
    /// counter) and runs a `createdb` of its own (`CREATE DATABASE`s may run concurrently).
    pub fn create_database(&self) -> Result<String> {
        let name = format!("test_{}", self.databases.fetch_add(1, Ordering::Relaxed) + 1);
        let mut createdb = self.bin.command("createdb");
        createdb.args(["-h", HOST, "-p", &self.port.to_string(), "-U", USER, &name]).stdin(Stdio::null());
        let output = createdb.output().with_context(|| format!("running {:?}", createdb.get_program()))?;
        if !output.status.success() {
            bail!(
                "createdb {name} failed on the PostgreSQL server at port {} ({}): {}the end of the server log:\n{}",
                self.port,
                output.status,
                String::from_utf8_lossy(&output.stderr),
                log_tail(&log_path(self.dir.path()))
            );
        }
        Ok(self.url(&name))
    }
}

impl Drop for Postgres {
    /// Stops the server; the fields drop next, in order: the watchdog is dismissed, then the
    /// temporary directory is deleted.
    fn drop(&mut self) {
        self.postmaster.stop();
    }
}

/// The server log in the temporary directory `dir`.
fn log_path(dir: &Path) -> PathBuf {
    dir.join("server.log")
}

/// Runs `initdb` into `data`, which must not exist yet.
fn init(bin: &BinDir, user: Option<&ServerUser>, data: &Path) -> Result<()> {
    let mut initdb = bin.command("initdb");
    initdb
        .arg("-D")
        .arg(data)
        .args(["--auth=trust", "-U", USER, "--no-sync", "-E", "UTF8", "--locale=C"])
        .current_dir(data.parent().unwrap_or(data))
        .stdin(Stdio::null());
    if let Some(user) = user {
        user.run_as(&mut initdb);
    }
    let output = initdb.output().with_context(|| format!("running {:?}", initdb.get_program()))?;
    if !output.status.success() {
        bail!(
            "initdb failed ({}{}):\n{}{}",
            output.status,
            running_as(user),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A port on `127.0.0.1` that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((HOST, 0)).with_context(|| format!("finding a free port on {HOST}"))?;
    Ok(listener.local_addr().context("reading the free port's number")?.port())
}

/// `", running as <user>"` when the server runs as another user, for errors.
fn running_as(user: Option<&ServerUser>) -> String {
    user.map(|user| format!(", running as {}", user.name())).unwrap_or_default()
}

/// The last lines of the log at `path`, or why there are none.
fn log_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// How a start went.
enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// The server process; dropping it stops the server (so a failed start leaves none behind).
#[derive(Debug)]
struct Postmaster(Child);

impl Postmaster {
    /// Waits until the server has finished starting (its `postmaster.pid` says `ready`) and
    /// `pg_isready` sees it accept connections on `port`, or it exits, or time runs out. The
    /// pid file tells our server from another that holds `port`, which `pg_isready` cannot.
    fn wait_until_ready(&mut self, bin: &BinDir, port: u16, data: &Path) -> Result<Startup> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.0.try_wait().context("checking on the PostgreSQL server")? {
                return Ok(Startup::Exited(status));
            }
            if says_ready(data) && accepts_connections(bin, port)? {
                return Ok(Startup::Ready);
            }
            if Instant::now() >= deadline {
                return Ok(Startup::TimedOut);
            }
            sleep(POLL);
        }
    }
}

impl Postmaster {
    /// Stops the server: immediate shutdown (SIGQUIT), SIGKILL if it still runs a few seconds
    /// later. Does nothing once the server has exited.
    fn stop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        // Immediate shutdown: the data is thrown away, so there is nothing to checkpoint.
        // SAFETY: kill(2) touches no memory of ours; the child has not been reaped (try_wait
        // above), so its pid cannot belong to another process yet.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGQUIT) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            sleep(POLL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Postmaster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the status line of `postmaster.pid` (PostgreSQL 10 and later) says `ready`.
fn says_ready(data: &Path) -> bool {
    fs::read_to_string(data.join("postmaster.pid"))
        .is_ok_and(|pid_file| pid_file.lines().nth(7).map(str::trim) == Some("ready"))
}

fn accepts_connections(bin: &BinDir, port: u16) -> Result<bool> {
    let mut pg_isready = bin.command("pg_isready");
    pg_isready.args(["-q", "-h", HOST, "-p", &port.to_string(), "-t", "1"]).stdin(Stdio::null());
    let status = pg_isready.status().with_context(|| format!("running {:?}", pg_isready.get_program()))?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::thread;

    use super::*;

    /// The one row `psql` prints for `sql` on `database`.
    fn query(server: &Postgres, database: &str, sql: &str) -> String {
        let port = server.port.to_string();
        let output = server
            .bin
            .command("psql")
            .args(["-h", HOST, "-p", &port, "-U", USER, "-d", database, "-Atc", sql])
            .output()
            .expect("running psql");
        assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("psql prints UTF-8").trim().to_owned()
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn each_database_answers_with_its_own_name() {
        let server = Postgres::start().unwrap();
        let first = server.create_database().unwrap();
        let second = server.create_database().unwrap();
        assert_ne!(first, second);
        for url in [first, second] {
            let name = url.rsplit('/').next().unwrap();
            assert_eq!(url, format!("postgres://waedge@127.0.0.1:{}/{name}", server.port()));
            assert_eq!(query(&server, name, "select current_database()"), name);
        }
        // Under root the server runs as nobody, without root's supplementary groups.
        // SAFETY: geteuid(2) always succeeds and touches no memory of ours.
        if cfg!(target_os = "linux") && unsafe { libc::geteuid() } == 0 {
            let status = fs::read_to_string(format!("/proc/{}/status", server.postmaster.0.id())).unwrap();
            let ids = |field: &str| -> Vec<String> {
                let line = status.lines().find_map(|line| line.strip_prefix(field)).unwrap();
                line.split_whitespace().map(str::to_owned).collect()
            };
            assert!(!ids("Uid:").contains(&"0".to_owned()), "{status}");
            assert!(!ids("Gid:").contains(&"0".to_owned()), "{status}");
            assert_eq!(ids("Groups:"), Vec::<String>::new(), "{status}");
        }
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn dropping_stops_the_server_and_deletes_its_files() {
        let server = Postgres::start().unwrap();
        let (pid, port, dir) = (server.postmaster.0.id(), server.port(), server.dir.path().to_owned());
        assert!(TcpStream::connect((HOST, port)).is_ok());
        drop(server);
        // SAFETY: signal 0 only asks whether the process exists.
        let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!exists, "the postmaster {pid} still runs");
        assert!(TcpStream::connect((HOST, port)).is_err(), "port {port} still accepts connections");
        assert!(!dir.exists(), "{} is still there", dir.display());
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn servers_started_together_get_ports_of_their_own() {
        let starts = [std::thread::spawn(Postgres::start), std::thread::spawn(Postgres::start)];
        let servers = starts.map(|start| start.join().unwrap().unwrap());
        assert_ne!(servers[0].port(), servers[1].port());
        for server in &servers {
            let url = server.create_database().unwrap();
            assert_eq!(query(server, url.rsplit('/').next().unwrap(), "select 1"), "1");
        }
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn shared_is_one_server_for_the_whole_process() {
        let first = Postgres::shared().unwrap();
        let second = Postgres::shared().unwrap();
        assert!(std::ptr::eq(first, second));
        assert_eq!(first.port(), second.port());
        let creators: Vec<_> = (0..8)
            .map(|_| {
                thread::spawn(|| (0..2).map(|_| Postgres::shared()?.create_database()).collect::<Result<Vec<_>>>())
            })
            .collect();
        let mut urls: Vec<String> = creators.into_iter().flat_map(|creator| creator.join().unwrap().unwrap()).collect();
        for url in &urls {
            let name = url.rsplit('/').next().unwrap();
            assert_eq!(query(first, name, "select current_database()"), name);
        }
        urls.sort();
        urls.dedup();
        assert_eq!(urls.len(), 8 * 2);
    }
}

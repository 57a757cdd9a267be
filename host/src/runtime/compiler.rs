//! Compiling tenants' components in a child process, under a budget of CPU time and memory.
//!
//! A component is code a tenant chose; compiling it is work the tenant chose too, and a
//! component can be made to take Cranelift minutes and gigabytes (huge functions, many
//! locals, deep control flow). So a deployed component is compiled by a child process — this
//! same executable, started as `waedge compile-component` — whose CPU time (`RLIMIT_CPU`) and
//! address space (`RLIMIT_AS`) are capped, and which is killed when its wall-clock time runs
//! out as well. It compiles on one thread (a deploy takes one core, not all of them), and at
//! most [`COMPILES_AT_ONCE`] run at a time; more wait for their turn. The gateway loads what
//! the child wrote: the code of [`engine::compiler`](super::engine::compiler), which has the
//! settings of the gateway's engine. A compile over budget refuses the deploy with a reason
//! that names the budget.
//!
//! Components the operator provides (the built-ins, files named in the configuration) are
//! compiled in process.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::CompileBudget;

/// The subcommand that runs the child's side ([`serve_child`]).
pub const SUBCOMMAND: &str = "compile-component";

/// Compiles running at once; more wait for their turn. Each compiles on one thread, so
/// compiling takes at most this many cores, and this many budgets of memory.
pub const COMPILES_AT_ONCE: usize = 2;

/// Compiles components in child processes of `executable` (this program) under `budget`.
#[derive(Debug, Clone)]
pub struct IsolatedCompiler {
    executable: PathBuf,
    budget: CompileBudget,
    /// Compiles running now, and the wake-up of those waiting for their turn.
    running: Arc<(Mutex<usize>, Condvar)>,
}

/// The child's exit code when it could not compile the component (its reason on standard
/// error).
const REFUSED: i32 = 2;

impl IsolatedCompiler {
    /// A compiler running `executable compile-component` for each component.
    pub fn new(executable: PathBuf, budget: CompileBudget) -> Self {
        IsolatedCompiler { executable, budget, running: Arc::default() }
    }

    /// Compiles `bytes` in a child process, when fewer than [`COMPILES_AT_ONCE`] run, and
    /// loads the result into `engine`. Blocks: call it off the async workers.
    pub fn compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let code = {
            let _turn = self.turn();
            self.run_child(bytes)?
        };
        // SAFETY: `code` is what `Engine::precompile_component` wrote a moment ago, in a child
        // process of this same executable, through a pipe only this process holds: code of
        // this program's compiler, which is trusted as this process is. (`deserialize` checks
        // its header and that it was compiled with this engine's settings, not the code.)
        unsafe { Component::deserialize(engine, &code) }
    }

    /// Waits for a turn among the [`COMPILES_AT_ONCE`]; the turn ends when dropped.
    fn turn(&self) -> Turn<'_> {
        let (count, freed) = &*self.running;
        let mut running = count.lock().unwrap_or_else(|p| p.into_inner());
        while *running >= COMPILES_AT_ONCE {
            running = freed.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += 1;
        Turn(&self.running)
    }

    fn run_child(&self, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        let CompileBudget { cpu_seconds, memory_mib } = self.budget;
        let mut command = Command::new(&self.executable);
        command.arg(SUBCOMMAND).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let (cpu, memory) = (
            libc::rlimit { rlim_cur: cpu_seconds, rlim_max: cpu_seconds + 1 },
            libc::rlimit { rlim_cur: memory_mib << 20, rlim_max: memory_mib << 20 },
        );
        // SAFETY: between fork and exec the closure only calls setrlimit, which is
        // async-signal-safe, with pointers to values made before the fork.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_CPU, &cpu) != 0 || libc::setrlimit(libc::RLIMIT_AS, &memory) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            wasmtime::format_err!("cannot start the compiler process {}: {e}", self.executable.display())
        })?;
        let (mut stdin, mut stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
        let mut stderr = child.stderr.take().expect("piped");
        // The pipes are served by threads, so a child that neither reads nor writes cannot
        // block this one: it only has to wait out the deadline.
        let (status, code, errors) = std::thread::scope(|scope| {
            scope.spawn(move || stdin.write_all(bytes));
            let code = scope.spawn(move || {
                let mut code = Vec::new();
                stdout.read_to_end(&mut code).map(|_| code)
            });
            let errors = scope.spawn(move || {
                let mut text = String::new();
                let _ = stderr.by_ref().take(64 << 10).read_to_string(&mut text);
                text
            });
            // CPU time is the budget; wall-clock time on a busy machine may be longer.
            let status = wait(&mut child, Duration::from_secs(cpu_seconds * 4 + 10));
            (status, code.join(), errors.join().unwrap_or_default())
        });
        let over_cpu = || {
            wasmtime::format_err!(
                "compiling it took more than the {cpu_seconds} s of CPU time a deploy may use \
                 (`[compile] cpu_seconds`): make the component smaller or simpler, or raise the budget"
            )
        };
        let Some(status) = status? else {
            return Err(over_cpu());
        };
        if status.success() {
            return code
                .map_err(|_| wasmtime::format_err!("reading the compiler's output failed"))?
                .map_err(Into::into);
        }
        match status.signal() {
            _ if status.code() == Some(REFUSED) => Err(wasmtime::format_err!("{}", errors.trim())),
            Some(libc::SIGXCPU | libc::SIGKILL) => Err(over_cpu()),
            _ if errors.contains("memory allocation") => Err(wasmtime::format_err!(
                "compiling it needed more than the {memory_mib} MiB of memory a deploy may use \
                 (`[compile] memory_mib`): make the component smaller or simpler, or raise the budget"
            )),
            _ => Err(wasmtime::format_err!("the compiler process failed ({status}): {}", errors.trim())),
        }
    }
}

/// Waits for `child` to exit, at most `limit` (then it is killed: `None`). A child that
/// cannot be waited for is killed too.
fn wait(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                return outcome.map(|_| None);
            }
        }
    }
}

/// A compile's turn among the [`COMPILES_AT_ONCE`].
struct Turn<'a>(&'a (Mutex<usize>, Condvar));

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let (count, freed) = self.0;
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        freed.notify_one();
    }
}

/// The child's side: reads a component from standard input and writes its compiled code to
/// standard output; a component that does not compile exits with [`REFUSED`] and the
/// reason on standard error.
pub fn serve_child() -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading the component from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let compiled = super::engine::compiler().and_then(|engine| engine.precompile_component(&bytes));
    match compiled {
        Ok(code) => match std::io::stdout().lock().write_all(&code) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("writing the compiled component: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(REFUSED as u8)
        }
    }
}

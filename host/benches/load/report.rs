//! What a run found: one table per scenario (figure, baseline, measured, ratio, target,
//! result), printed as the scenario finishes and written as Markdown; and progress lines for
//! the long phases.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One figure against its baseline.
pub struct Row {
    figure: String,
    baseline: String,
    measured: String,
    ratio: Option<f64>,
    target: String,
    /// `PASS` or `MISS` against the target; `info` without one.
    result: &'static str,
}

impl Row {
    /// A figure for reference: its baseline, what was measured and their ratio.
    pub fn info(
        figure: impl Into<String>,
        baseline: impl Into<String>,
        measured: impl Into<String>,
        ratio: Option<f64>,
    ) -> Row {
        let (figure, baseline, measured) = (figure.into(), baseline.into(), measured.into());
        Row { figure, baseline, measured, ratio, target: "—".into(), result: "info" }
    }

    /// The same figure with a target, which it met (`pass`) or missed.
    pub fn target(self, target: &str, pass: bool) -> Row {
        Row { target: target.into(), result: if pass { "PASS" } else { "MISS" }, ..self }
    }
}

/// One scenario's results.
pub struct Table {
    /// The scenario's heading.
    pub title: String,
    /// Its figures.
    pub rows: Vec<Row>,
    /// Lines printed under the table: how it was measured, histograms.
    pub notes: Vec<String>,
}

impl Table {
    /// The table as Markdown: a heading, the table, the notes.
    pub fn markdown(&self) -> String {
        let mut text = format!(
            "## {}\n\n| figure | baseline | measured | ratio | target | result |\n|---|---|---|---|---|---|\n",
            self.title
        );
        for row in &self.rows {
            let ratio = row.ratio.map_or("—".to_string(), |r| format!("{r:.2}×"));
            let Row { figure, baseline, measured, target, result, .. } = row;
            writeln!(text, "| {figure} | {baseline} | {measured} | {ratio} | {target} | {result} |").unwrap();
        }
        for note in &self.notes {
            write!(text, "\n{note}\n").unwrap();
        }
        text
    }
}

/// Requests per second, as a cell.
pub fn per_second(rps: f64) -> String {
    rate(rps, "req/s")
}

/// A rate as a cell: `per_second` rounded, then its unit (`events/s`).
pub fn rate(per_second: f64, unit: &str) -> String {
    format!("{per_second:.0} {unit}")
}

/// A latency in microseconds, as a cell in milliseconds.
pub fn millis(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// A time as a cell: milliseconds below a second, seconds above.
pub fn elapsed(time: Duration) -> String {
    if time < Duration::from_secs(1) { millis(time.as_micros() as u64) } else { format!("{:.1} s", time.as_secs_f64()) }
}

/// A size in megabytes (10⁶ bytes), as a cell.
pub fn megabytes(mb: f64) -> String {
    format!("{mb:.1} MB")
}

/// The machine: cores, memory, kernel, date.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find(|line| line.starts_with("model name")).and_then(|line| line.split(':').nth(1));
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({}), {:.1} GiB memory, Linux {}, {}",
        model.map_or("unknown CPU", str::trim),
        memory_kib / (1024.0 * 1024.0),
        kernel.trim(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

/// Writes the report (`heading`, the machine line, every table) to `target/bench/FILE`.
pub fn write(heading: &str, tables: &[Table], file: &str) -> PathBuf {
    let mut text = format!("# {heading}\n\nMachine: {}\n", machine());
    for table in tables {
        write!(text, "\n{}", table.markdown()).unwrap();
    }
    let path = output(file);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}; make it writable", path.display()));
    path
}

/// Where the bench writes `file`: `bench/` in Cargo's target directory, which is
/// `CARGO_TARGET_DIR` or three levels above this executable (`target/PROFILE/deps/load-…`).
pub fn output(file: &str) -> PathBuf {
    let beside_exe = || {
        let exe = std::env::current_exe().expect("the path of this executable");
        exe.ancestors().nth(3).expect("the executable lies in target/PROFILE/deps").to_path_buf()
    };
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(beside_exe, PathBuf::from);
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}; make it writable", dir.display()));
    dir.join(file)
}

/// Progress of a long phase: a line each time another tenth of it is done.
pub struct Progress {
    what: String,
    total: usize,
    done: usize,
    started: Instant,
}

impl Progress {
    /// A phase of `total` steps, named `what` in its lines.
    pub fn new(what: impl Into<String>, total: usize) -> Progress {
        Progress { what: what.into(), total, done: 0, started: Instant::now() }
    }

    /// One more step done.
    pub fn step(&mut self) {
        self.advance_to(self.done + 1);
    }

    /// `done` steps done so far.
    pub fn advance_to(&mut self, done: usize) {
        let tenth = |n: usize| n * 10 / self.total.max(1);
        if tenth(done) > tenth(self.done) {
            println!("  {}: {done}/{} after {:.1} s", self.what, self.total, self.started.elapsed().as_secs_f64());
        }
        self.done = done;
    }
}

//! Where the log's lines go: handed over by the thread that logs them, written to their output
//! in batches by a thread of their own.
//!
//! The gateway logs an access line per request. Written by the request's thread, each line
//! waited on the output's lock and a `write` call; handed to a thread one by one (as
//! `tracing-appender` does), each line woke that thread: on a busy machine, a context switch
//! per request that preempted a worker (a tenth of the gateway's CPU in the load benchmark;
//! BENCHMARKS.md, issue #14). Here a line is appended to a buffer under a short lock, and the
//! writer thread is woken only by the first line after a quiet spell: it then waits
//! [`BATCH_WAIT`] for more and writes them all with one call.
//!
//! No line is dropped: when [`MAX_PENDING`] bytes wait for the output, loggers wait for the
//! writer. [`Flush`] (held by `main`) writes what is left when the command ends, waiting up
//! to [`END_WAIT`] for an output that does not take it (a pipe nobody reads must not keep
//! the process from exiting); lines logged after the end go to the output directly, after
//! the last batch. A `kill -9` loses what was not written yet: the last [`BATCH_WAIT`] of
//! lines while the output keeps up.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread gathers lines after the first one of a batch.
pub const BATCH_WAIT: Duration = Duration::from_millis(10);

/// How many bytes of lines may wait for the output before loggers wait for the writer.
pub const MAX_PENDING: usize = 8 << 20;

/// How long the end of the command waits for the last lines to be written.
pub const END_WAIT: Duration = Duration::from_secs(5);

/// The loggers' side: a [`MakeWriter`] for `tracing-subscriber`, cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// The writer thread's handle: dropping it writes every line still waiting (within
/// [`END_WAIT`]) and stops the thread.
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread: a line after a quiet spell, or the end.
    arrived: Condvar,
    /// Wakes loggers waiting for room.
    room: Condvar,
    output: Mutex<Box<dyn Write + Send>>,
    max_pending: usize,
    batch_wait: Duration,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    ended: bool,
}

impl LogWriter {
    /// A writer of lines to `output`, and the handle of the thread that writes them.
    pub fn new(output: impl Write + Send + 'static) -> (LogWriter, Flush) {
        Self::with_limits(output, MAX_PENDING, BATCH_WAIT)
    }

    fn with_limits(
        output: impl Write + Send + 'static,
        max_pending: usize,
        batch_wait: Duration,
    ) -> (LogWriter, Flush) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            arrived: Condvar::new(),
            room: Condvar::new(),
            output: Mutex::new(Box::new(output)),
            max_pending,
            batch_wait,
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("waedge-log".into())
            .spawn(move || writer.write_batches())
            .expect("starting the log writer thread");
        (LogWriter { shared: shared.clone() }, Flush { shared, thread: Some(thread) })
    }
}

impl Write for &LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        let mut pending = lock(&shared.pending);
        while pending.lines.len() >= shared.max_pending && !pending.ended {
            pending = shared.room.wait(pending).unwrap_or_else(|p| p.into_inner());
        }
        if pending.ended {
            drop(pending);
            return lock(&shared.output).write_all(line).map(|()| line.len());
        }
        let quiet = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        if quiet {
            shared.arrived.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Shared {
    /// The writer thread: waits for a first line, gathers more for [`BATCH_WAIT`], writes them
    /// with one call; until the end, when it writes what is left.
    fn write_batches(&self) {
        let mut batch = Vec::new();
        loop {
            let mut pending = lock(&self.pending);
            while pending.lines.is_empty() && !pending.ended {
                pending = self.arrived.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
            if !pending.ended {
                let gathered = self.arrived.wait_timeout_while(pending, self.batch_wait, |pending| !pending.ended);
                pending = gathered.map_or_else(|p| p.into_inner().0, |(pending, _)| pending);
            }
            std::mem::swap(&mut batch, &mut pending.lines);
            let ended = pending.ended;
            // The output is taken before the lines are let go: a line logged after the end,
            // which goes to the output directly, comes after the last batch.
            let mut output = lock(&self.output);
            drop(pending);
            self.room.notify_all();
            // A log that cannot be written has nowhere to say so.
            let _ = output.write_all(&batch).and_then(|()| output.flush());
            drop(output);
            if ended {
                return;
            }
            batch.clear();
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        lock(&self.shared.pending).ended = true;
        self.shared.arrived.notify_one();
        self.shared.room.notify_all();
        let Some(thread) = self.thread.take() else { return };
        let deadline = Instant::now() + END_WAIT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// An output whose bytes, and how many writes brought them, the test reads.
    #[derive(Clone, Default)]
    struct Output {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            *self.writes.lock().unwrap() += 1;
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    /// Whether dropping `flush` returns within `limit` (the drop goes on in a thread of its
    /// own if it does not, so that the test fails instead of hanging).
    fn ends_within(flush: Flush, limit: Duration) -> bool {
        let ending = std::thread::spawn(move || drop(flush));
        let started = Instant::now();
        while !ending.is_finished() && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
        ending.is_finished()
    }

    fn log(writer: &LogWriter, line: &str) {
        let mut writer = writer.make_writer();
        writer.write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn every_line_of_every_thread_is_written_whole_and_in_each_threads_order_in_few_writes() {
        let output = Output::default();
        let (writer, flush) = LogWriter::new(output.clone());
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || (0..1000).for_each(|n| log(&writer, &format!("thread {thread} line {n}\n"))))
            })
            .collect();
        threads.into_iter().for_each(|thread| thread.join().unwrap());
        drop(flush);
        let text = output.text();
        assert_eq!(text.lines().count(), 4000);
        for thread in 0..4 {
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|line| line.strip_prefix(&format!("thread {thread} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..1000).collect::<Vec<_>>(), "thread {thread}");
        }
        let writes = *output.writes.lock().unwrap();
        assert!(writes < 400, "lines are written in batches, not one call each: {writes} writes");
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more_or_for_the_end() {
        let output = Output::default();
        let (writer, _flush) = LogWriter::new(output.clone());
        log(&writer, "alone\n");
        let waited = Instant::now();
        while output.text() != "alone\n" {
            assert!(waited.elapsed() < Duration::from_secs(10), "the line was not written: {:?}", output.text());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn lines_logged_after_the_end_go_to_the_output_directly() {
        let output = Output::default();
        let (writer, flush) = LogWriter::new(output.clone());
        log(&writer, "before\n");
        drop(flush);
        log(&writer, "after\n");
        assert_eq!(output.text(), "before\nafter\n");
    }

    #[test]
    fn loggers_wait_for_a_slow_output_instead_of_dropping_lines() {
        /// An output that takes its first write only when the test says so.
        struct Held(mpsc::Receiver<()>, Output);
        impl Write for Held {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let _ = self.0.recv();
                self.1.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (release, held) = mpsc::channel();
        let output = Output::default();
        let (writer, flush) = LogWriter::with_limits(Held(held, output.clone()), 64, BATCH_WAIT);
        let pending = writer.shared.clone();
        let logger = std::thread::spawn(move || (0..100).for_each(|n| log(&writer, &format!("line {n:04}\n"))));
        let started = Instant::now();
        while lock(&pending.pending).lines.len() < 64 {
            assert!(started.elapsed() < Duration::from_secs(10), "the lines did not pile up");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!logger.is_finished(), "the logger waits while 64 bytes are pending and the output is held");
        drop(release);
        logger.join().unwrap();
        drop(flush);
        let expected: String = (0..100).map(|n| format!("line {n:04}\n")).collect();
        assert_eq!(output.text(), expected);
    }

    #[test]
    fn the_end_writes_what_is_waiting_without_waiting_out_the_gathering() {
        let output = Output::default();
        // The writer thread would gather lines for an hour: the end cuts it short.
        let (writer, flush) = LogWriter::with_limits(output.clone(), MAX_PENDING, Duration::from_secs(3600));
        log(&writer, "the last line\n");
        assert!(ends_within(flush, END_WAIT), "the end waited for the gathering");
        assert_eq!(output.text(), "the last line\n");
    }

    #[test]
    fn the_end_gives_up_on_an_output_that_takes_nothing() {
        /// An output that never returns from a write.
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                loop {
                    std::thread::park();
                }
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (writer, flush) = LogWriter::with_limits(Stuck, MAX_PENDING, Duration::from_millis(1));
        log(&writer, "never written\n");
        assert!(ends_within(flush, END_WAIT * 2), "the end did not give up after {END_WAIT:?}");
    }
}

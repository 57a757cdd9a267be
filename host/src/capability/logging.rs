//! `waedge:gateway/logging`: component log lines in the host's log.
//!
//! The log is shared by every tenant and read by the operator's tools, so a component's
//! message is written as one line that it cannot break out of: control characters, line
//! separators and bidirectional overrides are escaped (`\n`, `\u{1b}`, `\u{202e}`), and a
//! backslash is doubled so an escape in the log always means the component sent that
//! character. Each request may log at most [`MAX_LINES_PER_REQUEST`] lines and
//! [`MAX_BYTES_PER_REQUEST`] bytes; further lines are dropped, and the first dropped line is
//! reported once as a sandbox violation with `limit="log"`.

use std::fmt::Write;
use std::sync::Arc;

use super::Capabilities;
use crate::bindings::logging::{Host, Level};
use crate::runtime::violation::Reporter;

/// Longer messages are cut: a component must not be able to flood the log with one call.
const MAX_MESSAGE_BYTES: usize = 4096;

/// How many lines one request's component may log. A constant, not a tenant limit: the log
/// is the operator's, shared by all tenants, and a tenant that needs more should count in its
/// own store rather than in the host's log.
pub const MAX_LINES_PER_REQUEST: u32 = 100;

/// How many bytes of (escaped) messages one request's component may log.
pub const MAX_BYTES_PER_REQUEST: usize = 64 * 1024;

/// The log of one request's component: who is logging, and how much of the per-request
/// budget is spent.
pub struct ComponentLog {
    tenant: Arc<str>,
    component: Arc<str>,
    lines: u32,
    bytes: usize,
    dropped: bool,
    reporter: Reporter,
}

impl ComponentLog {
    /// A fresh budget for one request of `component` of `tenant`; `reporter` records the
    /// violation when the component logs more than it may.
    pub fn new(tenant: &str, component: Arc<str>, reporter: Reporter) -> Self {
        ComponentLog { tenant: tenant.into(), component, lines: 0, bytes: 0, dropped: false, reporter }
    }

    /// Writes `message` at `level` as one escaped line, unless the request's budget is spent.
    pub fn write(&mut self, level: Level, message: &str) {
        let line = one_line(message, MAX_MESSAGE_BYTES);
        if !self.take(line.len()) {
            return;
        }
        let (tenant, component) = (&*self.tenant, &*self.component);
        match level {
            Level::Trace => tracing::trace!(target: "waedge::component", tenant, component, "{line}"),
            Level::Debug => tracing::debug!(target: "waedge::component", tenant, component, "{line}"),
            Level::Info => tracing::info!(target: "waedge::component", tenant, component, "{line}"),
            Level::Warn => tracing::warn!(target: "waedge::component", tenant, component, "{line}"),
            Level::Error => tracing::error!(target: "waedge::component", tenant, component, "{line}"),
        }
    }

    /// Spends one line of `bytes` from the budget; `false` when it does not fit. The first
    /// refusal is reported as a violation, the later ones are dropped silently.
    fn take(&mut self, bytes: usize) -> bool {
        if !self.dropped && self.lines < MAX_LINES_PER_REQUEST && self.bytes + bytes <= MAX_BYTES_PER_REQUEST {
            self.lines += 1;
            self.bytes += bytes;
            return true;
        }
        if !self.dropped {
            self.dropped = true;
            self.reporter.violation(
                "log",
                &format!(
                    "more than {MAX_LINES_PER_REQUEST} log lines or {MAX_BYTES_PER_REQUEST} bytes in one request; \
                     the rest of this request's lines are dropped"
                ),
            );
        }
        false
    }
}

impl Host for Capabilities {
    async fn log(&mut self, level: Level, message: String) {
        self.log.write(level, &message);
    }
}

/// `message` as one line of at most `max` bytes: characters that could end the line, hide
/// text or reorder it on screen are escaped, backslashes doubled.
fn one_line(message: &str, max: usize) -> String {
    let mut line = String::with_capacity(message.len().min(max));
    for c in message.chars() {
        let end = line.len();
        if needs_escape(c) {
            // Writing to a `String` cannot fail.
            let _ = write!(line, "{}", c.escape_default());
        } else {
            line.push(c);
        }
        if line.len() > max {
            line.truncate(end);
            break;
        }
    }
    line
}

/// Control characters (C0, DEL, C1), the Unicode line and paragraph separators, the
/// bidirectional marks and overrides, and the backslash that starts an escape.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}')
        || matches!(c, '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Everything a `fmt` subscriber writes, as the operator's log file would hold it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// Runs `log` with a plain-text `fmt` subscriber and returns what it wrote.
    fn captured(log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        captured.text()
    }

    fn component_log() -> ComponentLog {
        ComponentLog::new("acme", "probe".into(), Reporter::detached())
    }

    #[test]
    fn a_message_cannot_forge_a_line() {
        let forged =
            "x\n2026-12-05T01:00:00Z  INFO waedge::access: tenant=globex status=200\r\u{1b}[2K\u{2028}\u{202e}";
        let text = captured(|| component_log().write(Level::Info, forged));
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(
            text.contains(
                r"x\n2026-12-05T01:00:00Z  INFO waedge::access: tenant=globex status=200\r\u{1b}[2K\u{2028}\u{202e}"
            ),
            "{text}"
        );
        assert!(text.contains("tenant=\"acme\"") && text.contains("component=\"probe\""), "{text}");
    }

    #[test]
    fn escapes_are_unambiguous_and_text_is_kept() {
        assert_eq!(one_line(r"C:\n", 100), r"C:\\n");
        assert_eq!(one_line("tab\there", 100), r"tab\there");
        assert_eq!(one_line("héllo wörld ✓", 100), "héllo wörld ✓");
    }

    #[test]
    fn lines_are_cut_on_char_and_escape_boundaries() {
        assert_eq!(one_line("héllo", 2), "h");
        assert_eq!(one_line("héllo", 3), "hé");
        assert_eq!(one_line("ab\n", 3), "ab");
        assert_eq!(one_line("ab\n", 4), r"ab\n");
        assert_eq!(one_line(&"x".repeat(MAX_MESSAGE_BYTES * 2), MAX_MESSAGE_BYTES).len(), MAX_MESSAGE_BYTES);
    }

    #[test]
    fn a_request_logs_at_most_the_cap_and_one_violation() {
        let text = captured(|| {
            let mut log = component_log();
            for i in 0..10_000 {
                log.write(Level::Info, &format!("line {i}"));
            }
        });
        let logged = text.lines().filter(|line| line.contains("waedge::component")).count();
        assert_eq!(logged, MAX_LINES_PER_REQUEST as usize);
        let violations: Vec<&str> = text.lines().filter(|line| line.contains("sandbox:")).collect();
        assert_eq!(violations.len(), 1, "{text}");
        assert!(violations[0].contains("limit=\"log\""), "{}", violations[0]);
    }

    #[test]
    fn a_request_logs_at_most_the_byte_cap() {
        let text = captured(|| {
            let mut log = component_log();
            for _ in 0..MAX_LINES_PER_REQUEST {
                log.write(Level::Warn, &"y".repeat(MAX_MESSAGE_BYTES));
            }
        });
        let logged = text.lines().filter(|line| line.contains("waedge::component")).count();
        assert_eq!(logged, MAX_BYTES_PER_REQUEST / MAX_MESSAGE_BYTES);
        assert_eq!(text.lines().filter(|line| line.contains("sandbox:")).count(), 1, "{text}");
    }
}

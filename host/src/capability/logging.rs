//! `wasi:logging/logging`: component log lines in the host's log, the standard draft interface.
//!
//! A line carries the tenant, the component and the component's `context` as fields; it is
//! written inside the request's span, so it carries the request id too.
//!
//! The log is shared by every tenant and read by the operator's tools, so a component's
//! message is written as one line that it cannot break out of: control characters, line
//! separators and bidirectional overrides are escaped (`\n`, `\u{1b}`, `\u{202e}`), and a
//! backslash is doubled so an escape in the log always means the component sent that
//! character. Each request may log at most [`MAX_LINES_PER_REQUEST`] lines and
//! [`MAX_BYTES_PER_REQUEST`] bytes, and all of a tenant's requests together at most
//! [`TENANT_BYTES_PER_SECOND`] (with a burst of [`TENANT_BURST_BYTES`]); further lines are
//! dropped, and the first dropped line of a request is reported as a sandbox violation with
//! `limit="log"`.

use std::fmt::Write;
use std::sync::Arc;
use waedge_contract::logging::{Host, Level};

use super::CapabilitiesView;
use crate::rate::TokenBucket;
use crate::telemetry::violation::Reporter;

/// Longer messages are cut: a component must not be able to flood the log with one call.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Longer contexts are cut: a context names a part of the component, it is not a message.
const MAX_CONTEXT_BYTES: usize = 256;

/// How many lines one request's component may log. A constant, not a tenant limit: the log
/// is the operator's, shared by all tenants, and a tenant that needs more should count in its
/// own store rather than in the host's log.
pub const MAX_LINES_PER_REQUEST: u32 = 100;

/// How many bytes of (escaped) messages one request's component may log.
pub const MAX_BYTES_PER_REQUEST: usize = 64 * 1024;

/// How many bytes of messages all of one tenant's requests may log a second, sustained: many
/// requests each within their cap must not fill the operator's disk either.
pub const TENANT_BYTES_PER_SECOND: usize = 64 * 1024;

/// How many bytes above the sustained rate a tenant may log at once.
pub const TENANT_BURST_BYTES: usize = 1 << 20;

/// A tenant's log rate: one per tenant, kept across its requests.
pub fn tenant_log_rate() -> TokenBucket {
    TokenBucket::new(TENANT_BYTES_PER_SECOND as f64, TENANT_BURST_BYTES as f64)
}

/// The log of one request's component: who is logging, and how much of the per-request
/// budget is spent.
pub struct ComponentLog {
    tenant: Arc<str>,
    component: Arc<str>,
    lines: u32,
    bytes: usize,
    dropped: bool,
    tenant_rate: Arc<TokenBucket>,
    reporter: Reporter,
}

impl ComponentLog {
    /// A fresh budget for one request of `component` of `tenant`, within the tenant's
    /// `tenant_rate` (see [`tenant_log_rate`]); `reporter` records the violation when the
    /// component logs more than it may.
    pub fn new(tenant: &str, component: Arc<str>, tenant_rate: Arc<TokenBucket>, reporter: Reporter) -> Self {
        ComponentLog { tenant: tenant.into(), component, lines: 0, bytes: 0, dropped: false, tenant_rate, reporter }
    }

    /// Writes `message` at `level`, with the component's `context` (may be empty), as one
    /// escaped line, unless the request's budget is spent.
    pub fn write(&mut self, level: Level, context: &str, message: &str) {
        let line = one_line(message, MAX_MESSAGE_BYTES);
        let context = one_line(context, MAX_CONTEXT_BYTES);
        if !self.take(line.len() + context.len()) {
            return;
        }
        // No `context` field at all when the component gave none.
        let (tenant, component, context) = (&*self.tenant, &*self.component, Some(&*context).filter(|c| !c.is_empty()));
        match level {
            Level::Trace => tracing::trace!(target: "waedge::component", tenant, component, context, "{line}"),
            Level::Debug => tracing::debug!(target: "waedge::component", tenant, component, context, "{line}"),
            Level::Info => tracing::info!(target: "waedge::component", tenant, component, context, "{line}"),
            Level::Warn => tracing::warn!(target: "waedge::component", tenant, component, context, "{line}"),
            Level::Error => tracing::error!(target: "waedge::component", tenant, component, context, "{line}"),
            Level::Critical => {
                tracing::error!(target: "waedge::component", tenant, component, context, critical = true, "{line}")
            }
        }
    }

    /// Spends one line of `bytes` from the budget; `false` when it does not fit. The first
    /// refusal is reported as a violation, the later ones are dropped silently.
    fn take(&mut self, bytes: usize) -> bool {
        if self.dropped {
            return false;
        }
        let refusal = if self.lines >= MAX_LINES_PER_REQUEST || self.bytes + bytes > MAX_BYTES_PER_REQUEST {
            format!("more than {MAX_LINES_PER_REQUEST} log lines or {MAX_BYTES_PER_REQUEST} bytes in one request")
        } else if self.tenant_rate.take(bytes as f64).is_err() {
            format!("the tenant's components logged more than {TENANT_BYTES_PER_SECOND} bytes a second")
        } else {
            self.lines += 1;
            self.bytes += bytes;
            return true;
        };
        self.dropped = true;
        self.reporter.violation("log", &format!("{refusal}; the rest of this request's lines are dropped"));
        false
    }
}

impl Host for CapabilitiesView<'_> {
    async fn log(&mut self, level: Level, context: String, message: String) {
        self.capabilities.log.write(level, &context, &message);
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
        ComponentLog::new("acme", "probe".into(), Arc::new(tenant_log_rate()), Reporter::detached())
    }

    #[test]
    fn a_context_is_a_field_only_when_given() {
        let with = captured(|| component_log().write(Level::Info, "sync\njob", "hello"));
        // Escaped like a message (`\n`), then quoted by the log format (`\\n`).
        assert!(with.contains(r#"context="sync\\njob""#), "{with}");
        let without = captured(|| component_log().write(Level::Info, "", "hello"));
        assert!(without.contains("hello") && !without.contains("context"), "{without}");
    }

    #[test]
    fn a_message_cannot_forge_a_line() {
        let forged =
            "x\n2026-12-05T01:00:00Z  INFO waedge::access: tenant=globex status=200\r\u{1b}[2K\u{2028}\u{202e}";
        let text = captured(|| component_log().write(Level::Info, "", forged));
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
                log.write(Level::Info, "", &format!("line {i}"));
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
                log.write(Level::Warn, "", &"y".repeat(MAX_MESSAGE_BYTES));
            }
        });
        let logged = text.lines().filter(|line| line.contains("waedge::component")).count();
        assert_eq!(logged, MAX_BYTES_PER_REQUEST / MAX_MESSAGE_BYTES);
        assert_eq!(text.lines().filter(|line| line.contains("sandbox:")).count(), 1, "{text}");
    }

    #[test]
    fn a_tenants_requests_together_log_at_most_its_rate() {
        let rate = Arc::new(tenant_log_rate());
        let text = captured(|| {
            // Requests each within their own cap, as many as fit in the tenant's burst and more.
            for _ in 0..TENANT_BURST_BYTES / MAX_BYTES_PER_REQUEST + 5 {
                let mut log = ComponentLog::new("acme", "probe".into(), rate.clone(), Reporter::detached());
                for _ in 0..MAX_BYTES_PER_REQUEST / MAX_MESSAGE_BYTES {
                    log.write(Level::Info, "", &"z".repeat(MAX_MESSAGE_BYTES));
                }
            }
        });
        let logged: usize = text.lines().filter(|line| line.contains("waedge::component")).count();
        let burst_lines = TENANT_BURST_BYTES / MAX_MESSAGE_BYTES;
        // The burst, and what the rate refilled while the test ran (well under a second).
        assert!(logged >= burst_lines && logged < burst_lines + 16, "{logged} lines logged");
        let refused = text.lines().filter(|line| line.contains("logged more than 65536 bytes a second")).count();
        assert!((4..=5).contains(&refused), "one violation per request over the rate: {refused}");
    }
}

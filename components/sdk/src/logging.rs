//! Log lines into the host's log, through the standard `wasi:logging`. The host tags each
//! line with the tenant, the component and the request id, writes it as one line (control
//! characters escaped) and caps how many a request may write. Never log tokens or other
//! secrets.

use crate::bindings::wasi::logging::logging;

pub use logging::Level;

/// Writes `message` at `level`, with no context.
pub fn log(level: Level, message: &str) {
    logging::log(level, "", message);
}

/// Writes `message` at `level`; the host writes `context` (e.g. the part of the plugin that
/// logs) as a field of the line.
pub fn log_in(level: Level, context: &str, message: &str) {
    logging::log(level, context, message);
}

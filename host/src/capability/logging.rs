//! `waedge:gateway/logging`: component log lines in the host's log.

use super::Capabilities;
use crate::bindings::logging::{Host, Level};

/// Longer messages are cut: a component must not be able to flood the log with one call.
const MAX_MESSAGE_BYTES: usize = 4096;

impl Host for Capabilities {
    async fn log(&mut self, level: Level, message: String) {
        let message = truncate(&message, MAX_MESSAGE_BYTES);
        let tenant = self.tenant.id();
        let component = &*self.component;
        match level {
            Level::Trace => tracing::trace!(target: "waedge::component", tenant, component, "{message}"),
            Level::Debug => tracing::debug!(target: "waedge::component", tenant, component, "{message}"),
            Level::Info => tracing::info!(target: "waedge::component", tenant, component, "{message}"),
            Level::Warn => tracing::warn!(target: "waedge::component", tenant, component, "{message}"),
            Level::Error => tracing::error!(target: "waedge::component", tenant, component, "{message}"),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(super::truncate("héllo", 2), "h");
        assert_eq!(super::truncate("héllo", 3), "hé");
        assert_eq!(super::truncate("hi", 10), "hi");
    }
}

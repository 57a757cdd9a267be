//! A node's heartbeat among the nodes sharing its store: when it last told them which of the
//! store's changes it serves.
//!
//! The other nodes wait for a live node to serve each change before the change's call
//! answers, and stop waiting for one they have not heard from for a while (the store's
//! `NODE_TTL`). So a node that could not say it is alive for nearly that long — cut off from
//! the database, or paused and resumed — may be behind a change the others no longer wait for
//! (a revoked token): it answers no request until its next heartbeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When this node last said it is alive, and how long that lasts.
#[derive(Debug)]
pub struct Heartbeat {
    /// The clock's origin: heartbeats are counted in nanoseconds since.
    origin: Instant,
    /// The last heartbeat's time, as it was sent.
    last: AtomicU64,
    /// How long a heartbeat lasts.
    lasts: Duration,
}

impl Heartbeat {
    /// A heartbeat sent now, lasting `lasts`.
    pub fn new(lasts: Duration) -> Heartbeat {
        Heartbeat { origin: Instant::now(), last: AtomicU64::new(0), lasts }
    }

    /// Records a heartbeat the database acknowledged, sent at `sent` (the others count from
    /// the moment it arrived, which is later).
    pub fn beat(&self, sent: Instant) {
        let nanos = u64::try_from(sent.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        self.last.fetch_max(nanos, Ordering::SeqCst);
    }

    /// Whether the last heartbeat still lasts.
    pub fn lasts(&self) -> bool {
        let last = self.origin + Duration::from_nanos(self.last.load(Ordering::SeqCst));
        last.elapsed() <= self.lasts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_lasts_its_time_and_a_later_one_renews_it() {
        let heartbeat = Heartbeat::new(Duration::from_millis(50));
        assert!(heartbeat.lasts(), "sent when made");
        std::thread::sleep(Duration::from_millis(80));
        assert!(!heartbeat.lasts(), "past its time");
        let sent = Instant::now();
        heartbeat.beat(sent);
        assert!(heartbeat.lasts());
        heartbeat.beat(sent - Duration::from_secs(1));
        assert!(heartbeat.lasts(), "an older heartbeat acknowledged late changes nothing");
    }
}

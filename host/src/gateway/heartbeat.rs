//! A node's heartbeat among the nodes sharing its store: when it last told them which of the
//! store's changes it serves, having served all of them it knew of.
//!
//! The other nodes wait for a live node to serve each change before the change's call
//! answers, and stop waiting for one they have not heard from for a while (the store's
//! `NODE_TTL`). So a node that could not say it is alive for nearly that long — cut off from
//! the database, or paused and resumed — may be behind a change the others no longer wait for
//! (a revoked token): it answers no request until a heartbeat says it has caught up. A node
//! starts without one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When this node last said it is alive and caught up, and how long that lasts.
#[derive(Debug)]
pub struct Heartbeat {
    /// The clock's origin: heartbeats are counted in nanoseconds since, plus one.
    origin: Instant,
    /// The last heartbeat's time, as it was sent; 0: none yet.
    last: AtomicU64,
    /// How long a heartbeat lasts.
    lasts: Duration,
}

impl Heartbeat {
    /// No heartbeat yet; each will last `lasts`.
    pub fn new(lasts: Duration) -> Heartbeat {
        Heartbeat { origin: Instant::now(), last: AtomicU64::new(0), lasts }
    }

    /// Records a heartbeat the database acknowledged, sent at `sent` (the others count from
    /// the moment it arrived, which is later).
    pub fn beat(&self, sent: Instant) {
        let since = sent.saturating_duration_since(self.origin).as_nanos();
        let nanos = u64::try_from(since).unwrap_or(u64::MAX - 1);
        self.last.fetch_max(nanos + 1, Ordering::SeqCst);
    }

    /// Whether the last heartbeat still lasts (never before the first).
    pub fn lasts(&self) -> bool {
        match self.last.load(Ordering::SeqCst) {
            0 => false,
            last => (self.origin + Duration::from_nanos(last - 1)).elapsed() <= self.lasts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_lasts_its_time_and_a_later_one_renews_it() {
        let heartbeat = Heartbeat::new(Duration::from_secs(1));
        assert!(!heartbeat.lasts(), "none before the first");
        let sent = Instant::now();
        heartbeat.beat(sent);
        assert!(heartbeat.lasts());
        std::thread::sleep(Duration::from_millis(1_500));
        assert!(!heartbeat.lasts(), "past its time");
        heartbeat.beat(sent);
        assert!(!heartbeat.lasts(), "an old heartbeat acknowledged late renews nothing");
        heartbeat.beat(Instant::now());
        assert!(heartbeat.lasts());
    }
}

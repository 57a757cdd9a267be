//! The process's resident memory against the operator's watermark (`memory_watermark_mib`):
//! above it, the gateway sheds new requests with `503 CAPACITY` until it is below again.
//!
//! Every request's host memory is capped (fields, handles, body buffers) and the instance
//! pool bounds how many are served at once; the watermark is the backstop for everything
//! together — caches, device sessions, many tenants at their caps — on a machine whose memory
//! is smaller than the sum of the caps. The admin API is never shed: the operator must be
//! able to act on an overloaded gateway.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a reading of the resident memory is reused.
const READ_EVERY: Duration = Duration::from_millis(100);

/// A resident-memory watermark.
#[derive(Debug)]
pub struct Watermark {
    limit_bytes: u64,
    /// Readings are timed from here.
    since: Instant,
    /// When the last reading was taken, in milliseconds from `since` (0: never).
    read_at: AtomicU64,
    /// Whether the process was above the watermark at the last reading.
    above: AtomicBool,
}

impl Watermark {
    /// A watermark at `mib` MiB of resident memory.
    pub fn new(mib: u64) -> Self {
        Watermark {
            limit_bytes: mib.saturating_mul(1 << 20),
            since: Instant::now(),
            read_at: AtomicU64::new(0),
            above: AtomicBool::new(false),
        }
    }

    /// The watermark in MiB.
    pub fn mib(&self) -> u64 {
        self.limit_bytes >> 20
    }

    /// Whether the process's resident memory is above the watermark. It is read at most every
    /// [`READ_EVERY`], by one request, without a lock; a system without `/proc` is never above.
    pub fn exceeded(&self) -> bool {
        // 1 + elapsed: a first reading is due at once.
        let now = 1 + self.since.elapsed().as_millis() as u64;
        let last = self.read_at.load(Ordering::Acquire);
        let due = last == 0 || now.saturating_sub(last) >= READ_EVERY.as_millis() as u64;
        if due && self.read_at.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            let above = resident_bytes().is_some_and(|bytes| bytes > self.limit_bytes);
            self.above.store(above, Ordering::Release);
            return above;
        }
        self.above.load(Ordering::Acquire)
    }
}

/// The process's resident memory, from `/proc/self/status` (`VmRSS`).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_above_a_watermark_below_its_memory_and_not_above_one_far_higher() {
        let resident = resident_bytes().expect("VmRSS in /proc/self/status");
        assert!(resident > 1 << 20, "{resident} bytes");
        assert!(Watermark::new(1).exceeded());
        assert!(!Watermark::new(1 << 20).exceeded(), "a terabyte");
    }
}

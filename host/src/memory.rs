//! The process's resident memory against the operator's watermark (`memory_watermark_mib`):
//! above it, the gateway sheds new requests with `503 CAPACITY` until it is below again.
//!
//! Every request's host memory is capped (fields, handles, body buffers) and the instance
//! pool bounds how many are served at once; the watermark is the backstop for everything
//! together — caches, device sessions, many tenants at their caps — on a machine whose memory
//! is smaller than the sum of the caps. The admin API is never shed: the operator must be
//! able to act on an overloaded gateway.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reading of the resident memory is reused.
const READ_EVERY: Duration = Duration::from_millis(100);

/// A resident-memory watermark.
#[derive(Debug)]
pub struct Watermark {
    limit_bytes: u64,
    /// The last reading: when, and whether the process was above the watermark.
    last: Mutex<Option<(Instant, bool)>>,
}

impl Watermark {
    /// A watermark at `mib` MiB of resident memory.
    pub fn new(mib: u64) -> Self {
        Watermark { limit_bytes: mib.saturating_mul(1 << 20), last: Mutex::new(None) }
    }

    /// The watermark in MiB.
    pub fn mib(&self) -> u64 {
        self.limit_bytes >> 20
    }

    /// Whether the process's resident memory is above the watermark (read at most every
    /// [`READ_EVERY`]; a system without `/proc` is never above it).
    pub fn exceeded(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some((at, above)) if at.elapsed() < READ_EVERY => above,
            _ => {
                let above = resident_bytes().is_some_and(|bytes| bytes > self.limit_bytes);
                *last = Some((Instant::now(), above));
                above
            }
        }
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

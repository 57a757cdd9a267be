//! Each tenant's budget of guest CPU time.
//!
//! Guest code checks the engine's epoch, which a thread bumps every
//! [`EPOCH_TICK`](super::engine::EPOCH_TICK); at every tick a guest is found running, its
//! store yields to tokio and its tenant is charged one tick of CPU time. A guest that runs
//! for less than a tick is charged a whole one as often as it is running when a tick comes:
//! in proportion to its CPU time, on average.
//!
//! A guest waiting on the host (WhatsApp, an outbound request) is not running, but its epoch
//! deadline goes by meanwhile, so it is called back as soon as it runs again. Only a call back
//! within [`RUNNING_GAP`] of the guest's previous one (or of its request's start, or of the
//! end of a wait for the budget) is charged: a longer gap is time spent waiting.
//!
//! The budget is a rate: `cpu_millicores` thousandths of a core, for all the tenant's
//! requests together, of which up to [`BURST`]'s worth may be spent at once. A guest whose
//! tenant has spent more sleeps, at its next tick, until the budget has caught up, or until
//! its request's deadline. So one tenant's busy components cannot take every tokio worker
//! for long: the other tenants, the device sessions' keep-alives and the admin API keep
//! theirs. Requests that wait past their deadline end as timeouts of the tenant's own
//! component, never of anyone else's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::engine::EPOCH_TICK;

/// A guest called back within this time of its previous tick has been running since, and is
/// charged; after a longer gap it was waiting on the host, and is not.
pub const RUNNING_GAP: Duration = Duration::from_millis(EPOCH_TICK.as_millis() as u64 * 3 / 2);

/// How far ahead of its rate a tenant may run before its guests are slowed down: a second's
/// worth of its rate (a second of CPU time at one core, a tenth of one at 100 millicores).
pub const BURST: Duration = Duration::from_secs(1);

/// One tenant's CPU budget and what it has used.
#[derive(Debug)]
pub struct CpuBudget {
    /// When the CPU charged so far is paid off at the tenant's rate (a GCRA schedule): a
    /// tenant that has used less than its share has it in the past.
    paid_off: Mutex<Instant>,
    millicores: AtomicU64,
    charged_ticks: AtomicU64,
    throttled_micros: AtomicU64,
}

/// What a tenant's guests have used of the CPU since the tenant was loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUse {
    /// CPU time charged, in seconds.
    pub seconds: f64,
    /// Time its guests were made to wait because the tenant was over its budget, in seconds.
    pub throttled_seconds: f64,
}

impl CpuBudget {
    /// A budget of `millicores` thousandths of a core.
    pub fn new(millicores: u32) -> Self {
        CpuBudget {
            paid_off: Mutex::new(Instant::now()),
            millicores: AtomicU64::new(u64::from(millicores.max(1))),
            charged_ticks: AtomicU64::new(0),
            throttled_micros: AtomicU64::new(0),
        }
    }

    /// Changes the rate (the tenant's limits changed); what was charged stays charged.
    pub fn set_millicores(&self, millicores: u32) {
        self.millicores.store(u64::from(millicores.max(1)), Ordering::Relaxed);
    }

    /// Charges one tick of a guest found running at `now`; returns how long that guest must
    /// wait before it runs on (zero while the tenant is within its budget).
    pub fn charge(&self, now: Instant) -> Duration {
        self.charged_ticks.fetch_add(1, Ordering::Relaxed);
        let cost = EPOCH_TICK * 1000 / self.millicores.load(Ordering::Relaxed) as u32;
        let mut paid_off = self.paid_off.lock().unwrap_or_else(|p| p.into_inner());
        *paid_off = (*paid_off).max(now) + cost;
        let wait = paid_off.saturating_duration_since(now).saturating_sub(BURST);
        drop(paid_off);
        if !wait.is_zero() {
            self.throttled_micros.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        }
        wait
    }

    /// What the tenant's guests have used so far.
    pub fn used(&self) -> CpuUse {
        CpuUse {
            seconds: self.charged_ticks.load(Ordering::Relaxed) as f64 * EPOCH_TICK.as_secs_f64(),
            throttled_seconds: self.throttled_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks charged at `now` until the first that has to wait.
    fn free_ticks(budget: &CpuBudget, now: Instant) -> u32 {
        (0..).take_while(|_| budget.charge(now).is_zero()).count() as u32
    }

    #[test]
    fn a_tenant_runs_a_burst_ahead_of_its_rate_then_waits() {
        let budget = CpuBudget::new(1000);
        let start = Instant::now();
        // One core: a tick costs a tick; a second of burst is 100 ticks.
        assert_eq!(free_ticks(&budget, start), 100);
        // The 101st tick was charged too (it waits one tick); the 102nd waits two.
        assert_eq!(budget.charge(start), 2 * EPOCH_TICK);
        // Once paid off, the full burst is there again.
        assert_eq!(free_ticks(&budget, start + 2 * BURST), 100);
    }

    #[test]
    fn the_rate_is_in_thousandths_of_a_core() {
        let quarter = CpuBudget::new(250);
        let start = Instant::now();
        // A quarter core: a tick costs four, so a second of burst holds 25.
        assert_eq!(free_ticks(&quarter, start), 25);
        // Sustained, one tick in every four never waits; one in three soon does.
        let later = start + 10 * BURST;
        assert!((0..1000).all(|i| quarter.charge(later + i * 4 * EPOCH_TICK).is_zero()));
        let later = later + 100 * BURST;
        assert!(!(0..1000).all(|i| quarter.charge(later + i * 3 * EPOCH_TICK).is_zero()));
        quarter.set_millicores(2000);
        assert_eq!(free_ticks(&quarter, later + 100 * BURST), 200, "two cores: 200 ticks in a second of burst");
    }

    #[test]
    fn what_was_used_and_waited_is_counted() {
        let budget = CpuBudget::new(1000);
        let start = Instant::now();
        free_ticks(&budget, start);
        let used = budget.used();
        assert_eq!(used.seconds, 101.0 * EPOCH_TICK.as_secs_f64(), "101 ticks charged");
        assert_eq!(used.throttled_seconds, EPOCH_TICK.as_secs_f64());
    }
}

//! Each tenant's budget of guest CPU time.
//!
//! A guest is charged the time its calls run: every poll of the future that instantiates and
//! calls it is timed (see [`metered`]), and the epoch callback (which every
//! [`EPOCH_TICK`](super::engine::EPOCH_TICK) finds a running guest and makes it yield to tokio)
//! charges the part of a long poll run so far. A poll runs the guest and the host's
//! synchronous work in its calls (lifting and lowering, the capability's own bookkeeping, an
//! instantiation's work in the pooling allocator, which may reset slots other stores freed),
//! up to the first host call that has to wait; what it waits on (WhatsApp, an outbound
//! request) and its turns in tokio's queue after a yield lie between polls and are never
//! charged. (Two clock reads a poll: wasmtime's call hooks, one clock read at every crossing
//! between guest and host, took an eighth of a warm request's time.)
//!
//! The budget is a rate: `cpu_millicores` thousandths of a core, for all the tenant's
//! requests together, of which up to [`BURST`]'s worth may be spent at once. A guest whose
//! tenant has spent more sleeps, at its next tick, until the budget has caught up, or until
//! its request's deadline. So one tenant's busy components cannot take every tokio worker
//! for long: the other tenants, the device sessions' keep-alives and the admin API keep
//! theirs. Requests that wait past their deadline end as timeouts of the tenant's own
//! component, never of anyone else's.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(test)]
use super::engine::EPOCH_TICK;

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
    charged_nanos: AtomicU64,
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
            charged_nanos: AtomicU64::new(0),
            throttled_micros: AtomicU64::new(0),
        }
    }

    /// Changes the rate (the tenant's limits changed); what was charged stays charged.
    pub fn set_millicores(&self, millicores: u32) {
        self.millicores.store(u64::from(millicores.max(1)), Ordering::Relaxed);
    }

    /// Charges `ran`, time a guest ran, at `now`.
    pub fn charge(&self, now: Instant, ran: Duration) {
        if ran.is_zero() {
            return;
        }
        self.charged_nanos.fetch_add(ran.as_nanos() as u64, Ordering::Relaxed);
        let cost = ran * 1000 / self.millicores.load(Ordering::Relaxed) as u32;
        let mut paid_off = self.paid_off.lock().unwrap_or_else(|p| p.into_inner());
        *paid_off = (*paid_off).max(now) + cost;
    }

    /// How long a guest of the tenant must wait at `now` before it runs (on): zero while the
    /// tenant is within its budget (and its burst), and never past the request's `deadline`.
    pub fn wait(&self, now: Instant, deadline: Instant) -> Duration {
        let paid_off = *self.paid_off.lock().unwrap_or_else(|p| p.into_inner());
        let wait =
            paid_off.saturating_duration_since(now).saturating_sub(BURST).min(deadline.saturating_duration_since(now));
        if !wait.is_zero() {
            self.throttled_micros.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        }
        wait
    }

    /// What the tenant's guests have used so far.
    pub fn used(&self) -> CpuUse {
        CpuUse {
            seconds: self.charged_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            throttled_seconds: self.throttled_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The clock of one store's guest calls: when the poll (or the part of it since the last
/// epoch tick) that runs them began.
#[derive(Debug, Default)]
pub struct Meter {
    lap: Mutex<Option<Instant>>,
}

impl Meter {
    /// What ran since the lap began, at an epoch tick at `now` inside a poll, which starts the
    /// next lap. Zero outside a poll (never expected: every instantiation and call of a pooled
    /// store runs in [`metered`]).
    pub fn tick(&self, now: Instant) -> Duration {
        match self.lap.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some(since) => now.saturating_duration_since(std::mem::replace(since, now)),
            None => Duration::ZERO,
        }
    }

    fn start(&self, now: Instant) {
        *self.lap.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
    }

    fn stop(&self, now: Instant) -> Duration {
        let lap = self.lap.lock().unwrap_or_else(|p| p.into_inner()).take();
        lap.map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

/// Runs `future`, which instantiates or calls a guest in a store timed by `meter`, charging
/// `budget` the time each of its polls runs.
pub async fn metered<F: Future>(meter: &Meter, budget: &CpuBudget, future: F) -> F::Output {
    let mut future = pin!(future);
    poll_fn(|cx| {
        meter.start(Instant::now());
        let poll = future.as_mut().poll(cx);
        let now = Instant::now();
        budget.charge(now, meter.stop(now));
        poll
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks charged at `now` until the first that has to wait.
    fn free_ticks(budget: &CpuBudget, now: Instant) -> u32 {
        (0..)
            .take_while(|_| {
                budget.charge(now, EPOCH_TICK);
                budget.wait(now, now + 100 * BURST).is_zero()
            })
            .count() as u32
    }

    /// Charges one tick at `now` and answers the wait.
    fn tick(budget: &CpuBudget, now: Instant) -> Duration {
        budget.charge(now, EPOCH_TICK);
        budget.wait(now, now + 100 * BURST)
    }

    #[test]
    fn a_tenant_runs_a_burst_ahead_of_its_rate_then_waits() {
        let budget = CpuBudget::new(1000);
        let start = Instant::now();
        // One core: a tick costs a tick; a second of burst is 100 ticks.
        assert_eq!(free_ticks(&budget, start), 100);
        // The 101st tick was charged too (it waits one tick); the 102nd waits two.
        assert_eq!(tick(&budget, start), 2 * EPOCH_TICK);
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
        assert!((0..1000).all(|i| tick(&quarter, later + i * 4 * EPOCH_TICK).is_zero()));
        let later = later + 100 * BURST;
        assert!(!(0..1000).all(|i| tick(&quarter, later + i * 3 * EPOCH_TICK).is_zero()));
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

    /// A future that runs `busy` in its first poll, then waits `idle` (Pending), then is done.
    async fn busy_then_idle(busy: Duration, idle: Duration) {
        let started = Instant::now();
        while started.elapsed() < busy {
            std::hint::spin_loop();
        }
        tokio::time::sleep(idle).await;
    }

    #[tokio::test]
    async fn a_call_is_charged_its_polls_not_its_waits() {
        let (budget, meter) = (CpuBudget::new(1000), Meter::default());
        metered(&meter, &budget, busy_then_idle(Duration::from_millis(40), Duration::from_millis(200))).await;
        let charged = budget.used().seconds;
        assert!((0.040..0.075).contains(&charged), "40 ms busy and 200 ms waiting charged {charged} s");
        assert_eq!(meter.tick(Instant::now()), Duration::ZERO, "no lap runs between calls");
    }

    #[test]
    fn a_tick_inside_a_poll_charges_the_lap_so_far() {
        let (budget, meter) = (CpuBudget::new(1000), Meter::default());
        let start = Instant::now();
        meter.start(start);
        assert_eq!(meter.tick(start + 3 * EPOCH_TICK), 3 * EPOCH_TICK);
        assert_eq!(meter.tick(start + 4 * EPOCH_TICK), EPOCH_TICK, "the next lap starts at the tick");
        budget.charge(start, meter.stop(start + 4 * EPOCH_TICK + Duration::from_millis(1)));
        assert_eq!(budget.used().seconds, 0.001, "only the part after the last tick is left at the end");
    }

    #[test]
    fn charges_are_in_time_and_waits_end_at_the_deadline() {
        let budget = CpuBudget::new(1000);
        let start = Instant::now();
        budget.charge(start, Duration::ZERO);
        assert_eq!(budget.used().seconds, 0.0);
        budget.charge(start, Duration::from_millis(3));
        assert_eq!(budget.used().seconds, 0.003);
        // Two seconds of running at once: one past the burst, but the deadline is sooner.
        budget.charge(start, Duration::from_secs(2));
        let deadline = start + Duration::from_millis(300);
        assert_eq!(budget.wait(start, deadline), Duration::from_millis(300));
        assert_eq!(budget.used().throttled_seconds, 0.3, "the wait counted as it is taken");
    }
}

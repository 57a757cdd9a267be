//! A token bucket: a sustained rate with a burst, shared by threads.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens refill at `rate` a second up to `capacity`; taking more than the bucket holds is
/// refused with the time until it would hold enough.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilling at `rate` a second (both above zero).
    pub fn new(rate: f64, capacity: f64) -> Self {
        TokenBucket { rate, capacity, state: Mutex::new(State { tokens: capacity, refilled: Instant::now() }) }
    }

    /// Whether the bucket has refilled to its capacity: one that nobody drew from lately, which
    /// can be forgotten and made again full without anyone noticing.
    pub fn is_full(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tokens + state.refilled.elapsed().as_secs_f64() * self.rate >= self.capacity
    }

    /// Takes `amount` tokens if the bucket holds them; else takes nothing and answers how
    /// long until it would hold them (at most the capacity counts: more is never possible).
    pub fn take(&self, amount: f64) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        state.tokens = (state.tokens + now.duration_since(state.refilled).as_secs_f64() * self.rate).min(self.capacity);
        state.refilled = now;
        if state.tokens >= amount {
            state.tokens -= amount;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((amount.min(self.capacity) - state.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_wait_for_the_next_token() {
        let bucket = TokenBucket::new(10.0, 3.0);
        assert!((0..3).all(|_| bucket.take(1.0).is_ok()));
        let wait = bucket.take(1.0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        std::thread::sleep(wait);
        assert!(bucket.take(1.0).is_ok());
        assert!(bucket.take(2.5).is_err(), "nothing taken when there is not enough");
        assert!(!bucket.is_full());
        std::thread::sleep(Duration::from_millis(300));
        assert!(bucket.is_full());
    }
}

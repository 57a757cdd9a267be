//! A token bucket: a sustained rate with a burst, shared by threads; and a bucket per key.

use std::collections::HashMap;
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

/// A [`TokenBucket`] per key (e.g. per device), made full on a key's first use; a rate of
/// zero limits nothing.
#[derive(Debug)]
pub struct BucketPerKey {
    rate: f64,
    capacity: f64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl BucketPerKey {
    /// Buckets of `capacity` tokens refilling at `rate` a second.
    pub fn new(rate: f64, capacity: f64) -> Self {
        BucketPerKey { rate, capacity: capacity.max(1.0), buckets: Mutex::default() }
    }

    /// Takes one token from `key`'s bucket (see [`TokenBucket::take`]).
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(key) {
            buckets.insert(key.to_string(), TokenBucket::new(self.rate, self.capacity));
        }
        buckets[key].take(1.0)
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

    #[test]
    fn each_key_has_a_bucket_of_its_own_and_rate_zero_limits_nothing() {
        let per_device = BucketPerKey::new(1.0, 2.0);
        assert!(per_device.take("main").is_ok() && per_device.take("main").is_ok());
        let wait = per_device.take("main").unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(per_device.take("support").is_ok(), "another device is not held back");
        let unlimited = BucketPerKey::new(0.0, 1.0);
        assert!((0..1000).all(|_| unlimited.take("main").is_ok()));
    }
}

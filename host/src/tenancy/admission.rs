//! Admission of a tenant's requests: a token bucket for the request rate and a semaphore for
//! concurrency. Both refuse at once, never queue: a refused request gets 429 with the time to
//! wait in `Retry-After`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// One tenant's limiter. The gateway keeps it across rebuilds of the tenant as long as the
/// limits stay the same.
pub struct Admission {
    limits: Limits,
    in_flight: Arc<Semaphore>,
    bucket: Option<Mutex<Bucket>>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The tenant already serves its maximum of concurrent requests.
    #[error("this tenant is serving its maximum of {0} concurrent requests; retry shortly")]
    Concurrency(usize),
    /// The tenant sent more than its rate allows; retry after the given time.
    #[error("this tenant is over its rate of {rate} requests per second; retry in {} s", retry_after.as_secs().max(1))]
    Rate {
        /// The tenant's sustained rate.
        rate: u32,
        /// When the next request would be admitted.
        retry_after: Duration,
    },
}

impl Refusal {
    /// Whole seconds to wait before retrying, at least one (the `Retry-After` value).
    pub fn retry_after_seconds(&self) -> u64 {
        match self {
            Refusal::Concurrency(_) => 1,
            Refusal::Rate { retry_after, .. } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Admission {
    /// A limiter for `limits`, with a full bucket.
    pub fn new(limits: Limits) -> Self {
        let bucket = (limits.requests_per_second > 0)
            .then(|| Mutex::new(Bucket { tokens: f64::from(limits.burst.max(1)), refilled: Instant::now() }));
        Admission { limits, in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)), bucket }
    }

    /// Whether this limiter already enforces what `limits` asks for (rate, burst and
    /// concurrency), so a tenant change that leaves them alone keeps the bucket and the
    /// requests in flight.
    pub fn enforces(&self, limits: &Limits) -> bool {
        (self.limits.requests_per_second, self.limits.burst, self.limits.max_concurrent_requests)
            == (limits.requests_per_second, limits.burst, limits.max_concurrent_requests)
    }

    /// Admits one request: it holds the returned permit until its response is complete.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Concurrency(self.limits.max_concurrent_requests))?;
        if let Some(bucket) = &self.bucket {
            self.take_token(&mut bucket.lock().unwrap_or_else(|p| p.into_inner()))?;
        }
        Ok(permit)
    }

    fn take_token(&self, bucket: &mut Bucket) -> Result<(), Refusal> {
        let rate = f64::from(self.limits.requests_per_second);
        let capacity = f64::from(self.limits.burst.max(1));
        let now = Instant::now();
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.refilled).as_secs_f64() * rate).min(capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let retry_after = Duration::from_secs_f64((1.0 - bucket.tokens) / rate);
            Err(Refusal::Rate { rate: self.limits.requests_per_second, retry_after })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, concurrent: usize) -> Limits {
        Limits { requests_per_second: rate, burst, max_concurrent_requests: concurrent, ..Limits::default() }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refuses_with_the_wait() {
        let admission = Admission::new(limits(2, 3, 100));
        let permits: Vec<_> = (0..3).map(|_| admission.admit().expect("within the burst")).collect();
        let refusal = admission.admit().unwrap_err();
        let Refusal::Rate { rate: 2, retry_after } = refusal.clone() else { panic!("{refusal:?}") };
        assert!(retry_after <= Duration::from_millis(500), "{retry_after:?}");
        assert_eq!(refusal.retry_after_seconds(), 1);
        drop(permits);
    }

    #[test]
    fn concurrency_is_capped_until_a_permit_is_dropped() {
        let admission = Admission::new(limits(0, 0, 2));
        let first = admission.admit().unwrap();
        let _second = admission.admit().unwrap();
        assert_eq!(admission.admit().unwrap_err(), Refusal::Concurrency(2));
        drop(first);
        assert!(admission.admit().is_ok());
    }

    #[test]
    fn no_rate_limit_when_the_rate_is_zero() {
        let admission = Admission::new(limits(0, 1, 1000));
        for _ in 0..500 {
            drop(admission.admit().unwrap());
        }
    }
}

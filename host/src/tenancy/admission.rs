//! Admission of a tenant's requests: a token bucket for the request rate and a semaphore for
//! concurrency, twice — one budget for requests with a valid API token of the tenant, one for
//! the rest — plus a cap per client address on the rest. All of them refuse at once, never
//! queue: a refused request gets 429 with the time to wait in `Retry-After`.
//!
//! The two budgets are why a stranger cannot stop a tenant: requests without a token (a
//! tenant's public routes and signed webhooks accept them, so the host cannot refuse them
//! outright) can use up only their own budget, never the one of the tenant's users.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::Limits;
use crate::rate::{BucketPerKey, TokenBucket};

/// The address a request came from: its connection's peer. The listener puts it in every
/// request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// What per-client limits count by: the IPv4 address, or the /64 of an IPv6 address (one
    /// subscriber's usual allocation, so a client cannot dodge a cap by changing addresses).
    pub fn key(self) -> IpAddr {
        match self.0.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            v4 => v4,
        }
    }
}

/// Who sends a request, as far as admission is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The request carries a valid API token of the tenant.
    User,
    /// It does not; it came from this address.
    Anonymous(ClientAddr),
}

/// One tenant's limiter. The gateway keeps it across rebuilds of the tenant as long as the
/// limits stay the same.
pub struct Admission {
    limits: Limits,
    users: Budget,
    anonymous: Budget,
    anonymous_per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Each client's rate of requests without a token, for at most [`RATED_CLIENTS`] clients.
    anonymous_client_rates: Mutex<ClientRates>,
    /// Each device's rate of sent messages.
    sends: Arc<BucketPerKey>,
}

/// Clients whose rate of requests without a token is followed at once. A client whose bucket
/// is full again is forgotten when room is needed; when none is, a new client is held to the
/// tenant's anonymous rate only, so that many addresses cannot lock new ones out.
pub const RATED_CLIENTS: usize = 10_000;

/// How often, at most, a full map of client rates is swept for idle clients: a stream of new
/// addresses must not make every request go over all of them.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The clients whose rate is followed, and when the map was last swept.
#[derive(Default)]
struct ClientRates {
    buckets: HashMap<IpAddr, TokenBucket>,
    swept: Option<std::time::Instant>,
}

/// A rate, and concurrency limits: requests whose body is being read, and requests being
/// served, each at most `concurrency`.
struct Budget {
    reading: Arc<Semaphore>,
    in_flight: Arc<Semaphore>,
    concurrency: usize,
    bucket: Option<TokenBucket>,
    rate: u32,
    anonymous: bool,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The tenant already reads or serves its maximum of concurrent requests of the caller's
    /// kind.
    #[error("this tenant is serving its maximum of {limit} concurrent requests{}; retry shortly", without_token(*.anonymous))]
    Concurrency {
        /// The maximum.
        limit: usize,
        /// Whether it is the budget of requests without a valid API token.
        anonymous: bool,
    },
    /// This client is over its rate of requests without a token.
    #[error(
        "this client is over its rate of {rate} requests per second without a valid API token on this tenant; \
         retry in {} s, or send the API token",
        retry_after.as_secs().max(1)
    )]
    ClientRate {
        /// The sustained rate per client.
        rate: u32,
        /// When the client's next request would be admitted.
        retry_after: Duration,
    },
    /// This client already has its maximum of requests without a token in flight.
    #[error(
        "this client already has {0} requests without a valid API token in flight on this tenant; wait for them, \
         or send the API token"
    )]
    Client(usize),
    /// The caller's kind of request is over its rate; retry after the given time.
    #[error(
        "this tenant is over its rate of {rate} requests per second{}; retry in {} s",
        without_token(*.anonymous),
        retry_after.as_secs().max(1)
    )]
    Rate {
        /// The sustained rate.
        rate: u32,
        /// When the next request would be admitted.
        retry_after: Duration,
        /// Whether it is the budget of requests without a valid API token.
        anonymous: bool,
    },
}

fn without_token(anonymous: bool) -> &'static str {
    if anonymous { " without a valid API token" } else { "" }
}

impl Refusal {
    /// Whole seconds to wait before retrying, at least one (the `Retry-After` value).
    pub fn retry_after_seconds(&self) -> u64 {
        match self {
            Refusal::Concurrency { .. } | Refusal::Client(_) => 1,
            Refusal::Rate { retry_after, .. } | Refusal::ClientRate { retry_after, .. } => {
                retry_after.as_secs_f64().ceil().max(1.0) as u64
            }
        }
    }
}

/// An admitted request whose body may now be read; [`Ticket::hold`] then takes its place
/// among the requests being served.
pub struct Ticket<'a> {
    budget: &'a Budget,
    _reading: OwnedSemaphorePermit,
    client: Option<ClientPlace>,
}

/// A request being served; dropping it frees its place.
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    _client: Option<ClientPlace>,
}

/// A request counted against its client's cap until dropped.
struct ClientPlace {
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut per_client = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_client.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                per_client.remove(&self.key);
            }
        }
    }
}

impl Budget {
    fn new(concurrency: usize, rate: u32, burst: u32, anonymous: bool) -> Self {
        let bucket = (rate > 0).then(|| TokenBucket::new(f64::from(rate), f64::from(burst.max(1))));
        Budget {
            reading: Arc::new(Semaphore::new(concurrency)),
            in_flight: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            bucket,
            rate,
            anonymous,
        }
    }

    fn take_token(&self) -> Result<(), Refusal> {
        let Some(bucket) = &self.bucket else { return Ok(()) };
        bucket.take(1.0).map_err(|retry_after| Refusal::Rate {
            rate: self.rate,
            retry_after,
            anonymous: self.anonymous,
        })
    }

    fn slot(&self, semaphore: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Refusal> {
        semaphore
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Concurrency { limit: self.concurrency, anonymous: self.anonymous })
    }
}

impl Admission {
    /// A limiter for `limits`, with full buckets.
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits,
            users: Budget::new(limits.max_concurrent_requests, limits.requests_per_second, limits.burst, false),
            anonymous: Budget::new(
                limits.anonymous_concurrent_requests,
                limits.anonymous_requests_per_second,
                limits.burst,
                true,
            ),
            anonymous_per_client: Arc::default(),
            anonymous_client_rates: Mutex::default(),
            sends: Arc::new(BucketPerKey::new(f64::from(limits.sends_per_minute) / 60.0, f64::from(limits.send_burst))),
        }
    }

    /// The rate each device of the tenant may send messages at, a bucket per device id.
    pub fn sends(&self) -> &Arc<BucketPerKey> {
        &self.sends
    }

    /// Whether this limiter already enforces what `limits` asks for, so a tenant change that
    /// leaves them alone keeps the buckets and the requests in flight.
    pub fn enforces(&self, limits: &Limits) -> bool {
        let admission = |l: &Limits| {
            (
                l.requests_per_second,
                l.burst,
                l.max_concurrent_requests,
                l.anonymous_concurrent_requests,
                l.anonymous_concurrent_per_client,
                l.anonymous_requests_per_second,
                l.anonymous_requests_per_second_per_client,
                l.sends_per_minute,
                l.send_burst,
            )
        };
        admission(&self.limits) == admission(limits)
    }

    /// Admits one request of `caller` to have its body read: charges its rate, takes one of
    /// the reading places of its kind and, without a token, one of its client's. Bodies being
    /// read are bounded like requests being served, each kind on its own.
    pub fn admit(&self, caller: &Caller) -> Result<Ticket<'_>, Refusal> {
        let budget = match caller {
            Caller::User => &self.users,
            Caller::Anonymous(_) => &self.anonymous,
        };
        if let Caller::Anonymous(addr) = caller {
            self.take_client_token(addr.key())?;
        }
        budget.take_token()?;
        let client = match caller {
            Caller::User => None,
            Caller::Anonymous(addr) => Some(self.client_place(addr.key())?),
        };
        Ok(Ticket { budget, _reading: budget.slot(&budget.reading)?, client })
    }

    /// Charges one request to the rate of client `key`, if there is a rate per client.
    fn take_client_token(&self, key: IpAddr) -> Result<(), Refusal> {
        let rate = self.limits.anonymous_requests_per_second_per_client;
        if rate == 0 {
            return Ok(());
        }
        let mut rates = self.anonymous_client_rates.lock().unwrap_or_else(|p| p.into_inner());
        if !rates.buckets.contains_key(&key) && rates.buckets.len() >= RATED_CLIENTS {
            if rates.swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                rates.buckets.retain(|_, bucket| !bucket.is_full());
                rates.swept = Some(std::time::Instant::now());
            }
            if rates.buckets.len() >= RATED_CLIENTS {
                return Ok(());
            }
        }
        let burst = f64::from(self.limits.burst.max(1));
        let bucket = rates.buckets.entry(key).or_insert_with(|| TokenBucket::new(f64::from(rate), burst));
        bucket.take(1.0).map_err(|retry_after| Refusal::ClientRate { rate, retry_after })
    }

    fn client_place(&self, key: IpAddr) -> Result<ClientPlace, Refusal> {
        let mut per_client = self.anonymous_per_client.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_client.get(&key).copied().unwrap_or(0);
        if count >= self.limits.anonymous_concurrent_per_client {
            return Err(Refusal::Client(self.limits.anonymous_concurrent_per_client));
        }
        per_client.insert(key, count + 1);
        Ok(ClientPlace { per_client: self.anonymous_per_client.clone(), key })
    }
}

impl Ticket<'_> {
    /// Takes a place among the requests being served (its body read): the request holds the
    /// returned permit until its response is complete.
    pub fn hold(self) -> Result<Permit, Refusal> {
        Ok(Permit { _slot: self.budget.slot(&self.budget.in_flight)?, _client: self.client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, concurrent: usize) -> Limits {
        Limits { requests_per_second: rate, burst, max_concurrent_requests: concurrent, ..Limits::default() }
    }

    fn stranger(ip: &str) -> Caller {
        Caller::Anonymous(ClientAddr(ip.parse().unwrap()))
    }

    fn admit(admission: &Admission, caller: &Caller) -> Result<Permit, Refusal> {
        admission.admit(caller)?.hold()
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refuses_with_the_wait() {
        let admission = Admission::new(limits(2, 3, 100));
        let permits: Vec<_> = (0..3).map(|_| admit(&admission, &Caller::User).expect("within the burst")).collect();
        let refusal = admit(&admission, &Caller::User).err().unwrap();
        let Refusal::Rate { rate: 2, retry_after, anonymous: false } = refusal.clone() else { panic!("{refusal:?}") };
        assert!(retry_after <= Duration::from_millis(500), "{retry_after:?}");
        assert_eq!(refusal.retry_after_seconds(), 1);
        drop(permits);
    }

    #[test]
    fn concurrency_is_capped_until_a_permit_is_dropped() {
        let admission = Admission::new(limits(0, 0, 2));
        let first = admit(&admission, &Caller::User).unwrap();
        let _second = admit(&admission, &Caller::User).unwrap();
        assert_eq!(admit(&admission, &Caller::User).err(), Some(Refusal::Concurrency { limit: 2, anonymous: false }));
        drop(first);
        assert!(admit(&admission, &Caller::User).is_ok());
    }

    #[test]
    fn no_rate_limit_when_the_rate_is_zero() {
        let admission = Admission::new(limits(0, 1, 1000));
        for _ in 0..500 {
            drop(admit(&admission, &Caller::User).unwrap());
        }
    }

    #[test]
    fn requests_without_a_token_cannot_take_the_users_budget() {
        let limits = Limits {
            anonymous_concurrent_requests: 3,
            anonymous_concurrent_per_client: 2,
            anonymous_requests_per_second: 1,
            burst: 4,
            ..limits(1, 4, 2)
        };
        let admission = Admission::new(limits);
        // Strangers from several addresses fill their budget...
        let held: Vec<_> = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
            .iter()
            .map(|ip| admit(&admission, &stranger(ip)).expect("within the anonymous budget"))
            .collect();
        assert_eq!(
            admit(&admission, &stranger("198.51.100.4")).err(),
            Some(Refusal::Concurrency { limit: 3, anonymous: true })
        );
        // ...and drain their bucket...
        let refusal = admission.admit(&stranger("198.51.100.5")).err().unwrap();
        assert!(matches!(refusal, Refusal::Rate { anonymous: true, .. }), "{refusal:?}");
        // ...while the users' budget is whole.
        let users: Vec<_> = (0..2).map(|_| admit(&admission, &Caller::User).expect("the users' budget")).collect();
        drop((held, users));
    }

    #[test]
    fn one_client_cannot_take_the_whole_anonymous_budget() {
        let limits =
            Limits { anonymous_concurrent_requests: 10, anonymous_concurrent_per_client: 2, ..Limits::default() };
        let admission = Admission::new(limits);
        let first = admit(&admission, &stranger("203.0.113.9")).unwrap();
        let _second = admit(&admission, &stranger("203.0.113.9")).unwrap();
        assert_eq!(admit(&admission, &stranger("203.0.113.9")).err(), Some(Refusal::Client(2)));
        assert!(admit(&admission, &stranger("203.0.113.10")).is_ok(), "another client");
        drop(first);
        assert!(admit(&admission, &stranger("203.0.113.9")).is_ok(), "a finished request frees its place");
    }

    #[test]
    fn bodies_being_read_have_places_of_their_own_and_refusals_leave_nothing_behind() {
        let limits = Limits { anonymous_concurrent_requests: 2, anonymous_concurrent_per_client: 8, ..limits(0, 1, 2) };
        let admission = Admission::new(limits);
        // Two slow uploads without a token fill the anonymous reading places...
        let reading: Vec<_> = (0..2).map(|i| admission.admit(&stranger(&format!("192.0.2.{i}"))).unwrap()).collect();
        assert!(matches!(admission.admit(&stranger("192.0.2.9")), Err(Refusal::Concurrency { anonymous: true, .. })));
        // ...and the refused client is not remembered.
        assert_eq!(admission.anonymous_per_client.lock().unwrap().len(), 2);
        // Users still read and are served.
        let user = admission.admit(&Caller::User).unwrap().hold().unwrap();
        // A request whose body is read frees its reading place once it is being served.
        let served: Vec<_> = reading.into_iter().map(|ticket| ticket.hold().unwrap()).collect();
        let third = admission.admit(&stranger("192.0.2.3")).expect("a reading place again");
        assert!(matches!(third.hold(), Err(Refusal::Concurrency { anonymous: true, .. })), "but no serving place");
        drop((user, served));
        assert!(admission.anonymous_per_client.lock().unwrap().is_empty());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        assert_eq!(
            ClientAddr("2001:db8:1:2:3:4:5:6".parse().unwrap()).key(),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(ClientAddr("::ffff:192.0.2.7".parse().unwrap()).key(), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn one_client_is_held_to_its_own_rate() {
        let limits = Limits { anonymous_requests_per_second_per_client: 1, burst: 3, ..Limits::default() };
        let admission = Admission::new(limits);
        for _ in 0..3 {
            drop(admit(&admission, &stranger("198.51.100.1")).expect("within the client's burst"));
        }
        let refusal = admit(&admission, &stranger("198.51.100.1")).err().unwrap();
        assert!(matches!(refusal, Refusal::ClientRate { rate: 1, .. }), "{refusal:?}");
        assert_eq!(refusal.retry_after_seconds(), 1);
        // Another client, and the tenant's users, are not held to that client's rate.
        assert!(admit(&admission, &stranger("198.51.100.2")).is_ok());
        assert!(admit(&admission, &Caller::User).is_ok());
    }

    #[test]
    fn rated_clients_are_bounded_and_idle_ones_forgotten() {
        let limits = Limits { anonymous_requests_per_second_per_client: 1, burst: 1, ..Limits::default() };
        let admission = Admission::new(limits);
        let address = |n: usize| stranger(&format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255));
        for n in 0..RATED_CLIENTS {
            drop(admit(&admission, &address(n)).unwrap());
        }
        // Every bucket is empty: a new client is held to the tenant's rate only, and not
        // remembered.
        assert!(admit(&admission, &address(RATED_CLIENTS)).is_ok());
        assert_eq!(admission.anonymous_client_rates.lock().unwrap().buckets.len(), RATED_CLIENTS);
        // The next new client within the second does not sweep again.
        let swept = admission.anonymous_client_rates.lock().unwrap().swept;
        assert!(swept.is_some());
        assert!(admit(&admission, &address(RATED_CLIENTS + 2)).is_ok());
        assert_eq!(admission.anonymous_client_rates.lock().unwrap().swept, swept);
        // A second later the buckets are full again, and the idle clients are forgotten.
        std::thread::sleep(Duration::from_millis(1100));
        drop(admit(&admission, &address(RATED_CLIENTS + 1)).unwrap());
        assert_eq!(admission.anonymous_client_rates.lock().unwrap().buckets.len(), 1);
        assert!(admit(&admission, &address(RATED_CLIENTS + 1)).is_err(), "its own rate applies");
    }
}

//! The capacity of the instance pool, and each tenant's share of it.
//!
//! The pooling allocator is sized in *slots*. One slot holds one instance of any component
//! the engine accepts: the component instance, its core instances, memories and tables up to
//! the per-component maxima, and a fiber stack (see [`engine`](super::engine)). A store takes
//! one slot from its first instantiation until it is dropped, so the pool cannot run out
//! while fewer stores than slots exist. The slots are split:
//!
//! - a quarter at most for warm instances waiting for their next request (the
//!   [`IdleBudget`](super::pool::IdleBudget));
//! - the rest for requests in flight, divided evenly between the tenants. A request takes a
//!   [`Slot`] of its tenant's [`Share`] for as long as it holds an instance; when the share is
//!   in use, the tenant's next request is refused with a capacity error, however many its own
//!   limits allow, and every other tenant's share stays free. Requests without a valid token
//!   of the tenant may hold at most half of its share, so strangers cannot take the rest from
//!   the tenant's users. (With more tenants than
//!   slots, each still gets one; should the pool itself run out, that too is a capacity
//!   error, never the component's failure.)
//!
//! A share also holds the tenant's budget of guest CPU time (see [`cpu`](super::cpu)) and
//! its rate of component log lines (see [`logging`](crate::capability::logging)): the other
//! things all tenants share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cpu::CpuBudget;
use crate::rate::TokenBucket;

/// Instances the pool of a [`Runtime::new`](super::Runtime::new) holds.
pub const SLOTS: u32 = 1_000;

/// One tenant's share of the slots for requests in flight, its CPU budget and its log rate.
#[derive(Debug)]
pub struct Share {
    used: AtomicUsize,
    /// Of `used`, the slots of requests without a valid token of the tenant.
    anonymous: AtomicUsize,
    size: AtomicUsize,
    cpu: CpuBudget,
    log: Arc<TokenBucket>,
}

/// A slot of a [`Share`], held by one request; returned when dropped.
#[derive(Debug)]
pub struct Slot {
    share: Arc<Share>,
    anonymous: bool,
}

/// Why a request got no slot: its tenant's share is in use.
#[derive(Debug, thiserror::Error)]
#[error("this tenant's share of the instance pool ({0} instances) is in use")]
pub struct ShareInUse(pub usize);

impl Share {
    /// A share of `size` slots, `millicores` thousandths of a core and `log_rate`.
    pub fn new(size: usize, millicores: u32, log_rate: TokenBucket) -> Arc<Share> {
        Arc::new(Share {
            used: AtomicUsize::new(0),
            anonymous: AtomicUsize::new(0),
            size: AtomicUsize::new(size),
            cpu: CpuBudget::new(millicores),
            log: Arc::new(log_rate),
        })
    }

    /// How many requests of the tenant may hold an instance at once.
    pub fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    /// The tenant's budget of guest CPU time.
    pub fn cpu(&self) -> &CpuBudget {
        &self.cpu
    }

    /// The tenant's rate of component log bytes.
    pub fn log_rate(&self) -> &Arc<TokenBucket> {
        &self.log
    }

    /// A slot, if fewer than the share's size are in use — and, for a request without a valid
    /// token of the tenant (`anonymous`), if such requests hold fewer than half of it.
    pub fn take(self: &Arc<Self>, anonymous: bool) -> Result<Slot, ShareInUse> {
        let size = self.size.load(Ordering::Acquire);
        let below = |most: usize| move |used: usize| (used < most).then_some(used + 1);
        if anonymous {
            let most = (size / 2).max(1);
            if self.anonymous.fetch_update(Ordering::AcqRel, Ordering::Acquire, below(most)).is_err() {
                return Err(ShareInUse(most));
            }
        }
        match self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, below(size)) {
            Ok(_) => Ok(Slot { share: self.clone(), anonymous }),
            Err(_) => {
                if anonymous {
                    self.anonymous.fetch_sub(1, Ordering::AcqRel);
                }
                Err(ShareInUse(size))
            }
        }
    }

    /// Resizes the share (when tenants come or go). Slots in use above a smaller size stay
    /// until their requests end.
    pub fn resize(&self, size: usize) {
        self.size.store(size, Ordering::Release);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.share.used.fetch_sub(1, Ordering::AcqRel);
        if self.anonymous {
            self.share.anonymous.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// How `slots` are split: (slots for idle instances, slots for requests in flight).
pub fn split(slots: u32) -> (usize, usize) {
    let slots = slots as usize;
    (slots / 4, slots - slots / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_hands_out_at_most_its_size() {
        let share = Share::new(2, 1000, TokenBucket::new(1.0, 1.0));
        let (a, b) = (share.take(false).unwrap(), share.take(false).unwrap());
        assert_eq!(share.take(false).unwrap_err().0, 2);
        drop(a);
        let c = share.take(false).unwrap();
        share.resize(1);
        drop((b, c));
        let d = share.take(false).unwrap();
        assert!(share.take(false).is_err());
        drop(d);
        assert!(share.take(false).is_ok());
    }

    #[test]
    fn requests_without_a_token_hold_at_most_half_of_a_share() {
        let share = Share::new(4, 1000, TokenBucket::new(1.0, 1.0));
        let strangers = [share.take(true).unwrap(), share.take(true).unwrap()];
        assert_eq!(share.take(true).unwrap_err().0, 2, "half of the share");
        let users = [share.take(false).unwrap(), share.take(false).unwrap()];
        assert!(share.take(false).is_err(), "the share is in use");
        drop(strangers);
        let stranger = share.take(true).expect("a stranger's slot came back");
        drop((users, stranger));
        assert_eq!(share.used.load(Ordering::Acquire), 0);
        assert_eq!(share.anonymous.load(Ordering::Acquire), 0);
    }
}

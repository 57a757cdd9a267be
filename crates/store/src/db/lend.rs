//! The reading connections of a store, each lent to one read at a time.
//!
//! A long read (the admin API's list of a thousand devices, written while it is read) holds
//! its connection throughout; the reads beside it (each admin call's token check among them)
//! take another. Connections are opened when a read finds none free, up to [`READERS`]: a
//! store that never reads two things at once keeps one. With every one of them lent, a read
//! waits for the first one returned, not for any one in particular.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::StoreError;

/// How many connections a store reads on at most.
pub(crate) const READERS: usize = 4;

/// Connections of type `C` lent to one read at a time.
pub(crate) struct Lender<C> {
    state: Mutex<Lending<C>>,
    /// Wakes a read waiting for a connection: one was returned, or a place to open one freed.
    returned: Condvar,
    /// How many connections may be open at once.
    most: usize,
}

/// What a [`Lender`] has.
struct Lending<C> {
    /// The connections no read holds, in the order they came back: the last is lent first, its
    /// caches the warmest.
    idle: Vec<C>,
    /// How many connections are open or being opened, lent or idle.
    open: usize,
}

/// A connection lent to one read, returned when dropped (by a read that panicked too).
pub(crate) struct Lent<'l, C> {
    /// The connection, until it is returned.
    conn: Option<C>,
    /// Where it is returned to.
    lender: &'l Lender<C>,
}

impl<C> Lender<C> {
    /// A lender of up to `most` connections, `open` among them already.
    pub(crate) fn new(most: usize, open: Vec<C>) -> Self {
        let state = Lending { open: open.len(), idle: open };
        Lender { state: Mutex::new(state), returned: Condvar::new(), most }
    }

    /// A connection no other read holds: the last one returned; else a new one from `open`,
    /// while fewer than the most are open; else the first one returned (or a new one, once a
    /// place to open it is freed).
    ///
    /// A read opens at most one connection. When that fails while others are open (a server
    /// at its connection limit), the read waits for one of those instead: it fails only when
    /// none is open to wait for. Waiting reads are woken in no set order, so under a load
    /// that never lets a connection go idle one read could wait long; at [`READERS`]
    /// connections for reads of milliseconds, none does.
    pub(crate) fn lend(&self, open: impl FnOnce() -> Result<C, StoreError>) -> Result<Lent<'_, C>, StoreError> {
        let mut open = Some(open);
        let mut failed = None;
        let mut state = self.state();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lent { conn: Some(conn), lender: self });
            }
            if state.open < self.most
                && let Some(open) = open.take()
            {
                state.open += 1;
                drop(state);
                // Opened without the lock held; its place is freed again if it fails (or panics).
                let mut opening = Opening { lender: self, opened: false };
                match open() {
                    Ok(conn) => {
                        opening.opened = true;
                        return Ok(Lent { conn: Some(conn), lender: self });
                    }
                    Err(error) => failed = Some(error),
                }
                drop(opening);
                state = self.state();
                continue;
            }
            if state.open == 0
                && let Some(error) = failed.take()
            {
                return Err(error);
            }
            state = self.returned.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// What the lender has. Every change to it is whole before its lock is released: a
    /// poisoned lock still guards a consistent state.
    fn state(&self) -> MutexGuard<'_, Lending<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection being opened, which holds a place among the open ones: freed when dropped
/// before it was opened (the opening failed).
struct Opening<'l, C> {
    /// Whose place it holds.
    lender: &'l Lender<C>,
    /// Whether the connection was opened: then its place stays taken.
    opened: bool,
}

impl<C> Drop for Opening<'_, C> {
    fn drop(&mut self) {
        if !self.opened {
            self.lender.state().open -= 1;
            // All: a read that has tried to open one already waits for a connection returned,
            // and must not be the only one woken by a place.
            self.lender.returned.notify_all();
        }
    }
}

impl<C> std::ops::Deref for Lent<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.conn.as_ref().expect("lent until dropped")
    }
}

impl<C> std::ops::DerefMut for Lent<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("lent until dropped")
    }
}

impl<C> Drop for Lent<'_, C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.lender.state().idle.push(conn);
            self.lender.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, Sender, channel};
    use std::sync::{Arc, atomic::AtomicUsize, atomic::Ordering};
    use std::time::Duration;

    use super::*;

    /// A lender of numbered connections, counting the ones it opened.
    fn lender(most: usize) -> (Arc<Lender<usize>>, Arc<AtomicUsize>) {
        (Arc::new(Lender::new(most, vec![0])), Arc::new(AtomicUsize::new(1)))
    }

    #[test]
    fn a_connection_is_opened_only_when_none_is_free_and_never_more_than_the_most() {
        let (lender, opened) = lender(2);
        let first = lender.lend(opener(&opened)).unwrap();
        assert_eq!(*first, 0, "the connection open at the start");
        drop(first);
        let again = lender.lend(opener(&opened)).unwrap();
        assert_eq!((*again, opened.load(Ordering::SeqCst)), (0, 1), "the free one lent again, none opened");
        let beside = lender.lend(opener(&opened)).unwrap();
        assert_eq!(*beside, 1, "a second read beside the first opens a connection");
        let third = Beside::lend(&lender, opener(&opened));
        assert!(third.still_waiting(), "a third waits: two are the most");
        drop(beside);
        assert_eq!(third.answered().unwrap(), 1, "it takes the one returned");
        assert_eq!(opened.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_read_waits_for_whichever_connection_is_returned_first() {
        let (lender, opened) = lender(3);
        // Every connection held by a read, taken one after the other.
        let mut held: Vec<Beside> = (0..3)
            .map(|index| {
                let read = Beside::lend(&lender, opener(&opened));
                assert_eq!(read.answered().unwrap(), index);
                read
            })
            .collect();
        let waiting = Beside::lend(&lender, opener(&opened));
        assert!(waiting.still_waiting(), "a read waits while every connection is held");
        // Neither the first taken nor the last: the waiting read takes the one returned.
        drop(held.remove(1));
        assert_eq!(waiting.answered().unwrap(), 1);
    }

    #[test]
    fn an_opening_that_failed_with_none_open_is_the_reads_error_and_frees_its_place() {
        let lender = Lender::<usize>::new(2, Vec::new());
        let refused = lender.lend(|| Err(gone()));
        assert!(matches!(refused, Err(StoreError::Invalid(ref why)) if why == "the server is gone"));
        assert_eq!(lender.state().open, 0);
        let panicked = std::panic::catch_unwind(|| lender.lend(|| panic!("an opening that panics")).map(drop));
        assert!(panicked.is_err());
        assert_eq!(lender.state().open, 0);
        assert_eq!(*lender.lend(|| Ok(7)).expect("the places are free again"), 7);
    }

    #[test]
    fn an_opening_that_failed_beside_an_open_connection_waits_for_it() {
        let (lender, opened) = lender(2);
        let held = lender.lend(opener(&opened)).unwrap();
        // The server refuses a second connection (at its limit, say): the read waits.
        let (waiting, tried) = Failing::beside(&lender);
        tried.fail();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lender.state().open > 1 {
            assert!(std::time::Instant::now() < deadline, "the failed opening did not free its place");
            std::thread::yield_now();
        }
        assert!(waiting.still_waiting(), "a read waits for the open connection");
        drop(held);
        assert_eq!(waiting.answered().unwrap(), 0, "it takes the connection returned");
    }

    #[test]
    fn a_place_freed_by_a_failed_opening_wakes_a_read_that_can_open_one() {
        let (lender, opened) = lender(3);
        let held = lender.lend(opener(&opened)).unwrap();
        // Two reads opening a connection each, until told to fail: all three places taken.
        let (first_read, first) = Failing::beside(&lender);
        let (second_read, second) = Failing::beside(&lender);
        let early = Beside::lend(&lender, opener(&opened));
        assert!(early.still_waiting(), "three are the most");
        first.fail();
        assert_eq!(early.answered().unwrap(), 1, "the first failure's place let the waiting read open one");
        // The first failed read waits for a connection returned; a later read waits beside it.
        let late = Beside::lend(&lender, opener(&opened));
        assert!(late.still_waiting() && first_read.still_waiting());
        second.fail();
        assert_eq!(late.answered().unwrap(), 2, "woken by the place, not only the read that cannot use it");
        drop((held, early, late));
        assert!(
            first_read.answered().is_ok() && second_read.answered().is_ok(),
            "the failed reads take those returned"
        );
    }

    /// The error of an opening the server refused.
    fn gone() -> StoreError {
        StoreError::Invalid("the server is gone".into())
    }

    /// An opener of the next numbered connection, counting in `opened`.
    fn opener(opened: &Arc<AtomicUsize>) -> impl FnOnce() -> Result<usize, StoreError> + Send + 'static {
        let opened = opened.clone();
        move || Ok(opened.fetch_add(1, Ordering::SeqCst))
    }

    /// The test's side of an opening that fails when told.
    struct Failing {
        fail: Sender<()>,
    }

    impl Failing {
        /// A read of `lender` beside, once its opening runs (holding its place), and the
        /// handle that makes that opening fail.
        fn beside(lender: &Arc<Lender<usize>>) -> (Beside, Failing) {
            let ((opening, opened), (fail, until_failed)) = (channel(), channel());
            let open = move || {
                opening.send(()).unwrap();
                until_failed.recv().unwrap();
                Err(gone())
            };
            let read = Beside::lend(lender, open);
            opened.recv_timeout(Duration::from_secs(10)).expect("the opening runs");
            (read, Failing { fail })
        }

        /// Makes the opening fail.
        fn fail(&self) {
            self.fail.send(()).unwrap();
        }
    }

    /// A read of a lender on a thread of its own, holding the connection it got until dropped.
    struct Beside {
        answer: Receiver<Result<usize, StoreError>>,
        /// Dropped: the read returns its connection.
        _release: Sender<()>,
    }

    impl Beside {
        /// Lends a connection of `lender`, opening with `open`.
        fn lend(
            lender: &Arc<Lender<usize>>,
            open: impl FnOnce() -> Result<usize, StoreError> + Send + 'static,
        ) -> Beside {
            let ((answered, answer), (release, until_released)) = (channel(), channel::<()>());
            let lender = lender.clone();
            std::thread::spawn(move || match lender.lend(open) {
                Ok(conn) => {
                    answered.send(Ok(*conn)).ok();
                    until_released.recv().ok();
                }
                Err(error) => drop(answered.send(Err(error))),
            });
            Beside { answer, _release: release }
        }

        /// Whether the read still waits after a while.
        fn still_waiting(&self) -> bool {
            self.answer.recv_timeout(Duration::from_millis(200)).is_err()
        }

        /// What the read got, waiting for it.
        fn answered(&self) -> Result<usize, StoreError> {
            self.answer.recv_timeout(Duration::from_secs(10)).expect("the read answered")
        }
    }
}

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
    use std::sync::mpsc::{Receiver, channel};
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
        let third = lend_beside(&lender, opener(&opened));
        assert!(still_waiting(&third), "a third waits: two are the most");
        drop(beside);
        assert_eq!(answered(&third).unwrap(), 1, "it takes the one returned");
        assert_eq!(opened.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_read_waits_for_whichever_connection_is_returned_first() {
        let (lender, opened) = lender(3);
        // Every connection held by a read, each until told, taken one after the other.
        let (started, all_started) = channel();
        let mut held: Vec<_> = (0..3)
            .map(|_| {
                let (lender, opened, started, (release, until_released)) =
                    (lender.clone(), opened.clone(), started.clone(), channel::<()>());
                let read = std::thread::spawn(move || {
                    let conn = lender.lend(opener(&opened)).unwrap();
                    started.send(()).unwrap();
                    until_released.recv().unwrap();
                    *conn
                });
                all_started.recv().unwrap();
                (release, read)
            })
            .collect();
        let waiting = lend_beside(&lender, opener(&opened));
        assert!(still_waiting(&waiting), "a read waits while every connection is held");
        // Neither the first taken nor the last: the waiting read takes the one returned.
        let (release, read) = held.remove(1);
        release.send(()).unwrap();
        assert_eq!(read.join().unwrap(), 1);
        assert_eq!(answered(&waiting).unwrap(), 1);
        for (release, read) in held {
            release.send(()).unwrap();
            read.join().unwrap();
        }
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
        let waiting = lend_beside(&lender, || Err(gone()));
        assert!(still_waiting(&waiting), "a read waits for the open connection");
        assert_eq!(lender.state().open, 1, "the failed opening freed its place");
        drop(held);
        assert_eq!(answered(&waiting).unwrap(), 0, "it takes the connection returned");
    }

    #[test]
    fn a_place_freed_by_a_failed_opening_wakes_a_waiting_read_to_open_one() {
        let (lender, opened) = lender(2);
        let held = lender.lend(opener(&opened)).unwrap();
        // A read opening the second connection, until told to fail.
        let (fail, until_failed) = channel::<()>();
        let failing = lend_beside(&lender, move || {
            until_failed.recv().unwrap();
            Err(gone())
        });
        while lender.state().open < 2 {
            std::thread::yield_now();
        }
        let waiting = lend_beside(&lender, opener(&opened));
        assert!(still_waiting(&waiting), "two are the most: a third read waits");
        fail.send(()).unwrap();
        assert_eq!(answered(&waiting).unwrap(), 1, "the freed place let the waiting read open one");
        drop(held);
        assert_eq!(answered(&failing).unwrap(), 0, "the failed read took the connection returned");
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

    /// A read of `lender` on a thread of its own, opening with `open`: the connection it got
    /// (returned at once), or its error.
    fn lend_beside(
        lender: &Arc<Lender<usize>>,
        open: impl FnOnce() -> Result<usize, StoreError> + Send + 'static,
    ) -> Receiver<Result<usize, StoreError>> {
        let (answered, answer) = channel();
        let lender = lender.clone();
        std::thread::spawn(move || answered.send(lender.lend(open).map(|conn| *conn)).ok());
        answer
    }

    /// Whether the read answering on `answer` still waits after a while.
    fn still_waiting(answer: &Receiver<Result<usize, StoreError>>) -> bool {
        answer.recv_timeout(Duration::from_millis(200)).is_err()
    }

    /// What the read answering on `answer` got, waiting for it.
    fn answered(answer: &Receiver<Result<usize, StoreError>>) -> Result<usize, StoreError> {
        answer.recv_timeout(Duration::from_secs(10)).expect("the read answered")
    }
}

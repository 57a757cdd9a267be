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
    /// while fewer than the most are open; else the first one returned, once it is.
    pub(crate) fn lend(&self, open: impl FnOnce() -> Result<C, StoreError>) -> Result<Lent<'_, C>, StoreError> {
        let mut state = self.state();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lent { conn: Some(conn), lender: self });
            }
            if state.open < self.most {
                state.open += 1;
                drop(state);
                // Opened without the lock held; its place is freed again if it fails (or panics).
                let mut opening = Opening { lender: self, opened: false };
                let conn = open()?;
                opening.opened = true;
                return Ok(Lent { conn: Some(conn), lender: self });
            }
            state = self.returned.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn state(&self) -> MutexGuard<'_, Lending<C>> {
        // Every change to the state is whole before its lock is released: a poisoned lock
        // still guards a consistent one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection being opened, which holds a place among the open ones: freed when dropped
/// before it was opened (the opening failed).
struct Opening<'l, C> {
    lender: &'l Lender<C>,
    opened: bool,
}

impl<C> Drop for Opening<'_, C> {
    fn drop(&mut self) {
        if !self.opened {
            self.lender.state().open -= 1;
            self.lender.returned.notify_one();
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

    fn opener(opened: &AtomicUsize) -> impl FnOnce() -> Result<usize, StoreError> + '_ {
        || Ok(opened.fetch_add(1, Ordering::SeqCst))
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
        let (answered, answer) = channel();
        let third = (lender.clone(), opened.clone());
        std::thread::spawn(move || answered.send(*third.0.lend(opener(&third.1)).unwrap()).ok());
        assert!(answer.recv_timeout(Duration::from_millis(200)).is_err(), "a third waits: two are the most");
        drop(beside);
        assert_eq!(answer.recv_timeout(Duration::from_secs(10)).unwrap(), 1, "it takes the one returned");
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
        let (answered, answer) = channel();
        let waiting = (lender.clone(), opened.clone());
        std::thread::spawn(move || answered.send(*waiting.0.lend(opener(&waiting.1)).unwrap()).ok());
        let wait = |answer: &Receiver<_>, millis| answer.recv_timeout(Duration::from_millis(millis));
        assert!(wait(&answer, 200).is_err(), "a read waits while every connection is held");
        // The read that took a connection last ends first: the waiting read takes that one.
        let (release, read) = held.pop().unwrap();
        release.send(()).unwrap();
        assert_eq!(read.join().unwrap(), 2);
        assert_eq!(wait(&answer, 10_000).expect("the read took the connection returned"), 2);
        for (release, read) in held {
            release.send(()).unwrap();
            read.join().unwrap();
        }
    }

    #[test]
    fn a_connection_that_failed_to_open_frees_its_place() {
        let (lender, opened) = lender(2);
        let held = lender.lend(opener(&opened)).unwrap();
        let refused = lender.lend(|| Err(StoreError::Invalid("the server is gone".into())));
        assert!(matches!(refused, Err(StoreError::Invalid(ref why)) if why == "the server is gone"));
        let panicked = std::panic::catch_unwind(|| lender.lend(|| panic!("an opening that panics")).map(drop));
        assert!(panicked.is_err());
        let next = lender.lend(opener(&opened)).expect("the place is free again");
        assert_eq!((*held, *next), (0, 1));
    }
}

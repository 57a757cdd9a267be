//! What bounds a listener's connections: the [`ConnectionGate`] (how many are open, in all and
//! per client), each connection's [`Activity`] (to close idle ones) and the [`TimedBody`] a
//! request's body is read through (to stop slow uploads).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::body::BodyError;
use crate::tenancy::admission::ClientAddr;

/// Counts a listener's open connections, in all and per client address, and refuses those
/// over either cap.
pub struct ConnectionGate {
    open: Arc<Semaphore>,
    max_open: usize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    max_per_client: usize,
}

/// An admitted connection's place; dropping it frees the place.
pub struct Pass {
    gate: Arc<ConnectionGate>,
    client: IpAddr,
    _open: OwnedSemaphorePermit,
}

impl ConnectionGate {
    /// A gate for at most `max_open` connections, `max_per_client` of them from one client.
    pub fn new(max_open: usize, max_per_client: usize) -> Self {
        ConnectionGate {
            open: Arc::new(Semaphore::new(max_open)),
            max_open,
            per_client: Mutex::new(HashMap::new()),
            max_per_client,
        }
    }

    /// Admits a connection from `ip`, unless the listener or that client is at its cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Pass> {
        let open = self.open.clone().try_acquire_owned().ok()?;
        let client = ClientAddr(ip).key();
        let mut per_client = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_client.entry(client).or_default();
        if *count >= self.max_per_client {
            return None;
        }
        *count += 1;
        Some(Pass { gate: self.clone(), client, _open: open })
    }

    /// Waits until every admitted connection has ended.
    pub async fn drained(&self) {
        let all = u32::try_from(self.max_open).unwrap_or(u32::MAX);
        let _ = self.open.acquire_many(all).await;
    }

    /// Connections open now from `ip`'s client key.
    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        let per_client = self.per_client.lock().unwrap();
        per_client.get(&ClientAddr(ip).key()).copied().unwrap_or(0)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut per_client = self.gate.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// Whether a connection has requests in flight, and since when it has had none.
pub struct Activity {
    state: Mutex<(usize, Instant)>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { state: Mutex::new((0, Instant::now())) }
    }
}

impl Activity {
    /// Marks a request as started; it ends when the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.update(|in_flight| *in_flight += 1);
        Busy(self.clone())
    }

    fn update(&self, change: impl FnOnce(&mut usize)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut state.0);
        state.1 = Instant::now();
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let (in_flight, since) = *self.state.lock().unwrap_or_else(|p| p.into_inner());
            let quiet = since.elapsed();
            if in_flight == 0 && quiet >= idle {
                return;
            }
            let wait = if in_flight == 0 { idle - quiet } else { idle };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight on a connection; dropping it ends the request.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|in_flight| *in_flight -= 1);
    }
}

/// A request body that fails with [`BodyError::TimedOut`] once reading it has taken longer
/// than its timeout, counted from the request's arrival.
pub struct TimedBody<B> {
    inner: B,
    arrived: Instant,
    timeout: Duration,
    /// Armed the first time the body is not ready, so an empty body costs no timer.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> TimedBody<B> {
    /// `inner`, to be read within `timeout` from now.
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimedBody { inner, arrived: Instant::now(), timeout, deadline: None }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(|e| BodyError::Read(e.into()))));
        }
        let deadline = this.arrived + this.timeout;
        let sleep = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut(this.timeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn the_gate_caps_connections_in_all_and_per_client() {
        let gate = Arc::new(ConnectionGate::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = gate.admit(a).expect("room");
        let _second = gate.admit(a).expect("room");
        assert!(gate.admit(a).is_none(), "a third connection from one client");
        let _third = gate.admit(b).expect("another client");
        assert!(gate.admit("192.0.2.3".parse().unwrap()).is_none(), "a fourth connection in all");
        drop(first);
        assert_eq!(gate.open_from(a), 1);
        assert!(gate.admit(a).is_some(), "a closed connection frees its place");
    }

    #[test]
    fn one_ipv6_client_is_its_slash_64() {
        let gate = Arc::new(ConnectionGate::new(10, 1));
        let _one = gate.admit("2001:db8:1:2::1".parse().unwrap()).expect("room");
        assert!(gate.admit("2001:db8:1:2:ffff::9".parse().unwrap()).is_none(), "same /64");
        assert!(gate.admit("2001:db8:1:3::1".parse().unwrap()).is_some(), "another /64");
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_fails() {
        let (_sender, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(1);
        let timed = TimedBody::new(body, Duration::from_millis(50));
        let error = timed.collect().await.expect_err("a timeout");
        assert!(matches!(error, BodyError::TimedOut(_)), "{error}");
    }

    #[tokio::test]
    async fn a_body_that_arrives_is_read_whole() {
        let body = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let timed = TimedBody::new(body, Duration::from_millis(50));
        assert_eq!(timed.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_without_requests_in_flight() {
        let activity = Arc::new(Activity::default());
        let idle = Duration::from_millis(50);
        let busy = activity.begin();
        let waited = tokio::time::timeout(Duration::from_millis(300), activity.idle_for(idle)).await;
        assert!(waited.is_err(), "idle while a request is in flight");
        drop(busy);
        let waited = tokio::time::timeout(Duration::from_secs(5), activity.idle_for(idle)).await;
        assert!(waited.is_ok(), "not idle long after the last request");
    }
}

//! Spreading reconnects over time.
//!
//! whatsapp-rust retries a lost connection on WhatsApp Web's Fibonacci backoff (1 s, 1 s,
//! 2 s, 3 s, 5 s, …) with only ±10 % jitter. When WhatsApp drops a thousand devices at once,
//! they all retry within the same fifth of a second; those that cannot be served in that
//! burst retry together again at the next step — waves that the load benchmark's reconnect
//! histogram shows. [`SpreadReconnects`] wraps the transport factory and waits a random
//! delay, uniform in `[0, RECONNECT_SPREAD)`, before every connection of a session that has
//! been connected before ("full jitter"), so the retries arrive evenly instead of in waves.
//! The first connection of a session (at start, or the reconnect right after pairing) is not
//! delayed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use whatsapp_rust::async_channel::Receiver;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};

/// The window reconnect attempts are spread over.
pub const RECONNECT_SPREAD: Duration = Duration::from_secs(3);

/// A transport factory that delays the reconnects of a session that was connected.
pub struct SpreadReconnects<F> {
    inner: F,
    was_connected: Arc<AtomicBool>,
}

impl<F> SpreadReconnects<F> {
    /// Wraps `inner`; connections are delayed once `was_connected` is set.
    pub fn new(inner: F, was_connected: Arc<AtomicBool>) -> Self {
        SpreadReconnects { inner, was_connected }
    }
}

#[async_trait::async_trait]
impl<F: TransportFactory> TransportFactory for SpreadReconnects<F> {
    async fn create_transport(&self) -> anyhow::Result<(Arc<dyn Transport>, Receiver<TransportEvent>)> {
        if self.was_connected.load(Ordering::Relaxed) {
            let spread = u64::try_from(RECONNECT_SPREAD.as_millis()).unwrap_or(u64::MAX);
            tokio::time::sleep(Duration::from_millis(fastrand::u64(..spread))).await;
        }
        self.inner.create_transport().await
    }
}

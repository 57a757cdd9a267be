//! Pacing reconnects.
//!
//! whatsapp-rust retries a lost connection on WhatsApp Web's Fibonacci backoff (1 s, 1 s,
//! 2 s, 3 s, 5 s, …) with only ±10 % jitter. When WhatsApp drops a thousand devices at once,
//! they all retry within the same fifth of a second: a storm of handshakes that WhatsApp sees
//! from one address and that takes the gateway's cores from its API. [`PacedReconnects`] wraps
//! the transport factory and gives every reconnect of a session that has been connected
//! before a slot of a [`ReconnectPacer`] shared by all the sessions of a
//! [`WhatsappDevices`](crate::whatsapp::WhatsappDevices) (the gateway has one): at most
//! [`RECONNECTS_PER_SECOND`], evenly spaced, in the order they asked. The first connection of a
//! session (at start, or the reconnect right after pairing) is not paced.
//!
//! The wait is part of whatsapp-rust's 20 s connection attempt: beyond 2,500 sessions
//! reconnecting at once (20 s of slots), the last ones time out and retry on the client's
//! backoff, their slots unused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use whatsapp_rust::async_channel::Receiver;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};

/// Reconnects the gateway starts a second, all sessions together. A reconnect of a device whose
/// pre-keys WhatsApp still holds costs the gateway about 4 ms of CPU (Noise, login, the first
/// queries: BENCHMARKS.md), so this pace leaves more than half of two cores to the API while a
/// thousand devices are back in about 8 s, an eighth of them in any second.
pub const RECONNECTS_PER_SECOND: u32 = 125;

/// Reconnect slots: one every `1 / RECONNECTS_PER_SECOND`, taken in turn.
#[derive(Debug)]
pub struct ReconnectPacer {
    interval: Duration,
    /// The earliest moment the next slot may start.
    next: Mutex<Instant>,
}

impl Default for ReconnectPacer {
    fn default() -> Self {
        ReconnectPacer::new(RECONNECTS_PER_SECOND)
    }
}

impl ReconnectPacer {
    /// Slots for `per_second` reconnects a second.
    pub fn new(per_second: u32) -> Self {
        ReconnectPacer { interval: Duration::from_secs(1) / per_second.max(1), next: Mutex::new(Instant::now()) }
    }

    /// Takes the next slot for a reconnect asking at `now`: `now` itself when no slot is taken
    /// for later, else one interval after the last one taken.
    pub fn slot(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (*next).max(now);
        *next = slot + self.interval;
        slot
    }
}

/// A transport factory that paces the reconnects of a session that was connected.
pub struct PacedReconnects<F> {
    inner: F,
    was_connected: Arc<AtomicBool>,
    pacer: Arc<ReconnectPacer>,
}

impl<F> PacedReconnects<F> {
    /// Wraps `inner`; connections wait for a slot of `pacer` once `was_connected` is set.
    pub fn new(inner: F, was_connected: Arc<AtomicBool>, pacer: Arc<ReconnectPacer>) -> Self {
        PacedReconnects { inner, was_connected, pacer }
    }
}

#[async_trait::async_trait]
impl<F: TransportFactory> TransportFactory for PacedReconnects<F> {
    async fn create_transport(&self) -> anyhow::Result<(Arc<dyn Transport>, Receiver<TransportEvent>)> {
        if self.was_connected.load(Ordering::Relaxed) {
            tokio::time::sleep_until(self.pacer.slot(Instant::now())).await;
        }
        self.inner.create_transport().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_asking_at_once_get_evenly_spaced_slots_in_turn() {
        let pacer = ReconnectPacer::new(100);
        let now = Instant::now();
        let slots: Vec<Duration> = (0..300).map(|_| pacer.slot(now) - now).collect();
        assert_eq!(slots[..3], [Duration::ZERO, Duration::from_millis(10), Duration::from_millis(20)]);
        assert_eq!(slots[299], Duration::from_millis(2990), "300 reconnects take 3 s at 100 a second");
        // Whatever second one looks at, it holds at most the rate.
        assert!((0..3).all(|s| slots.iter().filter(|d| d.as_secs() == s).count() == 100));
    }

    #[test]
    fn a_reconnect_after_a_quiet_spell_is_not_delayed() {
        let pacer = ReconnectPacer::new(10);
        let now = Instant::now();
        assert_eq!(pacer.slot(now), now);
        assert_eq!(pacer.slot(now), now + Duration::from_millis(100));
        let later = now + Duration::from_secs(5);
        assert_eq!(pacer.slot(later), later, "the slots taken before are long past");
    }
}

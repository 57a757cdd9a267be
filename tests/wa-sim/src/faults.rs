//! Fault injection: refusing connections, IQ latency, dropping and kicking devices,
//! refusing messages.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hub::{Hub, Outbound, lock};
use crate::stanza::login;
use crate::world::World;

/// Switches consulted by the accept loop and the connection tasks.
#[derive(Default)]
pub struct Faults {
    refuse_until: Mutex<Option<Instant>>,
    latency_ms: AtomicU64,
    /// Accounts temporarily banned, until when.
    bans: Mutex<HashMap<String, Instant>>,
    /// Accounts messages to which are refused: the nack code, and for how many more.
    nacks: Mutex<HashMap<String, (u16, usize)>>,
}

impl Faults {
    /// Refuse (immediately close) new connections for this long.
    pub fn refuse_for(&self, d: Duration) {
        *lock(&self.refuse_until) = Some(Instant::now() + d);
    }

    /// Whether new connections are being refused right now.
    pub fn refusing(&self) -> bool {
        lock(&self.refuse_until).is_some_and(|t| Instant::now() < t)
    }

    /// Delay every IQ answer by this much (zero turns it off).
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms.store(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Bans the account's devices from logging in for this long.
    pub fn ban_for(&self, phone: &str, d: Duration) {
        lock(&self.bans).insert(phone.to_string(), Instant::now() + d);
    }

    /// How much longer the account is banned, if it is.
    pub fn ban_left(&self, phone: &str) -> Option<Duration> {
        let until = *lock(&self.bans).get(phone)?;
        until.checked_duration_since(Instant::now()).filter(|left| !left.is_zero())
    }

    /// Refuses the next `count` messages to the account with error `code` (replacing
    /// what was set before; a count of 0 turns it off).
    pub fn nack_next(&self, phone: &str, code: u16, count: usize) {
        let mut nacks = lock(&self.nacks);
        if count == 0 {
            nacks.remove(phone);
        } else {
            nacks.insert(phone.to_owned(), (code, count));
        }
    }

    /// Whether a message to the account is to be refused now: the code if so (counting
    /// it off).
    pub fn take_nack(&self, phone: &str) -> Option<u16> {
        let mut nacks = lock(&self.nacks);
        let (code, left) = nacks.get_mut(phone)?;
        let code = *code;
        *left -= 1;
        if *left == 0 {
            nacks.remove(phone);
        }
        Some(code)
    }

    /// The current IQ answer delay.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }
}

/// Closes the TCP connection of every client (or of one account's devices); returns
/// how many were dropped.
pub fn drop_connections(hub: &Hub, phone: Option<&str>) -> usize {
    hub.broadcast(|d| phone.is_none_or(|p| d.is_some_and(|d| d.phone == p)), || Outbound::Close)
}

/// Logs every device of the account out: connected ones get `<stream:error code="401"/>`,
/// and none of them may log in again (they get `<failure reason="401"/>`).
pub fn log_out(hub: &Hub, world: &World, phone: &str) -> usize {
    let world_devices = world.account_by_phone(phone).map(|a| a.devices.as_slice()).unwrap_or_default();
    hub.remove_account_devices(phone, world_devices);
    hub.broadcast(|d| d.is_some_and(|d| d.phone == phone), || Outbound::Final(login::stream_error(401)))
}

/// Tells every connected device of the account that another client replaced it.
pub fn replace(hub: &Hub, phone: &str) -> usize {
    hub.broadcast(|d| d.is_some_and(|d| d.phone == phone), || Outbound::Final(login::stream_replaced()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nack_fault_refuses_as_many_messages_as_asked_of_one_account() {
        let faults = Faults::default();
        faults.nack_next("1", 463, 2);
        assert_eq!(faults.take_nack("2"), None);
        assert_eq!(faults.take_nack("1"), Some(463));
        assert_eq!(faults.take_nack("1"), Some(463));
        assert_eq!(faults.take_nack("1"), None);
        faults.nack_next("1", 479, 1);
        faults.nack_next("1", 479, 0);
        assert_eq!(faults.take_nack("1"), None);
    }
}

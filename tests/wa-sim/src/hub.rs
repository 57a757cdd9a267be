//! Live connections, linked devices and replies the sim is waiting for.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use wacore_binary::Node;

use crate::mailbox::Mailboxes;
use crate::pairing::PairingState;
use crate::signal::{Bundle, DeviceKeys};

/// Identifies one connection for the lifetime of the sim.
pub type ConnId = u64;

/// A logged-in device: account phone number and device id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceAddr {
    /// The account's phone number.
    pub phone: String,
    /// The device id (0 = primary phone, companions above).
    pub device: u16,
}

/// What a connection task is asked to do from outside.
#[derive(Debug)]
pub enum Outbound {
    /// Send this node.
    Node(Node),
    /// Send this node, then close the socket (stream errors, failures).
    Final(Node),
    /// Close the socket without a word.
    Close,
}

struct Conn {
    tx: mpsc::UnboundedSender<Outbound>,
    device: Option<DeviceAddr>,
    pairing: PairingState,
}

/// The registry shared by all connection tasks and the control API.
#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    conns: Mutex<HashMap<ConnId, Conn>>,
    linked: Mutex<HashMap<String, BTreeSet<u16>>>,
    removed: Mutex<HashSet<DeviceAddr>>,
    /// Key shares owed to freshly linked devices: `None` until the device uploads its
    /// pre-keys, then the encrypted message, kept until the client confirms it.
    key_shares: Mutex<HashMap<DeviceAddr, Option<Node>>>,
    /// Pre-keys uploaded by client devices and not used yet.
    keys: Mutex<HashMap<DeviceAddr, DeviceKeys>>,
    /// Messages sent to devices and not acknowledged yet.
    mailboxes: Mailboxes,
    waiting: Mutex<HashMap<String, oneshot::Sender<Node>>>,
    /// The most connections each device had logged in at once.
    peaks: Mutex<HashMap<DeviceAddr, usize>>,
}

impl Hub {
    /// Registers a new connection; `device` is `None` for an unpaired client.
    pub fn register(&self, tx: mpsc::UnboundedSender<Outbound>, device: Option<DeviceAddr>) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = &device {
            lock(&self.linked).entry(d.phone.clone()).or_default().insert(d.device);
        }
        let mut conns = lock(&self.conns);
        conns.insert(id, Conn { tx, device: device.clone(), pairing: PairingState::default() });
        if let Some(d) = device {
            let concurrent = conns.values().filter(|c| c.device.as_ref() == Some(&d)).count();
            let mut peaks = lock(&self.peaks);
            let peak = peaks.entry(d).or_default();
            *peak = (*peak).max(concurrent);
        }
        id
    }

    /// The most connections any linked device of account `phone` had logged in at once.
    pub fn peak_connections(&self, phone: &str) -> usize {
        lock(&self.peaks).iter().filter(|(d, _)| d.phone == phone).map(|(_, peak)| *peak).max().unwrap_or(0)
    }

    /// How many connections are open, logged in or pairing.
    pub fn connection_count(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, id: ConnId) {
        lock(&self.conns).remove(&id);
        self.mailboxes.disconnected(id);
    }

    /// Queues a message for one connection; `false` if it is gone.
    pub fn send(&self, id: ConnId, msg: Outbound) -> bool {
        lock(&self.conns).get(&id).is_some_and(|c| c.tx.send(msg).is_ok())
    }

    /// Sends a message to a device now if it is online, and keeps it until the device
    /// acknowledges it (to deliver it again at the device's next login).
    pub fn deliver(&self, addr: &DeviceAddr, message: Node) {
        if let Some(conn) = self.mailboxes.hold(addr, message.clone()) {
            self.send(conn, Outbound::Node(message));
        }
    }

    /// The messages the sim keeps for devices until they acknowledge them.
    pub fn mailboxes(&self) -> &Mailboxes {
        &self.mailboxes
    }

    /// Queues a message (built per connection) for every connection matching `filter`;
    /// returns how many were reached.
    pub fn broadcast(&self, filter: impl Fn(Option<&DeviceAddr>) -> bool, msg: impl Fn() -> Outbound) -> usize {
        let conns = lock(&self.conns);
        conns.values().filter(|c| filter(c.device.as_ref())).filter(|c| c.tx.send(msg()).is_ok()).count()
    }

    /// Runs `f` on a connection's pairing state.
    pub fn with_pairing<T>(&self, id: ConnId, f: impl FnOnce(&mut PairingState) -> T) -> Option<T> {
        lock(&self.conns).get_mut(&id).map(|c| f(&mut c.pairing))
    }

    /// The first connection whose pairing state satisfies `pred`.
    pub fn find_pairing(&self, pred: impl Fn(&PairingState) -> bool) -> Option<ConnId> {
        let conns = lock(&self.conns);
        conns.iter().find(|(_, c)| c.device.is_none() && pred(&c.pairing)).map(|(id, _)| *id)
    }

    /// Companion devices linked at runtime (or seen logging in) for an account.
    pub fn linked_devices(&self, phone: &str) -> BTreeSet<u16> {
        lock(&self.linked).get(phone).cloned().unwrap_or_default()
    }

    /// Records a newly linked companion device (it is owed an app-state key share).
    pub fn link(&self, addr: &DeviceAddr) {
        lock(&self.key_shares).insert(addr.clone(), None);
        lock(&self.removed).remove(addr);
        lock(&self.linked).entry(addr.phone.clone()).or_default().insert(addr.device);
    }

    /// Whether the device is owed a key share that has not been built yet.
    pub fn owes_key_share(&self, addr: &DeviceAddr) -> bool {
        matches!(lock(&self.key_shares).get(addr), Some(None))
    }

    /// Keeps the built key share until the client confirms it.
    pub fn store_key_share(&self, addr: &DeviceAddr, message: Node) {
        lock(&self.key_shares).insert(addr.clone(), Some(message));
    }

    /// The built key share the device has not confirmed yet (to send it again on login).
    pub fn unconfirmed_key_share(&self, addr: &DeviceAddr) -> Option<Node> {
        lock(&self.key_shares).get(addr).cloned().flatten()
    }

    /// The client confirmed message `id`; if it was a key share, it is settled (`true`).
    pub fn confirm_key_share(&self, id: &str) -> bool {
        let mut shares = lock(&self.key_shares);
        let before = shares.len();
        shares.retain(|_, m| m.as_ref().is_none_or(|m| crate::node::attr(m, "id").as_deref() != Some(id)));
        shares.len() != before
    }

    /// Records a device's pre-key upload.
    pub fn add_keys(&self, addr: &DeviceAddr, upload: DeviceKeys) {
        match lock(&self.keys).entry(addr.clone()) {
            Entry::Occupied(mut known) => known.get_mut().merge(upload),
            Entry::Vacant(slot) => {
                slot.insert(upload);
            }
        }
    }

    /// One-time pre-keys of the device the sim has not used yet.
    pub fn unused_pre_keys(&self, addr: &DeviceAddr) -> usize {
        lock(&self.keys).get(addr).map_or(0, DeviceKeys::unused)
    }

    /// Uses up one of the device's pre-keys for a new session.
    pub fn take_bundle(&self, addr: &DeviceAddr) -> Option<Bundle> {
        lock(&self.keys).get_mut(addr)?.take_bundle()
    }

    /// The logged-in devices of an account that are connected right now.
    pub fn connected_devices(&self, phone: &str) -> Vec<(ConnId, DeviceAddr)> {
        lock(&self.conns)
            .iter()
            .filter_map(|(id, c)| Some((*id, c.device.clone()?)))
            .filter(|(_, d)| d.phone == phone)
            .collect()
    }

    /// Marks every linked device of an account as logged out; returns them.
    pub fn remove_account_devices(&self, phone: &str, world_devices: &[u16]) -> Vec<DeviceAddr> {
        let mut devices: BTreeSet<u16> =
            self.linked.lock().unwrap_or_else(PoisonError::into_inner).remove(phone).unwrap_or_default();
        devices.extend(world_devices.iter().copied());
        let addrs: Vec<DeviceAddr> =
            devices.into_iter().map(|device| DeviceAddr { phone: phone.to_owned(), device }).collect();
        for addr in &addrs {
            self.mailboxes.discard(addr);
        }
        lock(&self.removed).extend(addrs.iter().cloned());
        addrs
    }

    /// Marks one device as logged out (the client unlinked itself).
    pub fn remove_device(&self, addr: &DeviceAddr) {
        if let Some(set) = self.linked.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&addr.phone) {
            set.remove(&addr.device);
        }
        self.mailboxes.discard(addr);
        lock(&self.removed).insert(addr.clone());
    }

    /// Whether the device was logged out and may not log in again.
    pub fn is_removed(&self, addr: &DeviceAddr) -> bool {
        lock(&self.removed).contains(addr)
    }

    /// A device id for a new companion of the account, unused by `taken` and linked ones.
    pub fn free_device_id(&self, phone: &str, taken: &[u16]) -> u16 {
        let linked = self.linked_devices(phone);
        (1..).find(|d| !taken.contains(d) && !linked.contains(d)).unwrap_or(u16::MAX)
    }

    /// Sends a server-initiated IQ to a connection and waits for the client's answer.
    pub async fn request(&self, id: ConnId, iq: Node, timeout: Duration) -> Option<Node> {
        let iq_id = crate::node::attr(&iq, "id")?;
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(iq_id.clone(), tx);
        if !self.send(id, Outbound::Node(iq)) {
            lock(&self.waiting).remove(&iq_id);
            return None;
        }
        let answer = tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok);
        lock(&self.waiting).remove(&iq_id);
        answer
    }

    /// Hands a client's IQ answer to whoever waits for it; `false` if nobody does.
    pub fn deliver_answer(&self, answer: Node) -> bool {
        let Some(id) = crate::node::attr(&answer, "id") else {
            return false;
        };
        match self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&id) {
            Some(tx) => {
                let _ = tx.send(answer);
                true
            }
            None => false,
        }
    }
}

/// Locks a mutex; a panic elsewhere while holding it does not wedge the sim.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_counts_the_connections_one_device_had_at_once() {
        let hub = Hub::default();
        let device = DeviceAddr { phone: "6285550000001".into(), device: 1 };
        let (tx, _rx) = mpsc::unbounded_channel();
        let first = hub.register(tx.clone(), Some(device.clone()));
        hub.unregister(first);
        let _second = hub.register(tx.clone(), Some(device.clone()));
        assert_eq!(hub.peak_connections("6285550000001"), 1, "one after the other is never two");
        let _third = hub.register(tx.clone(), Some(device));
        let _pairing = hub.register(tx, None);
        assert_eq!(hub.peak_connections("6285550000001"), 2);
        assert_eq!(hub.peak_connections("6281234567890"), 0);
    }
}

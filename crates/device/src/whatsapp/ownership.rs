//! The node's share of the devices, when their state is shared with other nodes.
//!
//! The node takes its turns ([`Leases::turn`]) on a schedule of their own, and from each it
//! learns which leases it holds — its *desired* devices. Every device whose session does not
//! match (a lease it should run and does not, a client it runs without the lease, a lease
//! to hand over) is then reconciled in a task of its own, under the device's operation lock,
//! against the desired devices *at that moment*: a slow device (a client flushing as it
//! stops) never delays the renewals, and a task that runs late never acts on an old turn.
//! A node whose turns fail for a lease time gives up every device: its leases may be another
//! node's by then.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use waedge_contract::types::DeviceState;
use waedge_device_pg::{Lease, Turn};

use super::{Key, Operations, Sessions, WhatsappDevice, key, operation};
use crate::storage::Shared;
use crate::{DeviceSession, is_terminal};

/// The node's turns, running until [stopped](Turns::stop).
pub(super) struct Turns {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Everything a turn and its reconciliations need.
#[derive(Clone)]
struct Node {
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
    operations: Arc<Operations>,
    /// The leases the node holds and runs, by device, as of its last turn.
    desired: Arc<Mutex<HashMap<Key, Lease>>>,
}

impl Turns {
    /// Starts the turns on `runtime`.
    pub(super) fn start(
        shared: Arc<Shared>,
        sessions: Arc<Sessions>,
        operations: Arc<Operations>,
        runtime: &tokio::runtime::Handle,
    ) -> Turns {
        let (stop, stopping) = watch::channel(false);
        let node = Node { shared, sessions, operations, desired: Arc::default() };
        Turns { stop, task: runtime.spawn(node.run(stopping)) }
    }

    /// Stops the turns and waits for the one under way: no lease is taken after this.
    pub(super) async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

impl Node {
    async fn run(self, mut stopping: watch::Receiver<bool>) {
        let leases = self.shared.leases();
        // When the last turn that renewed the leases began: they last a lease time from then.
        let mut renewed = Instant::now();
        loop {
            let known: Vec<Key> = self.sessions.lock().expect("sessions lock").keys().cloned().collect();
            let known: Vec<(&str, &str)> =
                known.iter().map(|(tenant, device)| (tenant.as_str(), device.as_str())).collect();
            let began = Instant::now();
            // A turn slower than what is left of the leases is as good as a failed one.
            let left = leases.ttl().saturating_sub(renewed.elapsed());
            match tokio::time::timeout(left, leases.turn(&known)).await {
                Ok(Ok(turn)) => {
                    renewed = began;
                    self.act(turn);
                }
                Ok(Err(e)) => tracing::warn!("taking this node's turn with the device leases: {e}"),
                Err(_) => tracing::warn!("this node's turn with the device leases took longer than its leases last"),
            }
            let running = !self.desired.lock().expect("desired lock").is_empty();
            if running && renewed.elapsed() + leases.turn_interval() >= leases.ttl() {
                tracing::error!("no turn for a lease time: giving up every device, other nodes may hold them");
                self.act(Turn::default());
            }
            tokio::select! {
                _ = tokio::time::sleep(leases.turn_interval()) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Makes `turn` the desired devices, starts the reconciliation of every device that
    /// differs, and hands the surplus over.
    fn act(&self, turn: Turn) {
        let surplus: HashSet<Key> = turn.surplus.iter().map(|lease| key(&lease.tenant, &lease.device)).collect();
        let desired: HashMap<Key, Lease> = turn
            .held
            .iter()
            .map(|lease| (key(&lease.tenant, &lease.device), lease.clone()))
            .filter(|(device, _)| !surplus.contains(device))
            .collect();
        *self.desired.lock().expect("desired lock") = desired.clone();
        let sessions: Vec<(Key, Arc<WhatsappDevice>)> =
            self.sessions.lock().expect("sessions lock").iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        for (device, session) in &sessions {
            let differs = match desired.get(device) {
                Some(lease) => session.storage.lease().as_ref() != Some(lease) || should_start(session),
                None => session.storage.lease().is_some(),
            };
            if differs {
                tokio::spawn(self.clone().reconcile(device.clone(), None));
            }
        }
        for lease in turn.surplus {
            let device = key(&lease.tenant, &lease.device);
            tokio::spawn(self.clone().reconcile(device, Some(lease)));
        }
        for (device, lease) in desired {
            if !sessions.iter().any(|(known, _)| *known == device) {
                // A device no session runs here (removed meanwhile): back to the others.
                tokio::spawn(self.clone().reconcile(device, Some(lease)));
            }
        }
    }

    /// Brings `device`'s session in line with the desired devices, under its operation lock;
    /// then releases `release` (a lease to hand over) unless the device is desired again.
    async fn reconcile(self, device: Key, release: Option<Lease>) {
        let _operation = operation(&self.operations, &device).lock_owned().await;
        let want = self.desired.lock().expect("desired lock").get(&device).cloned();
        let session = self.sessions.lock().expect("sessions lock").get(&device).cloned();
        let session = session.filter(|session| !session.removed.load(Ordering::Acquire));
        if let Some(session) = &session {
            let holds = session.storage.lease();
            if holds.is_some() && holds != want {
                tracing::info!(device = device.1, "this node no longer runs the device");
                session.give_up().await;
            }
            if let Some(lease) = &want {
                if session.storage.lease().as_ref() != Some(lease) {
                    tracing::info!(device = device.1, epoch = lease.epoch, "this node runs the device now");
                    session.storage.set_lease(Some(lease.clone()));
                    // Where the last holder's client stopped for good, this one does not start
                    // it (a banned device tries again, as at start: WhatsApp says if the ban
                    // is over).
                    let stopped = lease.stopped_as.as_deref().and_then(|state| state.parse::<DeviceState>().ok());
                    let stopped = stopped.filter(|state| *state != DeviceState::Banned);
                    match stopped {
                        Some(state) => session.set_state(state),
                        None if !is_terminal(session.status().state) => session.set_state(DeviceState::Connecting),
                        None => {}
                    }
                }
                if should_start(session) {
                    session.clone().start().await;
                }
            }
        }
        let give_back = match release {
            Some(lease) if want.is_none() => Some(lease),
            Some(lease) if session.is_none() => Some(lease),
            _ => None,
        };
        if let Some(lease) = give_back {
            self.desired.lock().expect("desired lock").remove(&device);
            tracing::info!(device = device.1, "handing the device over to the other nodes");
            if let Err(e) = self.shared.leases().release(&lease).await {
                tracing::warn!(device = device.1, "releasing the device's lease: {e}; it expires instead");
            }
        }
    }
}

/// Whether a session this node holds should get a client: it was opened (its remembered
/// state applied), it has none, and it is neither unlinked (nothing to connect) nor logged
/// out, replaced or banned (as at start: those wait for the operator, or for the ban's end).
fn should_start(session: &WhatsappDevice) -> bool {
    let state = session.status().state;
    session.opened.load(Ordering::Acquire)
        && session.storage.owned()
        && !session.has_client()
        && state != DeviceState::Unlinked
        && !is_terminal(state)
}

//! The node's share of the devices, when their state is shared with other nodes: the turns
//! of [`Leases::turn`](waedge_device_pg::Leases::turn), acted upon — a device whose lease
//! this node took is started, one it lost or must hand over is stopped (and, handed over,
//! released).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use waedge_device_pg::{Lease, Turn};

use super::{Key, Operations, WhatsappDevice, key, operation};
use crate::DeviceSession;
use crate::storage::Shared;
use waedge_contract::types::DeviceState;

/// Takes the node's turns until aborted.
pub(super) async fn run(
    shared: Arc<Shared>,
    sessions: Arc<Mutex<HashMap<Key, Arc<WhatsappDevice>>>>,
    operations: Arc<Operations>,
) {
    let leases = shared.leases();
    let mut held: Vec<Lease> = Vec::new();
    loop {
        match leases.turn(&held).await {
            Ok(turn) => held = act(&shared, &sessions, &operations, turn).await,
            Err(e) => tracing::warn!("taking this node's turn with the device leases: {e}"),
        }
        tokio::time::sleep(leases.turn_interval()).await;
    }
}

/// Acts on `turn` and returns the leases the node holds after it.
async fn act(
    shared: &Shared,
    sessions: &Mutex<HashMap<Key, Arc<WhatsappDevice>>>,
    operations: &Operations,
    turn: Turn,
) -> Vec<Lease> {
    let session =
        |lease: &Lease| sessions.lock().expect("sessions lock").get(&key(&lease.tenant, &lease.device)).cloned();
    let mut given_up = HashSet::new();
    for lease in turn.lost.iter().chain(&turn.surplus) {
        if let Some(session) = session(lease) {
            let _operation = operation(operations, &key(&lease.tenant, &lease.device)).lock_owned().await;
            if session.storage.lease().as_ref() == Some(lease) {
                session.give_up().await;
            }
        }
    }
    for lease in &turn.surplus {
        tracing::info!(device = lease.device, "handing the device over to a node below its share");
        if let Err(e) = shared.leases().release(lease).await {
            tracing::warn!(device = lease.device, "releasing the device's lease: {e}; it expires instead");
        }
        given_up.insert(lease.id);
    }
    for lease in &turn.taken {
        let Some(session) =
            session(lease).filter(|session| !session.removed.load(std::sync::atomic::Ordering::Acquire))
        else {
            // Not a device of this node's (yet): back to the others.
            if let Err(e) = shared.leases().release(lease).await {
                tracing::warn!(device = lease.device, "releasing a device this node does not run: {e}");
            }
            given_up.insert(lease.id);
            continue;
        };
        let _operation = operation(operations, &key(&lease.tenant, &lease.device)).lock_owned().await;
        tracing::info!(device = lease.device, epoch = lease.epoch, "this node runs the device now");
        session.storage.set_lease(Some(lease.clone()));
        let state = session.status().state;
        // A logged-out or replaced device stays so (as at start); the others connect.
        if !(crate::is_terminal(state) && state != DeviceState::Banned) {
            session.set_state(DeviceState::Connecting);
            session.clone().start().await;
        }
    }
    turn.held.into_iter().filter(|lease| !given_up.contains(&lease.id)).collect()
}

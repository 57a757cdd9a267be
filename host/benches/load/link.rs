//! Linking devices the way an operator does, many at a time: create the device, start a QR
//! linking through the admin API, have the account's phone in the sim scan the code, and wait
//! until the device is connected.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use wa_sim::WaSim;

use crate::gateway::Gateway;
use crate::report::Progress;
use crate::sim::Sim;

/// Linkings in flight at once.
const PARALLEL: usize = 16;
/// How long a device may take to reach the next state of its linking.
const STATE_DEADLINE: Duration = Duration::from_secs(60);
/// How often the scenarios poll the gateway for a state they wait for.
pub const POLL: Duration = Duration::from_millis(100);

/// One device to create and link.
pub struct Link {
    /// Its tenant.
    pub tenant: String,
    /// Its id.
    pub device: String,
    /// The phone number of the sim account that links it.
    pub phone: String,
}

/// Creates and links every device, [`PARALLEL`] at a time, with a progress line per tenth.
pub async fn link_all(gateway: &Arc<Gateway>, sim: &Sim, links: Vec<Link>) {
    let mut progress = Progress::new("devices linked", links.len());
    let mut queue = links.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < PARALLEL
            && let Some(link) = queue.next()
        {
            running.spawn(link_one(gateway.clone(), sim.server().clone(), link));
        }
        match running.join_next().await {
            None => return,
            Some(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
            Some(Ok(())) => progress.step(),
        }
    }
}

/// Creates one device, links it by QR code and waits until it is connected.
async fn link_one(gateway: Arc<Gateway>, sim: Arc<WaSim>, link: Link) {
    let Link { tenant, device, phone } = link;
    gateway.link(&sim, (&tenant, &device, &phone), STATE_DEADLINE).await;
}

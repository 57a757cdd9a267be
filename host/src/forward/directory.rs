//! Who runs each device, where that node takes calls, and how the device last was: read
//! from the database every [`REFRESH`] (and at once when a node says it no longer runs a
//! device), so that finding where to forward a call costs no query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waedge_contract::types::{DeviceState, DeviceStatus};
use waedge_device::is_terminal;
use waedge_device::storage::Shared;
use waedge_store::Store;
use waedge_store::devices::recorded_state;

/// How often the directory is read again.
pub const REFRESH: Duration = Duration::from_millis(500);

/// A device: its tenant and its id.
type Key = (String, String);

/// What the directory knows of one device.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// Whether a node holds its lease.
    held: bool,
    /// Where the node holding its lease takes calls, if it is alive and takes calls.
    address: Option<String>,
    /// Its status as its node last recorded it.
    status: DeviceStatus,
}

/// The devices of the cluster, as last read.
pub struct Directory {
    store: Store,
    shared: Arc<Shared>,
    devices: Mutex<HashMap<Key, Entry>>,
    /// When the last read began; one read at a time.
    read: tokio::sync::Mutex<Option<Instant>>,
}

impl Directory {
    /// An empty directory of the devices of `store`, whose leases are in `shared`: call
    /// [`refresh`](Self::refresh) to fill it, and [`keep_up`](Self::keep_up) beside it.
    pub fn new(store: Store, shared: Arc<Shared>) -> Directory {
        Directory { store, shared, devices: Mutex::default(), read: tokio::sync::Mutex::default() }
    }

    /// Where to forward the calls of `device` of `tenant`: the address of the node running it.
    pub fn owner(&self, tenant: &str, device: &str) -> Option<String> {
        self.devices.lock().expect("directory lock").get(&key(tenant, device)).and_then(|entry| entry.address.clone())
    }

    /// The status of `device` of `tenant` as the node running it recorded it. A device no
    /// node runs is `connecting` (a node takes it at its next turn) unless it stopped for
    /// good (logged out, replaced, banned), as its next node leaves it.
    pub fn status(&self, tenant: &str, device: &str) -> Option<DeviceStatus> {
        let entry = self.devices.lock().expect("directory lock").get(&key(tenant, device)).cloned()?;
        let mut status = entry.status;
        if !entry.held && !is_terminal(status.state) {
            status.state = DeviceState::Connecting;
        }
        Some(status)
    }

    /// Reads the directory again, unless a read that began after `since` has ended meanwhile.
    pub async fn refresh(&self, since: Instant) -> anyhow::Result<()> {
        let mut read = self.read.lock().await;
        if read.is_some_and(|began| began > since) {
            return Ok(());
        }
        let began = Instant::now();
        let holdings = self.shared.holdings().await?;
        let store = self.store.clone();
        let (nodes, devices) =
            tokio::task::spawn_blocking(move || Ok::<_, anyhow::Error>((store.nodes()?, store.every_device()?)))
                .await??;
        let addresses: HashMap<String, String> =
            nodes.into_iter().filter(|node| node.alive).filter_map(|node| Some((node.name, node.address?))).collect();
        let owners: HashMap<Key, String> = holdings
            .into_iter()
            .filter_map(|holding| Some((key(&holding.tenant, &holding.device), holding.owner?)))
            .collect();
        let mut devices: HashMap<Key, Entry> = devices
            .into_iter()
            .map(|record| {
                let device = key(&record.tenant, &record.id);
                let status = DeviceStatus {
                    state: recorded_state(&record),
                    id: record.id,
                    jid: record.jid,
                    lid: record.lid,
                    push_name: record.push_name,
                };
                let owner = owners.get(&device);
                let address = owner.and_then(|owner| addresses.get(owner)).cloned();
                (device, Entry { held: owner.is_some(), address, status })
            })
            .collect();
        // A device gone from the store whose lease a node still holds: where to ask that node
        // to remove it.
        for (device, owner) in owners {
            if let std::collections::hash_map::Entry::Vacant(vacant) = devices.entry(device) {
                let status = DeviceStatus {
                    id: vacant.key().1.clone(),
                    state: DeviceState::Connecting,
                    jid: None,
                    lid: None,
                    push_name: None,
                };
                let address = addresses.get(&owner).cloned();
                vacant.insert(Entry { held: true, address, status });
            }
        }
        *self.devices.lock().expect("directory lock") = devices;
        *read = Some(began);
        Ok(())
    }

    /// Reads the directory every [`REFRESH`]; runs until the task is aborted.
    pub async fn keep_up(&self) {
        loop {
            tokio::time::sleep(REFRESH).await;
            if let Err(e) = self.refresh(Instant::now()).await {
                tracing::warn!("reading which node runs each device: {e:#}");
            }
        }
    }
}

fn key(tenant: &str, device: &str) -> Key {
    (tenant.to_owned(), device.to_owned())
}

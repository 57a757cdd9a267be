//! `waedge cluster status`: the nodes sharing a PostgreSQL store and which of them runs each
//! device, read from the store itself (run it where a node's configuration is).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use waedge_device::storage::Shared;
use waedge_store::Store;

use super::output;
use crate::config::Config;

/// Prints the nodes of the store `config_path` names (alive or not, with the count of
/// changes each serves and where its cluster listener is reached), each device's lease, and
/// how many devices each node runs.
pub async fn status(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let Some(url) = &config.store else {
        anyhow::bail!(
            "{} names no PostgreSQL store: a gateway on SQLite is one node, see `waedge device list` for its devices",
            config_path.display()
        );
    };
    let store = {
        let url = url.expose().to_owned();
        tokio::task::spawn_blocking(move || Store::connect(&url)).await?.context("opening the store")?
    };
    let reading = store.clone();
    let (nodes, changes) =
        tokio::task::spawn_blocking(move || Ok::<_, anyhow::Error>((reading.nodes()?, reading.changes()?))).await??;
    // Only reads: the leases of a node named `status` are never taken.
    let lease = Duration::from_millis(config.cluster.clone().unwrap_or_default().lease_ms);
    let devices = Shared::connect(url.expose(), 1, "status", lease).await?.holdings().await?;

    println!("{changes} change(s) committed to what nodes serve from.\n");
    output::table(
        &["NODE", "ALIVE", "SERVES", "SEEN", "CLUSTER LISTENER"],
        nodes.iter().map(|node| {
            let alive = if node.alive { "yes" } else { "no" };
            let address = node.address.clone().unwrap_or_else(|| "-".into());
            vec![node.name.clone(), alive.into(), node.serves.to_string(), ago(node.seen_ago), address]
        }),
    );
    println!();
    output::table(
        &["DEVICE", "NODE", "EPOCH", "LEASE LEFT"],
        devices.iter().map(|device| {
            let owner = device.owner.clone().unwrap_or_else(|| "-".into());
            let left = device.expires_in.map_or_else(|| "-".into(), |left| format!("{:.1}s", left.as_secs_f64()));
            vec![format!("{}/{}", device.tenant, device.device), owner, device.epoch.to_string(), left]
        }),
    );
    let mut runs: BTreeMap<&str, usize> = BTreeMap::new();
    for device in &devices {
        *runs.entry(device.owner.as_deref().unwrap_or("(none)")).or_default() += 1;
    }
    let share: Vec<String> = runs.iter().map(|(node, count)| format!("{node}: {count}")).collect();
    println!("\nDevices per node: {}", if share.is_empty() { "no device".into() } else { share.join(", ") });
    Ok(ExitCode::SUCCESS)
}

/// `duration` ago, to the tenth of a second.
fn ago(duration: Duration) -> String {
    format!("{:.1}s ago", duration.as_secs_f64())
}

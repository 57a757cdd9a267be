//! `waedge store migrate`: moves a SQLite store, and the WhatsApp sessions of its devices,
//! into PostgreSQL.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use waedge_device::storage::{self, Database};
use waedge_store::Store;

use super::serve::{DataDirLock, sqlite_store};
use crate::config::{Config, DatabaseUrl};

/// Copies the SQLite store of the data directory that `config_path` names into the
/// PostgreSQL store it names, which must be empty, and moves the WhatsApp session of each
/// linked device from its file in the data directory into the device state the nodes share,
/// printing what it moved as it goes. Refuses while a gateway runs on the data directory.
pub fn migrate(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let Some(url) = &config.store else {
        anyhow::bail!(
            "{} names no PostgreSQL store to copy into: set `store = \"postgres://user:password@host:port/database\"` \
             in it, then run this again",
            config_path.display()
        );
    };
    let _claim = DataDirLock::acquire(&config.data_dir)?;
    let path = sqlite_store(&config)?;
    anyhow::ensure!(path.exists(), "there is no SQLite store at {}: nothing to copy", path.display());
    let source = Store::open(&path).with_context(|| format!("opening the store {}", path.display()))?;
    let linked = linked_devices(&source)?;
    let target = Store::connect(url.expose()).with_context(|| format!("opening the store {}", url.redacted()))?;
    target
        .ensure_empty()
        .with_context(|| format!("copying the store into {} (nothing was written)", url.redacted()))?;

    // The sessions go first, each in a transaction of its own that replaces what an earlier,
    // interrupted run moved; no node runs a device before the store that names it is copied.
    let stayed = if linked.is_empty() {
        Vec::new()
    } else {
        let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
        runtime.block_on(move_sessions(&config.data_dir, url, &linked))?
    };

    eprintln!("Copying {} into {} …", path.display(), url.redacted());
    let copied = source
        .copy_to(&target, |table| eprintln!("  {:<20} {} row(s)", table.table, table.rows))
        .with_context(|| format!("copying the store into {} (the store was not written)", url.redacted()))?;
    let rows: u64 = copied.iter().map(|table| table.rows).sum();
    eprintln!(
        "Copied {rows} row(s) of {} tables and the sessions of {} device(s). {} and the device files are left \
         as they were: keep them as a backup. Start waedge with this configuration to serve from PostgreSQL.",
        copied.len(),
        linked.len() - stayed.len(),
        path.display()
    );
    if !stayed.is_empty() {
        // Recorded as what they are now, not as linked.
        target.unlink_devices(&stayed).context("recording the devices without a session as unlinked")?;
        let names: Vec<String> = stayed.iter().map(|(tenant, device)| format!("{tenant}/{device}")).collect();
        eprintln!("Link these devices again: {}.", names.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves the session of each of `linked` from its file in `data_dir` into the device state in
/// the PostgreSQL store at `url`. Returns the devices that had no session to move.
async fn move_sessions(
    data_dir: &Path,
    url: &DatabaseUrl,
    linked: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    let db = Database::connect(url.expose(), 1).await.context("opening the devices' state in the PostgreSQL store")?;
    eprintln!("Moving the WhatsApp sessions of {} linked device(s) into {} …", linked.len(), url.redacted());
    let mut stayed = Vec::new();
    for (tenant, device) in linked {
        let moved = storage::move_from_file(&db, data_dir, tenant, device).await.with_context(|| {
            format!(
                "moving the session of {tenant}/{device} (to leave it behind and link the device again instead, \
                 move {} away and run this again)",
                storage::file_in(data_dir, tenant, device).display()
            )
        })?;
        let name = format!("{tenant}/{device}");
        match moved {
            Some(rows) => eprintln!("  {name:<30} {rows} row(s)"),
            None => {
                eprintln!("  {name:<30} no session in the data directory");
                stayed.push((tenant.clone(), device.clone()));
            }
        }
    }
    Ok(stayed)
}

/// The devices of `store` that have a linked WhatsApp account, as `(tenant, device)`.
fn linked_devices(store: &Store) -> anyhow::Result<Vec<(String, String)>> {
    let snapshot = store.snapshot()?;
    let devices = snapshot.tenants.iter().flat_map(|tenant| tenant.devices.iter());
    Ok(devices.filter(|device| device.jid.is_some()).map(|device| (device.tenant.clone(), device.id.clone())).collect())
}

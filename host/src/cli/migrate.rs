//! `waedge store migrate`: moves a SQLite store into PostgreSQL.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use waedge_store::Store;

use super::serve::{DataDirLock, sqlite_store};
use crate::config::Config;

/// Copies the SQLite store of the data directory that `config_path` names into the
/// PostgreSQL store it names, which must be empty, printing each table's rows as it goes.
/// Refuses while a gateway runs on the data directory, and — unless `relink_devices` — while
/// a device is linked: its WhatsApp session is in the data directory's files, which the
/// nodes of a PostgreSQL store do not read.
pub fn migrate(config_path: &Path, relink_devices: bool) -> anyhow::Result<ExitCode> {
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
    if !linked.is_empty() && !relink_devices {
        anyhow::bail!(
            "{} device(s) are linked ({}): their WhatsApp sessions are files in {}, which the nodes of a \
             PostgreSQL store do not read, so each would have to be linked again. Run this again with \
             --relink-devices to copy the store anyway",
            linked.len(),
            linked.join(", "),
            config.data_dir.display()
        );
    }
    let target = Store::connect(url.expose()).with_context(|| format!("opening the store {}", url.redacted()))?;
    eprintln!("Copying {} into {} …", path.display(), url.redacted());
    let copied = source
        .copy_to(&target, |table| eprintln!("  {:<20} {} row(s)", table.table, table.rows))
        .with_context(|| format!("copying the store into {} (nothing was written)", url.redacted()))?;
    let rows: u64 = copied.iter().map(|table| table.rows).sum();
    eprintln!(
        "Copied {rows} row(s) of {} tables. {} is left as it was: keep it as a backup. Start waedge with \
         this configuration to serve from PostgreSQL.",
        copied.len(),
        path.display()
    );
    if !linked.is_empty() {
        // Their sessions stayed behind: shown as what they are now, not as linked.
        target.unlink_every_device().context("recording the devices as unlinked")?;
        eprintln!("Link these devices again: {}.", linked.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// The devices of `store` that have a linked WhatsApp account, as `tenant/device`.
fn linked_devices(store: &Store) -> anyhow::Result<Vec<String>> {
    let snapshot = store.snapshot()?;
    let devices = snapshot.tenants.iter().flat_map(|tenant| tenant.devices.iter());
    Ok(devices.filter(|device| device.jid.is_some()).map(|device| format!("{}/{}", device.tenant, device.id)).collect())
}

//! `waedge serve --watch DIR`: the plugin author's dev loop. Every `DIR/TENANT/NAME.wasm` is
//! deployed as version of `TENANT`'s component `NAME` and activated whenever the file changes
//! — the same validation and atomic swap as a deploy through the admin API. Route a prefix
//! to it once (`waedge route set TENANT /prefix component:NAME`).
//!
//! The directory is polled (every 500 ms: no platform notification API needed); a file is
//! deployed once it has stopped changing for one poll, so a half-written file is not tried.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Admin;
use super::components::deploy;

/// How often the directory is scanned.
const POLL: Duration = Duration::from_millis(500);

/// When a file last changed and how big it was.
type Stamp = (SystemTime, u64);

/// Watches `dir` until the task is dropped.
pub async fn watch(admin: &Admin, dir: PathBuf) {
    tracing::info!("watching {} for TENANT/NAME.wasm components", dir.display());
    let mut deployed: HashMap<PathBuf, Stamp> = HashMap::new();
    let mut settling: HashMap<PathBuf, Stamp> = HashMap::new();
    loop {
        for (tenant, name, path, stamp) in scan(&dir) {
            if deployed.get(&path) == Some(&stamp) {
                continue;
            }
            if settling.insert(path.clone(), stamp) != Some(stamp) {
                continue; // changed since the last poll: wait until it stops changing
            }
            deployed.insert(path.clone(), stamp);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!("{}: {e}", path.display());
                    continue;
                }
            };
            let author = format!("watch:{}", path.display());
            match deploy(admin, &tenant, &name, bytes, &author, true, None).await {
                Ok(version) => {
                    tracing::info!(tenant, component = name, sha256 = version.sha256, "redeployed {}", path.display())
                }
                Err(failure) => {
                    tracing::warn!(tenant, component = name, "{}: not deployed: {}", path.display(), failure.message)
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every `DIR/TENANT/NAME.wasm` with its stamp.
fn scan(dir: &Path) -> Vec<(String, String, PathBuf, Stamp)> {
    let mut found = Vec::new();
    let Ok(tenants) = std::fs::read_dir(dir) else { return found };
    for tenant in tenants.flatten().filter(|entry| entry.path().is_dir()) {
        let Ok(files) = std::fs::read_dir(tenant.path()) else { continue };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
                continue;
            }
            let (Some(tenant), Some(name)) = (
                tenant.file_name().to_str().map(str::to_string),
                path.file_stem().and_then(|s| s.to_str()).map(str::to_string),
            ) else {
                continue;
            };
            if let Ok(meta) = file.metadata()
                && let Ok(modified) = meta.modified()
            {
                found.push((tenant, name, path, (modified, meta.len())));
            }
        }
    }
    found
}

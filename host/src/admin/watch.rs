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
            let bytes = match read_at_most(&path, crate::runtime::MAX_COMPONENT_BYTES) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!("{}: not deployed: {e}", path.display());
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

/// The file's bytes if it holds at most `limit` of them (the deploy limit: a file that grows
/// while it is read is caught too).
fn read_at_most(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes, the deploy limit")));
    }
    Ok(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_over_the_deploy_limit_are_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.wasm");
        std::fs::write(&path, vec![0u8; 101]).unwrap();
        let error = read_at_most(&path, 100).unwrap_err().to_string();
        assert!(error.contains("larger than 100 bytes"), "{error}");
        assert_eq!(read_at_most(&path, 101).unwrap().len(), 101);
    }
}

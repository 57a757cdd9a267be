//! `waedge serve`: the gateway and its admin API, with the store in the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admin::Admin;
use crate::config::Config;
use crate::device::DeviceManager;
use crate::device::whatsapp::WhatsappDevices;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::{Gateway, server};
use anyhow::Context;
use tokio::sync::watch;

/// The store's file in the data directory.
pub const STORE_FILE: &str = "waedge.db";

/// Opens the store of `config` (creating the data directory), seeding an empty one from the
/// configuration's tenants.
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join(STORE_FILE);
    let store = Store::open(&path).with_context(|| format!("opening the store {}", path.display()))?;
    if store.seed(config).context("seeding the store from the configuration")? {
        tracing::info!(
            "new store {}: seeded {} tenant(s) from the configuration",
            path.display(),
            config.tenants.len()
        );
    }
    Ok(store)
}

/// Runs the gateway until SIGINT or SIGTERM; with `watch`, redeploys the components in that
/// directory as they change.
pub async fn serve(config_path: &Path, watch: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    match server::raise_open_files_limit() {
        Ok(files) => tracing::debug!("up to {files} open files"),
        Err(e) => tracing::warn!("cannot raise the open-files limit ({e}); many devices may need `ulimit -n`"),
    }
    let store = open_store(&config)?;
    if store.admin_tokens()?.iter().all(|t| t.revoked_at.is_some()) {
        tracing::warn!("no admin token yet: run `waedge admin-token create` to use the admin API and the CLI");
    }
    let runtime = Runtime::new()
        .map_err(|e| anyhow::anyhow!("starting the Wasm runtime: {e:#}"))?
        .with_cache(config.data_dir.join("compiled"));
    let devices = Arc::new(whatsapp_devices(&config)?.with_observer(store.status_recorder()));
    let gateway = Arc::new(Gateway::new(
        runtime,
        devices.clone() as Arc<dyn DeviceManager>,
        config.limits,
        config.default_tenant.clone(),
    ));
    // Compiling every route's component is CPU work: off the async workers.
    let loading = (gateway.clone(), store.clone());
    let problems =
        tokio::task::spawn_blocking(move || loading.0.reload(&loading.1)).await.context("loading the tenants")??;
    for problem in problems {
        tracing::warn!("{problem}");
    }
    if let Some(default) = &config.default_tenant
        && gateway.tenants().get(default).is_none()
    {
        tracing::warn!("default_tenant `{default}` does not exist (yet): requests without a tenant get 404 NO_TENANT");
    }
    let api =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", config.admin_listen))?;
    tracing::info!("waedge listening on http://{} (admin API on http://{})", api.local_addr()?, admin.local_addr()?);
    let (stop, stopping) = watch::channel(false);
    let stopped = |mut stopping: watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let sweeper = tokio::spawn(retire_idle_instances(gateway.clone()));
    let api = server::serve(api, gateway.clone(), stopped(stopping.clone()));
    let handler = Arc::new(Admin::new(store, gateway));
    let watcher = watch.map(|dir| {
        let handler = handler.clone();
        tokio::spawn(async move { crate::admin::watch::watch(&handler, dir).await })
    });
    let admin = server::serve(admin, handler, stopped(stopping));
    let signal = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    tokio::join!(api, admin, signal);
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    sweeper.abort();
    devices.shutdown().await;
    tracing::info!("waedge stopped");
    Ok(())
}

/// The device sessions, connecting to WhatsApp — or, in test builds, to `whatsapp_server`.
fn whatsapp_devices(config: &Config) -> anyhow::Result<WhatsappDevices> {
    match &config.whatsapp_server {
        None => Ok(WhatsappDevices::new(&config.data_dir)),
        #[cfg(feature = "wa-sim")]
        Some(url) => {
            tracing::warn!("devices connect to {url}, not WhatsApp (test build)");
            Ok(WhatsappDevices::with_server(&config.data_dir, url))
        }
        #[cfg(not(feature = "wa-sim"))]
        Some(_) => anyhow::bail!(
            "`whatsapp_server` is set, but this build only connects to WhatsApp: remove the key, or use a \
             test build (`cargo build -p waedge --features wa-sim`) to connect to a wa-sim"
        ),
    }
}

/// Periodically returns the memory of component instances no request has needed for a while.
async fn retire_idle_instances(gateway: Arc<Gateway>) {
    let mut tick = tokio::time::interval(crate::runtime::pool::IDLE_TIMEOUT / 3);
    loop {
        tick.tick().await;
        gateway.retire_idle_instances();
    }
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}

//! `waedge serve`: the gateway and its admin API, with the store in the data directory.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use waedge_device::storage::Shared;
use waedge_device::whatsapp::WhatsappDevices;
use waedge_device::{DeviceManager, mailbox, recorder};
use waedge_store::Store;
use waedge_store::token::TokenHash;

use crate::admin::Admin;
use crate::config::{Cluster, ClusterSecret, Config, Connections, DatabaseUrl};
use crate::forward::directory::Directory;
use crate::forward::listener::Listener;
use crate::forward::{Forwarder, Forwarding};
use crate::runtime::Runtime;
use crate::runtime::compiler::IsolatedCompiler;
use crate::webhooks::Webhooks;
use crate::{Gateway, app, server};
use anyhow::Context;
use tokio::sync::watch;

/// The store's file in the data directory.
pub const STORE_FILE: &str = "waedge.db";

/// The file in the data directory that `waedge serve` holds an exclusive lock on.
pub const LOCK_FILE: &str = ".lock";

/// The exclusive claim of one process on a data directory, held until it is dropped (or the
/// process ends, however it ends: the kernel releases the lock with the file).
///
/// Two gateways on one data directory would run two WhatsApp clients on every device store:
/// WhatsApp replaces one stream with the other, and both processes write the same Signal
/// state. `admin-token` does not take it: it only writes `waedge.db`, which SQLite shares
/// safely, and it must work while the gateway runs (the first admin token is made that way).
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Claims `data_dir` (creating it) for this process, writing the process id into the
    /// lock file; fails, naming the holder's process id, while another process holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns, with constant flags.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(error).with_context(|| format!("locking {}", path.display()));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("process {pid}"),
            };
            anyhow::bail!(
                "the data directory {} is in use by {holder} (it holds {}): one waedge per data directory; \
                 stop that one first, or give this one its own `data_dir`",
                data_dir.display(),
                path.display()
            );
        }
        file.set_len(0).and_then(|()| file.rewind()).with_context(|| format!("writing {}", path.display()))?;
        writeln!(file, "{}", std::process::id()).with_context(|| format!("writing {}", path.display()))?;
        Ok(DataDirLock { _file: file })
    }
}

/// Opens the store of `config` — PostgreSQL at `store`, else SQLite in the data directory
/// (created if needed) — seeding an empty one from the configuration's tenants.
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    let (store, place) = match &config.store {
        Some(url) => {
            let store = Store::connect(url.expose()).context("opening the store")?;
            (store, url.redacted())
        }
        None => {
            let path = sqlite_store(config)?;
            let store = Store::open(&path).with_context(|| format!("opening the store {}", path.display()))?;
            (store, path.display().to_string())
        }
    };
    if config.seed(&store).context("seeding the store from the configuration")? {
        tracing::info!("new store {place}: seeded {} tenant(s) from the configuration", config.tenants.len());
    }
    Ok(store)
}

/// The SQLite store's file in the data directory of `config`, creating the directory.
pub fn sqlite_store(config: &Config) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    Ok(config.data_dir.join(STORE_FILE))
}

/// Runs the gateway until SIGINT or SIGTERM; with `watch`, redeploys the components in that
/// directory as they change.
pub async fn serve(config_path: &Path, watch: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    match server::raise_open_files_limit() {
        Ok(files) => tracing::debug!("up to {files} open files"),
        Err(e) => tracing::warn!("cannot raise the open-files limit ({e}); many devices may need `ulimit -n`"),
    }
    let _claim = DataDirLock::acquire(&config.data_dir)?;
    let store = open_store(&config)?;
    if !store.admin_tokens()?.iter().any(|t| t.is_live()) {
        tracing::warn!("no live admin token: run `waedge admin-token create` to use the admin API and the CLI");
    }
    refuse_public_demo_token(&config, &store)?;
    // The program running now, even if an upgrade has replaced its file since: the compiled
    // code must be this engine's.
    let executable = match Path::new("/proc/self/exe") {
        linux if linux.exists() => linux.to_path_buf(),
        _ => std::env::current_exe().context("finding this program, which compiles deployed components")?,
    };
    let runtime = Runtime::new()
        .map_err(|e| anyhow::anyhow!("starting the Wasm runtime: {e:#}"))?
        .with_cache(config.data_dir.join("compiled"))
        .with_isolated_compiler(IsolatedCompiler::new(executable, config.compile));
    // A node of several sharing a PostgreSQL store: the devices' state it shares, the name it
    // goes by (its leases' holder: the configured name and a suffix of this process's own, so
    // that two processes given one name are still two nodes), and the store's changes it
    // serves (counted before the gateway loads from the store).
    let (shared, cluster) = match &config.store {
        Some(url) => {
            let shared = Arc::new(shared_device_state(url, &node_name(&config)?, &config).await?);
            let cluster = (shared.holder().to_owned(), store.changes()?);
            (Some(shared), Some(cluster))
        }
        None => (None, None),
    };
    let (mailbox, appended) = mailbox::store_mailbox(&store);
    let mut devices = whatsapp_devices(&config)?
        .with_observer(recorder::status_recorder(&store, appended.clone()))
        .with_mailbox(mailbox);
    if let Some(shared) = &shared {
        devices = devices.with_shared_storage(shared.clone());
    }
    let devices = Arc::new(devices);
    // A node with a cluster listener forwards the calls on devices other nodes run to them,
    // and answers theirs.
    let forwarding = match (&shared, config.cluster.as_ref()) {
        (Some(shared), Some(cluster)) => ClusterListener::bind(&store, shared, cluster).await?,
        _ => None,
    };
    let sessions: Arc<dyn DeviceManager> = match &forwarding {
        Some(forwarding) => Arc::new(Forwarding::new(devices.clone(), forwarding.forwarder.clone())),
        None => devices.clone(),
    };
    let gateway = Arc::new(app::gateway(runtime, sessions, &config)?);
    if let Some(forwarding) = &forwarding {
        forwarding.forwarder.count_in(gateway.metrics().clone());
    }
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
        tracing::warn!(
            "default_tenant `{default}` does not exist (yet): requests no tenant takes get 401 UNAUTHORIZED"
        );
    }
    let address = forwarding.as_ref().map(|forwarding| forwarding.address.clone());
    let changes = match &cluster {
        Some((instance, _)) => {
            Some(store.follow(instance, address.as_deref()).context("following the other nodes' changes")?)
        }
        None => None,
    };
    // Listened for before the listeners say they are up: a SIGTERM sent the moment they are is
    // a clean shutdown, not the signal's default (the process killed mid-way).
    let signal = shutdown_signal()?;
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
    let api = server::serve(api, gateway.clone(), config.connections, stopped(stopping.clone()));
    let mut webhooks = Webhooks::new(store.clone(), gateway.clone(), appended);
    if cluster.is_some() {
        // One node delivers at a time: the one that takes the delivery over (`follow`).
        webhooks = webhooks.standing_by();
    }
    let webhooks = Arc::new(webhooks);
    webhooks.reload().await.context("starting the webhooks")?;
    let mut handler =
        Admin::new(store.clone(), gateway.clone(), webhooks.clone()).reachable_remotely(config.admin_allow_remote);
    if let Some((instance, served)) = &cluster {
        handler = handler.in_cluster(instance, *served, address);
    }
    let handler = Arc::new(handler);
    let follower = match changes {
        Some(changes) => {
            // Before anything is served (requests wait in the listeners' backlog): from now on
            // the other nodes' changes wait for this node, which serves all of them so far.
            handler.join(&changes).await.context("joining the other nodes of the store")?;
            let handler = handler.clone();
            Some(tokio::spawn(async move { handler.follow(changes).await }))
        }
        None => None,
    };
    // Where the devices run, known before the first request is served, and kept up.
    let directory = match &forwarding {
        Some(forwarding) => {
            forwarding.directory.refresh(std::time::Instant::now()).await.context("reading where devices run")?;
            let directory = forwarding.directory.clone();
            Some(tokio::spawn(async move { directory.keep_up().await }))
        }
        None => None,
    };
    let forwarded = forwarding.map(|forwarding| {
        let listener = Listener::new(forwarding.secret.expose(), forwarding.forwarder.locals());
        let listener = Arc::new(listener.rating_sends_of(gateway.clone()).managing(devices.clone()));
        // The other nodes keep one connection each open, all their calls on it: idle ones are
        // closed after minutes only, and many calls may be in flight on one.
        let connections = Connections {
            idle_timeout_ms: CLUSTER_IDLE_MS,
            max_concurrent_streams: CLUSTER_STREAMS,
            ..config.connections
        };
        server::serve(forwarding.listener, listener, connections, stopped(stopping.clone()))
    });
    let forwarded = async move {
        if let Some(forwarded) = forwarded {
            forwarded.await;
        }
    };
    let watcher = watch.map(|dir| {
        let handler = handler.clone();
        tokio::spawn(async move { crate::admin::watch::watch(&handler, dir).await })
    });
    let admin = server::serve(admin, handler, config.connections, stopped(stopping));
    let signal = async move {
        signal.await;
        let _ = stop.send(true);
    };
    tokio::join!(api, admin, forwarded, signal);
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    if let Some(directory) = directory {
        directory.abort();
    }
    // Deliveries stop before the delivery's lock goes with the follower's connection: the next
    // node takes over from what is stored, never beside this one.
    webhooks.shutdown();
    if let (Some(follower), Some((instance, _))) = (follower, &cluster) {
        follower.abort();
        let _ = follower.await;
        // No change waits for a node that left.
        let (store, instance) = (store.clone(), instance.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || store.forget_node(&instance)).await? {
            tracing::warn!("the other nodes count this one as gone in a few seconds only: {e}");
        }
    }
    sweeper.abort();
    devices.shutdown().await;
    tracing::info!("waedge stopped");
    Ok(())
}

/// SHA-256 of the demo API token `waedge.toml` seeds: the token is printed in the README, so
/// anyone can use it.
const DEMO_TOKEN_SHA256: &str = "3cce807e4702794a873c76d7276b0e8c1cb4d09b6c6d82707a382c9cfc4b68a0";

/// Refuses to serve other machines while the public demo token is valid: it is fine for
/// trying waedge on one machine, never past it.
fn refuse_public_demo_token(config: &Config, store: &Store) -> anyhow::Result<()> {
    let demo = TokenHash::from_hex(DEMO_TOKEN_SHA256).expect("a digest");
    let snapshot = store.snapshot()?;
    let holder = snapshot.tenants.iter().find_map(|tenant| {
        let users = tenant.users.iter();
        users.filter(|(_, hashes)| hashes.contains(&demo)).map(|(user, _)| (&tenant.tenant.id, &user.id)).next()
    });
    let Some((tenant, user)) = holder else { return Ok(()) };
    let revoke =
        format!("revoke it (`waedge token list {tenant} {user}`, then `waedge token revoke {tenant} {user} ID`)");
    if config.listen.ip().is_loopback() {
        tracing::warn!("user {user} of tenant `{tenant}` still has the public demo token from waedge.toml; {revoke}");
        return Ok(());
    }
    anyhow::bail!(
        "`listen = \"{}\"` serves other machines, but user {user} of tenant `{tenant}` still has the public demo \
         token from waedge.toml, which anyone can read in the README: {revoke}, or listen on loopback",
        config.listen
    )
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

/// The devices' state in the PostgreSQL store at `url`, shared with the other nodes of the
/// cluster under leases taken in this node's name.
async fn shared_device_state(url: &DatabaseUrl, node: &str, config: &Config) -> anyhow::Result<Shared> {
    let cluster = config.cluster.clone().unwrap_or_default();
    let lease = std::time::Duration::from_millis(cluster.lease_ms);
    let shared = Shared::connect(url.expose(), cluster.connections, node, lease)
        .await
        .context("opening the devices' state in the PostgreSQL store")?;
    tracing::info!("node {node}: devices shared with the other nodes of {}", url.redacted());
    Ok(shared)
}

/// How long a connection of another node to the cluster listener may stay idle.
const CLUSTER_IDLE_MS: u64 = 10 * 60_000;
/// Calls in flight at once on one connection of another node to the cluster listener.
const CLUSTER_STREAMS: u32 = 10_000;

/// A node's side of the forwarding: its cluster listener, bound, and its forwarder.
struct ClusterListener {
    listener: tokio::net::TcpListener,
    /// Where the other nodes reach it.
    address: String,
    secret: ClusterSecret,
    forwarder: Arc<Forwarder>,
    directory: Arc<Directory>,
}

impl ClusterListener {
    /// The cluster listener `cluster` configures, bound, if it configures one.
    async fn bind(store: &Store, shared: &Arc<Shared>, cluster: &Cluster) -> anyhow::Result<Option<ClusterListener>> {
        let (Some(listen), Some(secret)) = (cluster.listen, &cluster.secret) else {
            tracing::warn!(
                "no cluster listener (`[cluster]` sets no `listen`): calls on devices other nodes run answer \
                 DEVICE_NOT_CONNECTED here"
            );
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the cluster listener {listen}"))?;
        let directory = Arc::new(Directory::new(store.clone(), shared.clone()));
        let forwarder = Arc::new(Forwarder::new(directory.clone(), secret.expose()));
        let bound = listener.local_addr()?;
        let address = cluster.advertise.clone().unwrap_or_else(|| bound.to_string());
        tracing::info!("cluster listener on {bound} (the other nodes reach it at {address})");
        Ok(Some(ClusterListener { listener, address, secret: secret.clone(), forwarder, directory }))
    }
}

/// This node's name among those sharing the store: `[cluster]`'s `node`, else the host name.
fn node_name(config: &Config) -> anyhow::Result<String> {
    match config.cluster.as_ref().and_then(|cluster| cluster.node.clone()) {
        Some(node) => Ok(node),
        None => host_name().context("naming this node (set `node` in `[cluster]`)"),
    }
}

/// This machine's host name, as a node name: its first label, in the characters a node name
/// may have.
fn host_name() -> anyhow::Result<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into the buffer it is given.
    if unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("reading the host name");
    }
    let name = buffer.split(|byte| *byte == 0).next().unwrap_or_default();
    let name: String = String::from_utf8_lossy(name)
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    anyhow::ensure!(!name.is_empty(), "the host name is empty");
    Ok(name)
}

/// Periodically returns the memory of component instances no request has needed for a while.
async fn retire_idle_instances(gateway: Arc<Gateway>) {
    let mut tick = tokio::time::interval(crate::runtime::pool::IDLE_TIMEOUT / 3);
    loop {
        tick.tick().await;
        gateway.retire_idle_instances();
    }
}

/// Listens for SIGINT and SIGTERM from now on; the future ends at the first of them.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_a_data_directory_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).expect("the first claim");
        let refused = DataDirLock::acquire(dir.path()).err().expect("a second claim is refused");
        let message = format!("{refused:#}");
        assert!(message.contains(&format!("in use by process {}", std::process::id())), "{message}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("claimed again once released");
    }
}

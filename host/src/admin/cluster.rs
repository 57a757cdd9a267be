//! The admin API on one of several nodes sharing a PostgreSQL store: changes made on other
//! nodes are applied here within a heartbeat (announced by the store, see
//! `waedge_store::changes`), and a change made here is answered once every live node serves
//! it — a token revoked on one node is refused by all before the call returns — or with
//! `503 NOT_APPLIED` naming the nodes that have not caught up. A node whose heartbeat lapses
//! refuses API requests until its next one ([`Heartbeat`]): the others no longer wait for it.
//! The events any node appends wake this node's webhook workers and event streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use waedge_store::changes::{Announcement, Changes, NODE_TTL};

use super::{Admin, Failure};
use crate::gateway::heartbeat::Heartbeat;

/// How often a node says it is alive and reads the count of changes, announced or not.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long a heartbeat lets this node serve: less than the others wait for it
/// ([`NODE_TTL`], counted from when the heartbeat arrived), by a margin for requests under way.
const HEARTBEAT_LASTS: Duration = NODE_TTL.saturating_sub(Duration::from_secs(1));
/// How long a change made here waits for the other nodes to serve it.
const SERVED_WAIT: Duration = Duration::from_secs(5);
/// How often that wait asks.
const SERVED_POLL: Duration = Duration::from_millis(25);

/// This node among those sharing the store.
pub(super) struct Node {
    /// Its name in the store: the configured name and a suffix of this process's own.
    name: String,
    /// Where the other nodes reach its cluster listener, if it has one.
    address: Option<String>,
    /// The count of the store's changes this node serves.
    served: AtomicI64,
    /// When it last said so.
    heartbeat: Arc<Heartbeat>,
}

impl Admin {
    /// The admin API as the node `name` of those sharing its (PostgreSQL) store, serving its
    /// changes up to `served` (counted before the gateway was loaded), whose cluster listener
    /// the others reach at `address`, if it has one; [`join`](Self::join) before serving,
    /// then run [`follow`](Self::follow) beside it. The gateway refuses requests until the
    /// first heartbeat (of `join`), and whenever the heartbeat lapses.
    pub fn in_cluster(mut self, name: &str, served: i64, address: Option<String>) -> Self {
        let heartbeat = Arc::new(Heartbeat::new(HEARTBEAT_LASTS));
        self.gateway.follow_heartbeat(heartbeat.clone());
        let node = Node { name: name.to_owned(), address, served: AtomicI64::new(served), heartbeat };
        self.cluster = Some(Arc::new(node));
        self
    }

    /// Joins the other nodes of the store, before serving: tells them what this node serves,
    /// catches up with the changes counted since, and records the first heartbeat.
    pub async fn join(&self, changes: &Changes) -> anyhow::Result<()> {
        let Some(node) = &self.cluster else { return Ok(()) };
        let sent = Instant::now();
        changes.serve(node.served.load(Ordering::SeqCst)).await?;
        let count = changes.count().await?;
        if count > node.served.load(Ordering::SeqCst) {
            self.reload().await.map_err(|failure| anyhow::anyhow!(failure.message))?;
            node.served.fetch_max(count, Ordering::SeqCst);
        }
        node.heartbeat.beat(sent);
        Ok(())
    }

    /// Applies the changes other nodes make to the store, as they are announced and at every
    /// heartbeat, and tells the other nodes what this one serves, on `changes` (the
    /// connection the node registered on) and on new connections when one is lost. Runs
    /// until the task is aborted.
    pub async fn follow(&self, changes: Changes) {
        let Some(node) = self.cluster.clone() else { return };
        let mut following = Ok(changes);
        loop {
            let stopped = match following {
                Ok(changes) => node.keep_up(self, changes).await,
                Err(failure) => Err(failure),
            };
            if let Err(failure) = stopped {
                tracing::warn!("following the other nodes' changes (again in {HEARTBEAT:?}): {}", failure.message);
            }
            // Its lock went with the connection: another node may deliver by now.
            if let Err(e) = self.webhooks.set_delivering(false).await {
                tracing::error!("the webhooks are not stopped: {e}");
            }
            tokio::time::sleep(HEARTBEAT).await;
            let (name, address) = (node.name.clone(), node.address.clone());
            following = self.run(move |store| store.follow(&name, address.as_deref())).await;
        }
    }
}

impl Node {
    /// Says at every heartbeat what this node serves, reloads the gateway whenever the store
    /// has changes it does not serve yet (one reload at a time, however long it takes), runs
    /// the webhooks' deliveries while it holds their lock and its heartbeat lasts, and wakes
    /// the webhook workers and event streams for the events any node appends — until the
    /// connection is lost.
    ///
    /// A heartbeat is recorded only if the node was still alive to the others when the store
    /// acknowledged it, or serves every change counted after that: a node the others stopped
    /// waiting for (paused, cut off) serves again only once it has caught up.
    async fn keep_up(&self, admin: &Admin, mut changes: Changes) -> Result<(), Failure> {
        let (mut holds_delivery, mut delivering) = (false, false);
        // The reload under way, and the count of changes it applies.
        let mut reloading: Option<(i64, tokio::task::JoinHandle<Result<(), Failure>>)> = None;
        loop {
            let sent = Instant::now();
            let served = self.served.load(Ordering::SeqCst);
            changes.serve(served).await?;
            let count = changes.count().await?;
            if self.heartbeat.lasts() || count <= served {
                self.heartbeat.beat(sent);
            }
            if count > served && reloading.is_none() {
                // The count was read first: the snapshot the reload takes has every change
                // it counts.
                let admin = admin.clone();
                reloading = Some((count, tokio::spawn(async move { admin.reload().await })));
            }
            if !holds_delivery {
                holds_delivery = changes.take_delivery().await?;
            }
            // A node whose heartbeat lapsed may lose the lock to another any moment: it
            // stops delivering first.
            let deliver = holds_delivery && self.heartbeat.lasts();
            if deliver != delivering {
                admin.webhooks.set_delivering(deliver).await?;
                delivering = deliver;
            }
            // Until the next heartbeat, a change, or the end of the reload; events appended
            // by any node wake this node's webhook workers and event streams meanwhile.
            let heartbeat = tokio::time::sleep(HEARTBEAT);
            tokio::pin!(heartbeat);
            loop {
                tokio::select! {
                    announced = changes.next() => match announced {
                        None => {
                            let closed = "the store's connection closed";
                            return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, "STORE_FAILED", closed));
                        }
                        Some(Announcement::Appended { tenant, device }) => admin.webhooks.appended().wake(&tenant, &device),
                        Some(Announcement::Changed) => break,
                    },
                    reloaded = async { (&mut reloading.as_mut().expect("a reload under way").1).await }, if reloading.is_some() => {
                        let (count, _) = reloading.take().expect("a reload under way");
                        match reloaded {
                            Ok(Ok(())) => _ = self.served.fetch_max(count, Ordering::SeqCst),
                            Ok(Err(failure)) => {
                                tracing::error!("another node's change is not applied here yet: {}", failure.message)
                            }
                            Err(panicked) => tracing::error!("reloading after another node's change panicked: {panicked}"),
                        }
                        break;
                    }
                    () = &mut heartbeat => break,
                }
            }
        }
    }

    /// Applies a change stored a moment ago here, then waits until every other live node
    /// serves it.
    pub(super) async fn apply(&self, admin: &Admin) -> Result<(), Failure> {
        let count = admin.run(|store| store.changes()).await?;
        admin.reload().await?;
        self.served.fetch_max(count, Ordering::SeqCst);
        let deadline = Instant::now() + SERVED_WAIT;
        loop {
            let name = self.name.clone();
            let behind = admin.run(move |store| store.not_serving(count, &name)).await?;
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "NOT_APPLIED",
                    format!(
                        "the change is stored and served by node {}, but node(s) {} have not applied it within {}s; \
                         they apply it as soon as they can (a node not heard from for {}s counts as gone, and \
                         refuses requests until it is back)",
                        self.name,
                        behind.join(", "),
                        SERVED_WAIT.as_secs(),
                        NODE_TTL.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(SERVED_POLL).await;
        }
    }
}

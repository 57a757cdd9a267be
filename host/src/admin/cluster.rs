//! The admin API on one of several nodes sharing a PostgreSQL store: changes made on other
//! nodes are applied here within a heartbeat (announced by the store, see
//! `waedge_store::changes`), and a change made here is answered once every live node serves
//! it — a token revoked on one node is refused by all before the call returns — or with
//! `503 NOT_APPLIED` naming the nodes that have not caught up. A node whose heartbeat lapses
//! refuses API requests until its next one ([`Heartbeat`]): the others no longer wait for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use waedge_store::changes::{Changes, NODE_TTL};

use super::{Admin, Failure};
use crate::gateway::heartbeat::Heartbeat;

/// How often a node says it is alive and reads the count of changes, announced or not.
const HEARTBEAT: Duration = Duration::from_secs(1);
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
    /// The count of the store's changes this node serves.
    served: AtomicI64,
    /// When it last said so.
    heartbeat: Arc<Heartbeat>,
}

impl Admin {
    /// The admin API as the node `name` of those sharing its (PostgreSQL) store, which has
    /// just told the store it serves the changes up to `served` (counted before the gateway
    /// was loaded); run [`follow`](Self::follow) beside it. The gateway refuses requests
    /// whenever the node's heartbeat lapses.
    pub fn in_cluster(mut self, name: &str, served: i64) -> Self {
        let heartbeat = Arc::new(Heartbeat::new(HEARTBEAT_LASTS));
        self.gateway.follow_heartbeat(heartbeat.clone());
        let node = Node { name: name.to_owned(), served: AtomicI64::new(served), heartbeat };
        self.cluster = Some(Arc::new(node));
        self
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
            let name = node.name.clone();
            following = self.run(move |store| store.follow(&name)).await;
        }
    }
}

impl Node {
    /// Reloads the gateway whenever the store has changes this node does not serve yet, and
    /// records what it serves — at every heartbeat, also while a reload fails, so that the
    /// other nodes' changes wait for it instead of taking it for gone — until the connection
    /// is lost. Takes the webhooks' delivery over when no node has it.
    async fn keep_up(&self, admin: &Admin, mut changes: Changes) -> Result<(), Failure> {
        let mut delivering = false;
        loop {
            if !delivering && changes.take_delivery().await? {
                delivering = true;
                admin.webhooks.set_delivering(true).await?;
            }
            let count = changes.count().await?;
            if count > self.served.load(Ordering::SeqCst) {
                // The count was read first: the snapshot the reload takes has every change
                // it counts. A reload that takes longer than a heartbeat goes on (the next
                // turn waits for it again) while the heartbeat says what is served so far.
                match tokio::time::timeout(HEARTBEAT, admin.reload()).await {
                    Ok(Ok(())) => _ = self.served.fetch_max(count, Ordering::SeqCst),
                    Ok(Err(failure)) => {
                        tracing::error!("another node's change is not applied here yet: {}", failure.message)
                    }
                    Err(_) => {}
                }
            }
            let sent = Instant::now();
            changes.serve(self.served.load(Ordering::SeqCst)).await?;
            self.heartbeat.beat(sent);
            tokio::select! {
                heard = changes.announced() => if !heard {
                    return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, "STORE_FAILED", "the store's connection closed"));
                },
                () = tokio::time::sleep(HEARTBEAT) => {}
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

//! What the nodes sharing a PostgreSQL store serve from, kept the same on all of them.
//!
//! Each node serves from a snapshot of the store (tenants, users and their tokens, routes,
//! components, devices, event handlers). In PostgreSQL every write to those tables counts as a
//! change, in commit order, and is announced on a channel when it commits (triggers of
//! migration 2); a node follows with [`Changes`]: woken by each announcement, it reads the
//! count, takes a new snapshot, and records the count it now serves ([`Changes::serve`]),
//! which also says it is alive. A change's call then waits until every live node serves it
//! ([`Store::not_serving`]): a token revoked on one node is refused by all before the call
//! returns, or the call names the nodes that have not caught up. A notification lost with a
//! connection costs nothing: the count is read again at each heartbeat.
//!
//! Events appended by any node are announced too ([`Announcement::Appended`]), so that every
//! node's webhook workers and event streams wake for them.
//!
//! One node at a time delivers the webhooks: the one whose connection holds an advisory lock
//! ([`Changes::take_delivery`]); when it goes, its connection and the lock go with it, and the
//! next node to try takes the delivery over (deliveries stay at least once, never N times).
//!
//! A SQLite store has one node: its count stays 0 and it has nobody to wait for.

use std::time::Duration;

use crate::db::{Listener, params};
use crate::{DatabaseError, Store, StoreError};

/// How long a node that stopped saying it is alive still counts as one.
pub const NODE_TTL: Duration = Duration::from_secs(3);

/// The channel on which the changes are announced (migration 2).
const CHANGED: &str = "waedge_store";
/// The channel on which the events appended are announced (migration 3).
const APPENDED: &str = "waedge_events";

/// What the store announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// Changes were committed to what nodes serve from.
    Changed,
    /// Events of `tenant`'s `device` were appended to the outbox.
    Appended {
        /// The tenant.
        tenant: String,
        /// The device.
        device: String,
    },
}

/// A node of the store, as it last said it is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Its name and the suffix of its process.
    pub name: String,
    /// Where it takes the device calls other nodes forward to it, if anywhere.
    pub address: Option<String>,
    /// The count of changes it serves.
    pub serves: i64,
    /// How long ago it last said so, by the database's clock.
    pub seen_ago: Duration,
    /// Whether the other nodes still count it as a node ([`NODE_TTL`]).
    pub alive: bool,
}

/// A node's view of the store's changes: a PostgreSQL connection of its own, listening.
pub struct Changes {
    node: String,
    address: Option<String>,
    listener: Listener,
}

impl Store {
    /// How many changes the nodes serve from have been committed so far (0 in SQLite).
    pub fn changes(&self) -> Result<i64, StoreError> {
        if !self.is_shared() {
            return Ok(0);
        }
        self.read(|conn| conn.query_value("SELECT count FROM store_changes", &[]))
    }

    /// Follows the changes of this PostgreSQL store, and the events appended to it, as the
    /// node `node`, which takes the device calls of the other nodes at `address`, if anywhere.
    pub fn follow(&self, node: &str, address: Option<&str>) -> Result<Changes, StoreError> {
        let listener = self.listen(&[CHANGED, APPENDED])?;
        Ok(Changes { node: node.to_owned(), address: address.map(str::to_owned), listener })
    }

    /// The live nodes other than `node` that do not serve the change `count` yet, by name.
    pub fn not_serving(&self, count: i64, node: &str) -> Result<Vec<String>, StoreError> {
        if !self.is_shared() {
            return Ok(Vec::new());
        }
        self.read(|conn| {
            conn.query(
                "SELECT node FROM store_nodes
                 WHERE serves < ?1 AND node <> ?2
                   AND seen_at > clock_timestamp() - make_interval(secs => CAST(?3 AS BIGINT))
                 ORDER BY node",
                params![count, node, NODE_TTL.as_secs() as i64],
                |row| row.get(0),
            )
        })
    }

    /// The nodes that said they serve this store, by name (none in SQLite), alive or not: a
    /// node that died is listed until it is forgotten.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        if !self.is_shared() {
            return Ok(Vec::new());
        }
        self.read(|conn| {
            conn.query(
                "SELECT node, serves, CAST(EXTRACT(EPOCH FROM clock_timestamp() - seen_at) * 1000 AS BIGINT), address
                 FROM store_nodes ORDER BY node",
                &[],
                |row| {
                    let seen_ago = Duration::from_millis(row.get::<i64>(2)?.max(0) as u64);
                    Ok(NodeRecord {
                        name: row.get(0)?,
                        address: row.get(3)?,
                        serves: row.get(1)?,
                        seen_ago,
                        alive: seen_ago <= NODE_TTL,
                    })
                },
            )
        })
    }

    /// Forgets the node `node`: it stopped, and no change waits for it.
    pub fn forget_node(&self, node: &str) -> Result<(), StoreError> {
        if !self.is_shared() {
            return Ok(());
        }
        self.transaction(|tx| tx.execute("DELETE FROM store_nodes WHERE node = ?1", params![node]).map(drop))
    }
}

impl Changes {
    /// Waits for the store's next announcement; `None` once the connection is gone (follow
    /// again).
    pub async fn next(&mut self) -> Option<Announcement> {
        loop {
            let (channel, payload) = self.listener.notifications.recv().await?;
            match (channel.as_str(), payload.split_once(' ')) {
                (CHANGED, _) => return Some(Announcement::Changed),
                (APPENDED, Some((tenant, device))) => {
                    return Some(Announcement::Appended { tenant: tenant.to_owned(), device: device.to_owned() });
                }
                _ => {}
            }
        }
    }

    /// How many changes have been committed so far.
    pub async fn count(&self) -> Result<i64, StoreError> {
        let row = self.listener.client.query_one("SELECT count FROM store_changes", &[]).await;
        Ok(row.map_err(DatabaseError::from)?.get(0))
    }

    /// Takes the delivery of the webhooks over if no node has it: `true` once this node has
    /// it, until this connection ends (then another node's next try takes it). Call it until
    /// it answers `true`, not after.
    pub async fn take_delivery(&self) -> Result<bool, StoreError> {
        let taken = self
            .listener
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&waedge_pg::locks::WEBHOOK_DELIVERY])
            .await;
        Ok(taken.map_err(DatabaseError::from)?.get(0))
    }

    /// Records that this node serves the changes up to `count` and is alive, now.
    pub async fn serve(&self, count: i64) -> Result<(), StoreError> {
        let recorded = self
            .listener
            .client
            .execute(
                "INSERT INTO store_nodes (node, serves, seen_at, address) VALUES ($1, $2, clock_timestamp(), $3)
                 ON CONFLICT (node) DO UPDATE
                 SET serves = excluded.serves, seen_at = excluded.seen_at, address = excluded.address",
                &[&self.node, &count, &self.address],
            )
            .await;
        recorded.map_err(DatabaseError::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use waedge_contract::types::{DeviceState, DeviceStatus};

    use super::*;
    use crate::events::NewEvent;
    use crate::tenants::NewTenant;
    use crate::tests::postgres_url;
    use crate::{LeaseEpoch, StatusReport};

    const PATIENCE: Duration = Duration::from_secs(10);

    /// A new PostgreSQL store, followed by the nodes `node-1` (taking device calls at
    /// `10.0.0.1:7700`) and `node-2` (taking none).
    async fn two_nodes() -> (Store, Changes, Changes) {
        let url = postgres_url();
        let store = tokio::task::spawn_blocking(move || Store::connect(&url).unwrap()).await.unwrap();
        let (one, two) = tokio::task::block_in_place(|| {
            (store.follow("node-1", Some("10.0.0.1:7700")).unwrap(), store.follow("node-2", None).unwrap())
        });
        (store, one, two)
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn what_nodes_serve_from_counts_as_a_change_and_nothing_else_does() {
        let store = Store::connect(&postgres_url()).unwrap();
        let start = store.changes().unwrap();
        store.create_tenant(NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        store.create_device("acme", "main").unwrap();
        let counted = store.changes().unwrap();
        assert!(counted >= start + 2, "{start} → {counted}");

        // What devices do all day is not a change of what is served.
        let status =
            DeviceStatus { id: "main".into(), state: DeviceState::Connected, jid: None, lid: None, push_name: None };
        store
            .record_device_statuses(&[StatusReport { tenant: "acme".into(), status, under: LeaseEpoch::default() }])
            .unwrap();
        let event = NewEvent {
            device: "main".into(),
            kind: "message.received".into(),
            chat: "1@s.whatsapp.net".into(),
            dedup: None,
            at: crate::now(),
            data: serde_json::json!({}),
        };
        store.append_events("acme", &[event]).unwrap();
        // Nor is a statement that changes no row.
        store.transaction(|tx| tx.execute("DELETE FROM routes WHERE tenant_id = 'nobody'", &[])).unwrap();
        assert_eq!(store.changes().unwrap(), counted);

        let user = store.create_user("acme", crate::users::NewUser::default()).unwrap();
        let (token, _) = store.create_token("acme", &user.id).unwrap();
        let before_revoking = store.changes().unwrap();
        store.revoke_token("acme", &user.id, &token.id).unwrap();
        assert!(store.changes().unwrap() > before_revoking, "a revoked token is a change");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    async fn a_node_hears_of_a_change_another_node_committed() {
        let url = postgres_url();
        let (here, there) =
            tokio::task::spawn_blocking(move || (Store::connect(&url).unwrap(), Store::connect(&url).unwrap()))
                .await
                .unwrap();
        let mut changes = tokio::task::block_in_place(|| here.follow("node-1", None)).unwrap();
        let before = changes.count().await.unwrap();
        let writer = there.clone();
        tokio::task::spawn_blocking(move || {
            writer.create_tenant(NewTenant { id: "acme".into(), ..Default::default() })
        })
        .await
        .unwrap()
        .unwrap();
        let heard = tokio::time::timeout(PATIENCE, changes.next()).await;
        assert_eq!(heard, Ok(Some(Announcement::Changed)), "the commit was announced");
        assert!(changes.count().await.unwrap() > before);

        // Events are announced by tenant and device, once per commit and device.
        let writer = there.clone();
        tokio::task::spawn_blocking(move || {
            writer.create_device("acme", "main")?;
            let event = |chat: &str| crate::events::NewEvent {
                device: "main".into(),
                kind: "message.received".into(),
                chat: chat.into(),
                dedup: None,
                at: crate::now(),
                data: serde_json::json!({}),
            };
            writer.append_events("acme", &[event("1@s.whatsapp.net"), event("2@s.whatsapp.net")])
        })
        .await
        .unwrap()
        .unwrap();
        let appended = Announcement::Appended { tenant: "acme".into(), device: "main".into() };
        assert_eq!(tokio::time::timeout(PATIENCE, changes.next()).await, Ok(Some(Announcement::Changed)), "the device");
        assert_eq!(tokio::time::timeout(PATIENCE, changes.next()).await, Ok(Some(appended)));
        let nothing_more = tokio::time::timeout(std::time::Duration::from_millis(300), changes.next()).await;
        assert!(nothing_more.is_err(), "one announcement for both events: {nothing_more:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    async fn a_change_waits_for_the_live_nodes_that_do_not_serve_it_yet() {
        let (store, one, two) = two_nodes().await;
        let count = one.count().await.unwrap();
        one.serve(count).await.unwrap();
        two.serve(count).await.unwrap();
        let waiting = |count| tokio::task::block_in_place(|| store.not_serving(count, "node-1").unwrap());
        assert!(waiting(count).is_empty());
        assert_eq!(waiting(count + 1), ["node-2"], "node-2 serves an older count; node-1 is the one asking");

        // A node that stopped saying it is alive is not waited for; nor one that left.
        tokio::task::block_in_place(|| {
            store.transaction(|tx| {
                tx.execute("UPDATE store_nodes SET seen_at = seen_at - interval '1 minute' WHERE node = 'node-2'", &[])
            })
        })
        .unwrap();
        assert!(waiting(count + 1).is_empty());
        let nodes = tokio::task::block_in_place(|| store.nodes()).unwrap();
        let seen: Vec<(&str, i64, bool, Option<&str>)> =
            nodes.iter().map(|n| (n.name.as_str(), n.serves, n.alive, n.address.as_deref())).collect();
        let expected = [("node-1", count, true, Some("10.0.0.1:7700")), ("node-2", count, false, None)];
        assert_eq!(seen, expected, "a silent node is listed, not alive; each with its cluster listener");
        two.serve(count).await.unwrap();
        assert_eq!(waiting(count + 1), ["node-2"]);
        tokio::task::block_in_place(|| store.forget_node("node-2")).unwrap();
        assert!(waiting(count + 1).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    async fn one_node_at_a_time_delivers_and_the_next_takes_over_when_it_goes() {
        // The store drives the nodes' connections: kept to the end.
        let (_store, one, two) = two_nodes().await;
        assert!(one.take_delivery().await.unwrap());
        assert!(!two.take_delivery().await.unwrap(), "node-1 delivers");
        drop(one);
        let deadline = std::time::Instant::now() + PATIENCE;
        while !two.take_delivery().await.unwrap() {
            assert!(std::time::Instant::now() < deadline, "node-2 never took the delivery over");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_sqlite_store_has_one_node() {
        let store = crate::tests::sqlite();
        store.create_tenant(NewTenant { id: "acme".into(), ..Default::default() }).unwrap();
        assert_eq!(store.changes().unwrap(), 0);
        assert!(store.not_serving(1, "node-1").unwrap().is_empty());
        assert!(store.nodes().unwrap().is_empty());
        assert!(matches!(store.follow("node-1", None), Err(StoreError::Invalid(_))));
    }
}

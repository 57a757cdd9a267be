//! The devices spread over the live nodes: an even share each, a dead node's devices taken
//! over once its leases expire, a joining node given its share by hand-offs, a leaving node's
//! devices taken at once — and never a device held by two nodes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use waedge_device_pg::{Lease, Leases};
use waedge_test_postgres::Postgres;

/// The devices every node knows (the first few of them registered).
static DEVICES: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (0..10).map(|d| format!("device-{d:02}")).collect());

/// A node as the device layer will run it: it takes turns and acts on them.
struct Node {
    leases: Leases,
    held: Vec<Lease>,
}

impl Node {
    /// One turn: stops (here: forgets) and releases the surplus, keeps the rest.
    async fn turn(&mut self) {
        let known: Vec<(&str, &str)> = DEVICES.iter().map(|device| ("acme", device.as_str())).collect();
        let turn = self.leases.turn(&known).await.expect("a turn");
        for lease in &turn.surplus {
            self.leases.release(lease).await.expect("a release");
        }
        let surplus: BTreeSet<i64> = turn.surplus.iter().map(|lease| lease.id).collect();
        self.held = turn.held.into_iter().filter(|lease| !surplus.contains(&lease.id)).collect();
    }

    fn devices(&self) -> BTreeSet<String> {
        self.held.iter().map(|lease| lease.device.clone()).collect()
    }
}

async fn cluster(nodes: usize, devices: usize, ttl: Duration) -> (Postgres, Vec<Node>) {
    let (server, _url, db) = common::database().await;
    let nodes: Vec<Node> =
        (0..nodes).map(|n| Node { leases: Leases::new(db.clone(), &format!("node-{n}"), ttl), held: vec![] }).collect();
    for device in &DEVICES[..devices] {
        nodes[0].leases.register("acme", device).await.unwrap();
    }
    (server, nodes)
}

/// Turns of `nodes` (the ones given), round robin, `rounds` times.
async fn rounds(nodes: &mut [Node], which: &[usize], rounds: usize) {
    for _ in 0..rounds {
        for &n in which {
            nodes[n].turn().await;
            assert_disjoint(nodes);
        }
    }
}

/// No device is held by two nodes.
fn assert_disjoint(nodes: &[Node]) {
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for (n, node) in nodes.iter().enumerate() {
        for device in node.devices() {
            if let Some(other) = owners.insert(device.clone(), n) {
                panic!("{device} is held by node-{other} and node-{n}");
            }
        }
    }
}

fn shares(nodes: &[Node], which: &[usize]) -> Vec<usize> {
    which.iter().map(|&n| nodes[n].held.len()).collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn devices_are_shared_evenly_and_a_dead_nodes_devices_are_taken_over() {
    let (_server, mut nodes) = cluster(3, 9, Duration::from_secs(2)).await;
    rounds(&mut nodes, &[0, 1, 2], 3).await;
    assert_eq!(shares(&nodes, &[0, 1, 2]), [3, 3, 3]);

    // Node 2 dies (stops taking turns; what it held is what the fencing is for): once its
    // leases expired, the others take its devices, each with a new epoch.
    let orphans = std::mem::take(&mut nodes[2].held);
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rounds(&mut nodes, &[0, 1], 1).await;
    }
    let mut survivors = shares(&nodes, &[0, 1]);
    survivors.sort();
    assert_eq!(survivors, [4, 5], "the two survivors hold all nine");
    for orphan in orphans {
        let taken = nodes[..2].iter().flat_map(|node| &node.held).find(|lease| lease.id == orphan.id).unwrap();
        assert_eq!(taken.epoch, orphan.epoch + 1, "{} was taken over with a new epoch", orphan.device);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_joining_node_gets_its_share_by_hand_offs_and_a_leaving_one_hands_over_at_once() {
    let (_server, mut nodes) = cluster(3, 6, Duration::from_secs(60)).await;
    rounds(&mut nodes, &[0, 1], 3).await;
    assert_eq!(shares(&nodes, &[0, 1]), [3, 3]);

    // Node 2 joins: the others hand one device each over, and it takes them.
    rounds(&mut nodes, &[2, 0, 1, 2], 1).await;
    assert_eq!(shares(&nodes, &[0, 1, 2]), [2, 2, 2]);

    // Node 0 leaves cleanly: with leases of a minute, its devices are taken at the next turns.
    nodes[0].leases.leave().await.unwrap();
    nodes[0].held.clear();
    rounds(&mut nodes, &[1, 2], 1).await;
    assert_eq!(shares(&nodes, &[1, 2]), [3, 3]);

    // A device no node knows (no session runs it anywhere) is taken by none.
    nodes[1].leases.register("acme", "stranger").await.unwrap();
    rounds(&mut nodes, &[1, 2], 2).await;
    assert!(nodes.iter().all(|node| !node.devices().contains("stranger")));
}

//! `xmlns="encrypt"` `<key>`: pre-key bundles for the devices a client is about to
//! encrypt to. The sim answers for the devices it plays (world accounts' phones and the
//! companions the world lists), each bundle with a one-time pre-key nobody got before;
//! other devices are left out, which the client takes as "no bundle" and skips.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::node::{self, children, iq_result};
use crate::sim::Shared;
use crate::sim_device::is_simulated;

/// Answers a pre-key fetch whose `<key>` child is `key`.
pub async fn answer(shared: &Shared, req: &Node, key: &Node) -> Node {
    let mut users = Vec::new();
    for user in children(key).iter().filter(|u| u.tag == "user") {
        let Some(jid) = node::jid_attr(user, "jid") else {
            continue;
        };
        let Some(account) = shared.world.account_by_jid(&jid).filter(|a| is_simulated(a, jid.device, &shared.hub))
        else {
            tracing::debug!("no pre-keys for {jid}: not a device the sim plays");
            continue;
        };
        match shared.devices.bundle(account, jid.device).await {
            Ok(bundle) => users.push(bundle.user_node(jid)),
            Err(e) => tracing::warn!("cannot build the pre-key bundle of {jid}: {e}"),
        }
    }
    iq_result(req, vec![NodeBuilder::new("list").children(users).build()])
}

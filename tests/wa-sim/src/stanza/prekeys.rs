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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use wacore::prekeys::PreKeyUtils;
    use wacore_binary::Jid;

    use super::*;
    use crate::faults::Faults;
    use crate::hub::{DeviceAddr, Hub};
    use crate::noise::NoiseIdentity;
    use crate::world::World;

    fn shared() -> Shared {
        Shared {
            world: World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/worlds/demo.toml")).unwrap(),
            noise: NoiseIdentity::new(None).unwrap(),
            hub: Hub::default(),
            faults: Faults::default(),
            handshakes: Default::default(),
            devices: Default::default(),
            inboxes: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_client_reads_bundles_of_the_devices_the_sim_plays_only() {
        let shared = shared();
        // A real client is Alice's device 7: the sim does not answer for it.
        shared.hub.link(&DeviceAddr { phone: "15550002222".into(), device: 7 });
        let asked = [
            "15550002222@s.whatsapp.net",
            "100000000000002:3@lid",
            "15550002222:7@s.whatsapp.net",
            "19999@s.whatsapp.net",
        ];
        let users = asked.iter().map(|j| NodeBuilder::new("user").attr("jid", j.parse::<Jid>().unwrap()).build());
        let key = NodeBuilder::new("key").children(users).build();
        let req = NodeBuilder::new("iq").attr("id", "1").attr("xmlns", "encrypt").attr("type", "get").build();

        let answer = answer(&shared, &req, &key).await;
        let wire = wacore_binary::marshal(&answer).unwrap();
        let plain = wacore_binary::util::unpack(&wire).unwrap();
        let parsed = wacore_binary::marshal::unmarshal_ref(&plain).unwrap();
        let outcome = PreKeyUtils::parse_prekeys_response(&parsed, &HashMap::new()).unwrap();
        let got: BTreeSet<String> = outcome.bundles.keys().map(Jid::to_string).collect();
        assert_eq!(got, asked[..2].iter().map(|j| j.to_string()).collect());
        assert!(outcome.rejected.is_empty());
    }
}

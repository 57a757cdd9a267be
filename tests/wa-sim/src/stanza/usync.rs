//! `xmlns="usync"`: contact, LID, status, picture, business and device lookups.
//!
//! Fields an account hides by privacy come back as per-field `<error code="401"/>`
//! (WhatsApp's shape), which the client surfaces as `status_error`, `picture_error`, …
//! An account never hides anything from itself.

use std::collections::BTreeSet;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::hub::Hub;
use crate::node::{self, children, error_child, iq_result, text};
use crate::phone::{Phone, verified_name_certificate};
use crate::world::{Account, World};

/// Answers a usync query as seen by `viewer` (the querying device's account).
pub fn answer(req: &Node, world: &World, hub: &Hub, viewer: Option<&Account>) -> Node {
    let Some(usync) = req.get_optional_child("usync") else {
        return node::iq_error(req, 400, "bad-request");
    };
    let protocols: Vec<&str> =
        usync.get_optional_child("query").map(children).unwrap_or_default().iter().map(|p| p.tag.as_ref()).collect();
    let users = usync
        .get_optional_child("list")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter(|u| u.tag == "user")
        .filter_map(queried_jid)
        .map(|jid| {
            let q = Lookup { hub, viewer, account: world.account_by_jid(&jid) };
            q.user(jid, &protocols)
        });
    let mut reply = NodeBuilder::new("usync").attr("last", "true").attr("index", "0");
    for key in ["sid", "mode", "context"] {
        if let Some(v) = node::attr(usync, key) {
            reply = reply.attr(key, v);
        }
    }
    iq_result(req, vec![reply.children([NodeBuilder::new("list").children(users).build()]).build()])
}

/// The user a `<user>` entry asks about: its `jid`, or the phone in `<contact>`.
fn queried_jid(user: &Node) -> Option<Jid> {
    if let Some(jid) = node::jid_attr(user, "jid") {
        return Some(jid.to_non_ad());
    }
    let contact = user.get_optional_child("contact")?;
    let phone = String::from_utf8_lossy(node::content_bytes(contact)?).trim_start_matches('+').to_owned();
    (!phone.is_empty() && phone.chars().all(|c| c.is_ascii_digit())).then(|| Jid::pn(phone.as_str()))
}

struct Lookup<'a> {
    hub: &'a Hub,
    viewer: Option<&'a Account>,
    account: Option<&'a Account>,
}

impl Lookup<'_> {
    fn user(&self, jid: Jid, protocols: &[&str]) -> Node {
        let mut b = NodeBuilder::new("user");
        if let Some(a) = self.account.filter(|a| jid.is_lid() && !self.hides_mapping(a)) {
            b = b.attr("pn_jid", Jid::pn(a.phone.as_str()));
        }
        let results = protocols.iter().filter_map(|p| self.protocol(p, &jid));
        b.attr("jid", jid.clone()).children(results).build()
    }

    fn protocol(&self, protocol: &str, jid: &Jid) -> Option<Node> {
        if protocol == "contact" {
            let kind = if self.account.is_some() { "in" } else { "out" };
            return Some(NodeBuilder::new("contact").attr("type", kind).build());
        }
        let account = self.account?;
        let hidden_from_viewer = self.viewer.is_none_or(|v| v.phone != account.phone);
        let privacy = account.privacy;
        match protocol {
            "lid" if jid.is_pn() && !self.hides_mapping(account) => {
                Some(NodeBuilder::new("lid").attr("val", Jid::lid(account.lid.as_str())).build())
            }
            "status" if privacy.hide_about && hidden_from_viewer => Some(not_authorized("status")),
            "status" => Some(match &account.about {
                Some(about) => with_attr(text("status", about), "t", account.about_set_at.to_string()),
                None => NodeBuilder::new("status").build(),
            }),
            "picture" if privacy.hide_picture && hidden_from_viewer => Some(not_authorized("picture")),
            "picture" => Some(match &account.picture {
                Some(p) => NodeBuilder::new("picture").attr("id", p.id.as_str()).build(),
                None => NodeBuilder::new("picture").children([error_child(404, "item-not-found")]).build(),
            }),
            "business" => account.business.as_ref().map(|b| {
                let cert = verified_name_certificate(&b.verified_name, serial_of(account));
                NodeBuilder::new("business").children([NodeBuilder::new("verified_name").bytes(cert).build()]).build()
            }),
            "devices" if privacy.hide_devices && hidden_from_viewer => Some(not_authorized("devices")),
            "devices" => Some(self.devices(account)),
            _ => None,
        }
    }

    /// Whether `account` keeps its LID ↔ phone mapping from the viewer.
    fn hides_mapping(&self, account: &Account) -> bool {
        account.privacy.lid_only && self.viewer.is_none_or(|v| v.phone != account.phone)
    }

    fn devices(&self, account: &Account) -> Node {
        let companions: BTreeSet<u16> =
            account.devices.iter().copied().chain(self.hub.linked_devices(&account.phone)).collect();
        let list =
            std::iter::once(NodeBuilder::new("device").attr("id", "0").build()).chain(companions.iter().map(|d| {
                NodeBuilder::new("device").attr("id", d.to_string()).attr("key-index", d.to_string()).build()
            }));
        let mut parts = vec![NodeBuilder::new("device-list").children(list).build()];
        if !companions.is_empty() {
            let companions: Vec<u16> = companions.into_iter().collect();
            match Phone::of(account).key_index_list(&companions) {
                Ok(bytes) => parts
                    .push(NodeBuilder::new("key-index-list").attr("ts", node::now().to_string()).bytes(bytes).build()),
                Err(e) => {
                    tracing::warn!("cannot sign the key index list of {}: {e}", account.phone)
                }
            }
        }
        NodeBuilder::new("devices").children(parts).build()
    }
}

/// A stable certificate serial per business account.
fn serial_of(account: &Account) -> u64 {
    account.lid.parse::<u64>().unwrap_or(1)
}

fn not_authorized(tag: &'static str) -> Node {
    NodeBuilder::new(tag).children([error_child(401, "not-authorized")]).build()
}

fn with_attr(mut n: Node, key: &'static str, value: String) -> Node {
    n.attrs.insert(key, value);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::World;

    fn usync_iq(jid: &str, protocols: &[&str]) -> Node {
        let query = NodeBuilder::new("query")
            .children(protocols.iter().map(|p| NodeBuilder::new_dynamic(p.to_string()).build()));
        let user = NodeBuilder::new("user").attr("jid", jid.parse::<Jid>().unwrap()).build();
        let usync =
            NodeBuilder::new("usync").children([query.build(), NodeBuilder::new("list").children([user]).build()]);
        NodeBuilder::new("iq").attr("id", "1").children([usync.build()]).build()
    }

    fn user_of(reply: &Node) -> &Node {
        let list = reply.get_optional_child("usync").unwrap().get_optional_child("list").unwrap();
        &children(list)[0]
    }

    #[test]
    fn hidden_fields_are_per_field_errors_but_not_for_the_owner() {
        let world = World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/worlds/demo.toml")).unwrap();
        let hub = Hub::default();
        let req = usync_iq("15550003333@s.whatsapp.net", &["status", "picture", "devices"]);
        let viewer = world.account_by_phone("15550001111");
        let reply = answer(&req, &world, &hub, viewer);
        for field in children(user_of(&reply)) {
            assert!(field.get_optional_child("error").is_some(), "{} not hidden", field.tag);
        }
        let owner = world.account_by_phone("15550003333");
        let reply = answer(&req, &world, &hub, owner);
        for field in children(user_of(&reply)) {
            assert!(field.get_optional_child("error").is_none(), "{} hidden from owner", field.tag);
        }
    }
}

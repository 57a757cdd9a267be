//! `xmlns="w:g2"`: the groups a device's account takes part in, and group info.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::node::{self, iq_error, iq_result};
use crate::world::{Account, Group, Participant, World};

/// Answers a group IQ: `<participating>` or `<query>` (group info).
pub fn answer(req: &Node, world: &World, viewer: Option<&Account>) -> Node {
    let Some(viewer) = viewer else {
        return iq_error(req, 401, "not-authorized");
    };
    if req.get_optional_child("participating").is_some() {
        let groups = world.groups_of(viewer).map(|g| group_node(g, world));
        return iq_result(req, vec![NodeBuilder::new("groups").children(groups).build()]);
    }
    if req.get_optional_child("query").is_some() {
        let target = node::jid_attr(req, "to").filter(|j| j.server == wacore_binary::Server::Group);
        return match target.and_then(|j| world.group(&j.user)) {
            None => iq_error(req, 404, "item-not-found"),
            Some(g) if !g.has_member(viewer) => iq_error(req, 403, "forbidden"),
            Some(g) => iq_result(req, vec![group_node(g, world)]),
        };
    }
    tracing::debug!("unsupported w:g2 request answered with 501");
    iq_error(req, 501, "feature-not-implemented")
}

fn group_node(g: &Group, world: &World) -> Node {
    let creator = address(g, g.creator(), world);
    let mut children: Vec<Node> = g
        .participants
        .iter()
        .map(|p| {
            let mut n = NodeBuilder::new("participant").attr("jid", address(g, p, world));
            if let Some(role) = p.role.wire() {
                n = n.attr("type", role);
            }
            if let Some((key, other)) = alternate(g, p, world) {
                n = n.attr(key, other);
            }
            n.build()
        })
        .collect();
    if let Some(desc) = &g.description {
        children.push(
            NodeBuilder::new("description")
                .attr("id", format!("{:X}", g.created_at))
                .attr("participant", creator.clone())
                .attr("t", g.created_at.to_string())
                .children([node::text("body", desc)])
                .build(),
        );
    }
    if g.announce {
        children.push(NodeBuilder::new("announcement").build());
    }
    if g.locked {
        children.push(NodeBuilder::new("locked").build());
    }
    if let Some(seconds) = g.ephemeral {
        children.push(NodeBuilder::new("ephemeral").attr("expiration", seconds.to_string()).build());
    }
    if g.join_approval {
        children.push(
            NodeBuilder::new("membership_approval_mode")
                .children([NodeBuilder::new("group_join").attr("state", "on").build()])
                .build(),
        );
    }
    NodeBuilder::new("group")
        .attr("id", g.id.as_str())
        .attr("subject", g.subject.as_str())
        .attr("s_t", g.created_at.to_string())
        .attr("s_o", creator.clone())
        .attr("creation", g.created_at.to_string())
        .attr("creator", creator)
        .attr("size", g.participants.len().to_string())
        .attr("addressing_mode", if g.lid_addressed { "lid" } else { "pn" })
        .children(children)
        .build()
}

/// The participant's JID in this group's addressing mode (falls back to what is known).
fn address(g: &Group, p: &Participant, world: &World) -> Jid {
    let (pn, lid) = identities(p, world);
    let preferred = if g.lid_addressed { lid.clone().or(pn.clone()) } else { pn.clone().or(lid.clone()) };
    preferred.unwrap_or_else(|| Jid::pn("0"))
}

/// The other identity, as the attribute the client reads (`lid` or `phone_number`).
fn alternate(g: &Group, p: &Participant, world: &World) -> Option<(&'static str, Jid)> {
    let (pn, lid) = identities(p, world);
    if g.lid_addressed {
        pn.filter(|_| lid.is_some()).map(|j| ("phone_number", j))
    } else {
        lid.filter(|_| pn.is_some()).map(|j| ("lid", j))
    }
}

/// Phone and LID JIDs of a participant, completed from the world's accounts.
fn identities(p: &Participant, world: &World) -> (Option<Jid>, Option<Jid>) {
    let account = p
        .phone
        .as_deref()
        .and_then(|ph| world.account_by_phone(ph))
        .or_else(|| p.lid.as_deref().and_then(|l| world.account_by_lid(l)));
    let phone = p.phone.as_deref().or(account.map(|a| a.phone.as_str()));
    let lid = p.lid.as_deref().or(account.map(|a| a.lid.as_str()));
    (phone.map(Jid::pn), lid.map(Jid::lid))
}

//! Login and housekeeping: `<success>`, going active, offline end, keepalive, and the
//! empty answers to the queries a client sends right after login.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::node::{self, SERVER, children, iq_result};
use crate::world::Account;

/// Privacy settings reported to every client: everything visible to everyone.
const PRIVACY: &[(&str, &str)] = &[
    ("last", "all"),
    ("online", "all"),
    ("profile", "all"),
    ("status", "all"),
    ("readreceipts", "all"),
    ("groupadd", "all"),
    ("calladd", "all"),
];

/// `<success>` for a device of this account: the client reads `t` and `lid`.
pub fn success(account: &Account) -> Node {
    NodeBuilder::new("success")
        .attr("t", node::now().to_string())
        .attr("lid", Jid::lid(account.lid.as_str()))
        .attr("creation", "1700000000")
        .attr("location", "sim")
        .build()
}

/// `<failure reason="401"/>`: the device is not (or no longer) registered.
pub fn failure_logged_out() -> Node {
    NodeBuilder::new("failure").attr("reason", "401").attr("location", "sim").build()
}

/// `<failure reason="402" code="101" expire=…/>`: the account is banned for `expire`
/// more seconds (reason 101: messages to too many people not in their address books).
pub fn failure_temp_banned(expire: u64) -> Node {
    NodeBuilder::new("failure")
        .attr("reason", "402")
        .attr("code", "101")
        .attr("expire", expire.to_string())
        .attr("location", "sim")
        .build()
}

/// `<stream:error code=…/>`, e.g. 515 (restart) or 401 (logged out).
pub fn stream_error(code: u16) -> Node {
    NodeBuilder::new("stream:error").attr("code", code.to_string()).build()
}

/// `<stream:error><conflict type="replaced"/></stream:error>`: another client took over.
pub fn stream_replaced() -> Node {
    NodeBuilder::new("stream:error").children([NodeBuilder::new("conflict").attr("type", "replaced").build()]).build()
}

/// `xmlns="passive"`: answered; going active starts the offline drain, which delivers the
/// device's `queued` messages (marked `offline`) and ends with `<ib><offline count/>`.
pub fn passive(req: &Node, queued: Vec<Node>) -> Vec<Node> {
    let mut out = vec![iq_result(req, vec![])];
    if req.get_optional_child("active").is_some() {
        let count = queued.len();
        out.extend(queued.into_iter().map(from_offline_queue));
        out.push(
            NodeBuilder::new("ib")
                .attr("from", SERVER)
                .children([NodeBuilder::new("offline").attr("count", count.to_string()).build()])
                .build(),
        );
    }
    out
}

/// A stanza delivered from the offline queue carries an `offline` attribute.
fn from_offline_queue(mut stanza: Node) -> Node {
    stanza.attrs.insert("offline", "1");
    stanza
}

/// `xmlns="encrypt"`: pre-key count (`unused_pre_keys` of the device), uploads, digests.
pub fn encrypt(req: &Node, unused_pre_keys: usize) -> Node {
    if req.get_optional_child("count").is_some() {
        return iq_result(req, vec![NodeBuilder::new("count").attr("value", unused_pre_keys.to_string()).build()]);
    }
    iq_result(req, vec![])
}

/// `<notification type="encrypt"><count/></notification>`: the server is short of the
/// device's pre-keys (the client answers with an upload).
pub fn pre_keys_low() -> Node {
    NodeBuilder::new("notification")
        .attr("from", SERVER)
        .attr("type", "encrypt")
        .attr("id", node::random_id())
        .attr("t", node::now().to_string())
        .children([NodeBuilder::new("count").attr("value", "0").build()])
        .build()
}

/// `xmlns="abt"`: no A/B props.
pub fn props(req: &Node) -> Node {
    iq_result(req, vec![NodeBuilder::new("props").attr("protocol", "1").attr("hash", "wa-sim").build()])
}

/// `xmlns="blocklist"`: nobody is blocked.
pub fn blocklist(req: &Node) -> Node {
    iq_result(req, vec![NodeBuilder::new("list").build()])
}

/// `xmlns="privacy"`: the privacy settings.
pub fn privacy(req: &Node) -> Node {
    let categories = PRIVACY
        .iter()
        .map(|(name, value)| NodeBuilder::new("category").attr("name", *name).attr("value", *value).build());
    iq_result(req, vec![NodeBuilder::new("privacy").children(categories).build()])
}

/// `xmlns="w:sync:app:state"`: every requested collection is empty at version 0.
pub fn app_state(req: &Node) -> Node {
    let requested = req.get_optional_child("sync").map(children).unwrap_or_default();
    let collections = requested.iter().filter(|c| c.tag == "collection").filter_map(|c| {
        let name = node::attr(c, "name")?;
        Some(NodeBuilder::new("collection").attr("name", name).attr("version", "0").build())
    });
    iq_result(req, vec![NodeBuilder::new("sync").children(collections).build()])
}

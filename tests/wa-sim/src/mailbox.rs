//! The server's offline queue. Every message (and receipt) sent to a device is kept, as the
//! very stanza that was sent, until that device acknowledges it; whatever is still kept when
//! the device logs in is delivered again before the end of its offline drain.

use std::collections::HashMap;
use std::sync::Mutex;

use wacore_binary::Node;

use crate::hub::{ConnId, DeviceAddr, lock};
use crate::node;

/// One device's unacknowledged messages, oldest first, and the connection that takes new
/// messages as they come (set once that connection's offline drain is under way).
#[derive(Default)]
struct Mailbox {
    held: Vec<Node>,
    live: Option<ConnId>,
}

/// What a device acknowledged.
#[derive(Debug, Clone, Copy)]
pub enum Acknowledgement<'a> {
    /// Messages, by id: the device's receipt for them (an aggregate one names several) or
    /// its `<ack class="message">`.
    Messages(&'a [String]),
    /// One notification: `<ack class="notification" id/>`.
    Notification(&'a str),
    /// One receipt: `<ack class="receipt" id type/>`. A message's delivery and read
    /// receipts share its id and differ by `type` (none for delivery).
    Receipt {
        /// The receipt's id (the message's).
        id: &'a str,
        /// The receipt's `type`.
        kind: Option<&'a str>,
    },
}

impl Acknowledgement<'_> {
    fn settles(&self, held: &Node) -> bool {
        let id = node::attr(held, "id");
        match *self {
            Acknowledgement::Messages(ids) => held.tag == "message" && id.is_some_and(|id| ids.contains(&id)),
            Acknowledgement::Notification(acked) => held.tag == "notification" && id.as_deref() == Some(acked),
            Acknowledgement::Receipt { id: acked, kind } => {
                held.tag == "receipt" && id.as_deref() == Some(acked) && node::attr(held, "type").as_deref() == kind
            }
        }
    }
}

/// The mailboxes of every device the sim sent messages to.
#[derive(Default)]
pub struct Mailboxes(Mutex<HashMap<DeviceAddr, Mailbox>>);

impl Mailboxes {
    /// Keeps `stanza` for `addr` until it is acknowledged; returns the connection to send
    /// it on now, if the device is online (otherwise it waits for the next login).
    pub fn hold(&self, addr: &DeviceAddr, stanza: Node) -> Option<ConnId> {
        let mut boxes = lock(&self.0);
        let mailbox = boxes.entry(addr.clone()).or_default();
        mailbox.held.push(stanza);
        mailbox.live
    }

    /// The device's connection `conn` starts its offline drain: returns the stanzas to
    /// deliver (again) before the drain ends; later ones go to `conn` directly.
    pub fn go_live(&self, addr: &DeviceAddr, conn: ConnId) -> Vec<Node> {
        let mut boxes = lock(&self.0);
        let mailbox = boxes.entry(addr.clone()).or_default();
        mailbox.live = Some(conn);
        mailbox.held.clone()
    }

    /// Connection `conn` closed: the device's messages wait for its next login.
    pub fn disconnected(&self, conn: ConnId) {
        for mailbox in lock(&self.0).values_mut().filter(|m| m.live == Some(conn)) {
            mailbox.live = None;
        }
    }

    /// The device acknowledged stanzas; returns how many of them it held.
    pub fn acknowledge(&self, addr: &DeviceAddr, ack: Acknowledgement<'_>) -> usize {
        let mut boxes = lock(&self.0);
        let Some(mailbox) = boxes.get_mut(addr) else {
            return 0;
        };
        let before = mailbox.held.len();
        mailbox.held.retain(|held| !ack.settles(held));
        before - mailbox.held.len()
    }

    /// Messages (not receipts) waiting for an acknowledgement from any device of the account.
    pub fn unacknowledged(&self, phone: &str) -> usize {
        let boxes = lock(&self.0);
        let held = boxes.iter().filter(|(addr, _)| addr.phone == phone).flat_map(|(_, m)| &m.held);
        held.filter(|stanza| stanza.tag == "message").count()
    }

    /// Forgets a logged-out device's messages: it will never receive them.
    pub fn discard(&self, addr: &DeviceAddr) {
        lock(&self.0).remove(addr);
    }
}

#[cfg(test)]
mod tests {
    use wacore_binary::builder::NodeBuilder;

    use super::*;

    fn device(phone: &str, device: u16) -> DeviceAddr {
        DeviceAddr { phone: phone.to_owned(), device }
    }

    fn message(id: &str) -> Node {
        NodeBuilder::new("message").attr("id", id).build()
    }

    fn ids(nodes: &[Node]) -> Vec<String> {
        nodes.iter().filter_map(|n| node::attr(n, "id")).collect()
    }

    #[test]
    fn messages_wait_for_their_acknowledgement_and_go_live_after_login() {
        let boxes = Mailboxes::default();
        let (a5, a6) = (device("1", 5), device("1", 6));
        assert_eq!(boxes.hold(&a5, message("M1")), None);
        assert_eq!(boxes.go_live(&a5, 7), vec![message("M1")]);
        assert_eq!(boxes.hold(&a5, message("M2")), Some(7));
        assert_eq!(boxes.hold(&a6, message("M2")), None);
        assert_eq!(boxes.unacknowledged("1"), 3);
        assert_eq!(boxes.unacknowledged("2"), 0);

        assert_eq!(boxes.acknowledge(&a5, Acknowledgement::Messages(&["M1".to_owned(), "X".to_owned()])), 1);
        assert_eq!(boxes.acknowledge(&a5, Acknowledgement::Messages(&["M1".to_owned()])), 0);
        boxes.disconnected(7);
        assert_eq!(boxes.hold(&a5, message("M3")), None);
        assert_eq!(ids(&boxes.go_live(&a5, 8)), ["M2", "M3"]);

        boxes.discard(&a6);
        assert_eq!(boxes.unacknowledged("1"), 2);
    }

    fn receipt(id: &str, kind: Option<&str>) -> Node {
        let b = NodeBuilder::new("receipt").attr("id", id);
        match kind {
            Some(kind) => b.attr("type", kind).build(),
            None => b.build(),
        }
    }

    #[test]
    fn a_receipt_is_settled_by_an_ack_of_its_own_type_only() {
        let boxes = Mailboxes::default();
        let a5 = device("1", 5);
        boxes.hold(&a5, receipt("M1", None));
        boxes.hold(&a5, receipt("M1", Some("read")));
        assert_eq!(boxes.unacknowledged("1"), 0, "receipts are not messages");
        assert_eq!(boxes.acknowledge(&a5, Acknowledgement::Messages(&["M1".to_owned()])), 0);
        assert_eq!(boxes.acknowledge(&a5, Acknowledgement::Receipt { id: "M1", kind: Some("read") }), 1);
        assert_eq!(boxes.go_live(&a5, 7), vec![receipt("M1", None)]);
        assert_eq!(boxes.acknowledge(&a5, Acknowledgement::Receipt { id: "M1", kind: None }), 1);
        assert!(boxes.go_live(&a5, 7).is_empty());
    }
}

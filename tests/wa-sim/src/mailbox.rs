//! The server's offline queue. Every message sent to a device is kept, as the very stanza
//! that was sent, until that device acknowledges it; whatever is still kept when the device
//! logs in is delivered again before the end of its offline drain.

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

/// The mailboxes of every device the sim sent messages to.
#[derive(Default)]
pub struct Mailboxes(Mutex<HashMap<DeviceAddr, Mailbox>>);

impl Mailboxes {
    /// Keeps `message` for `addr` until it is acknowledged; returns the connection to send
    /// it on now, if the device is online (otherwise it waits for the next login).
    pub fn hold(&self, addr: &DeviceAddr, message: Node) -> Option<ConnId> {
        let mut boxes = lock(&self.0);
        let mailbox = boxes.entry(addr.clone()).or_default();
        mailbox.held.push(message);
        mailbox.live
    }

    /// The device's connection `conn` starts its offline drain: returns the messages to
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

    /// The device acknowledged the messages with these ids; returns how many it held.
    pub fn acknowledge(&self, addr: &DeviceAddr, ids: &[String]) -> usize {
        let mut boxes = lock(&self.0);
        let Some(mailbox) = boxes.get_mut(addr) else {
            return 0;
        };
        let before = mailbox.held.len();
        mailbox.held.retain(|m| node::attr(m, "id").is_none_or(|id| !ids.contains(&id)));
        before - mailbox.held.len()
    }

    /// Messages waiting for an acknowledgement from any device of the account.
    pub fn unacknowledged(&self, phone: &str) -> usize {
        lock(&self.0).iter().filter(|(addr, _)| addr.phone == phone).map(|(_, m)| m.held.len()).sum()
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

        assert_eq!(boxes.acknowledge(&a5, &["M1".to_owned(), "X".to_owned()]), 1);
        assert_eq!(boxes.acknowledge(&a5, &["M1".to_owned()]), 0);
        boxes.disconnected(7);
        assert_eq!(boxes.hold(&a5, message("M3")), None);
        assert_eq!(ids(&boxes.go_live(&a5, 8)), ["M2", "M3"]);

        boxes.discard(&a6);
        assert_eq!(boxes.unacknowledged("1"), 2);
    }
}

//! Receipts a world account's phone sends for a text a client device sent it: delivered
//! (no `type`) once it has the text, read (`type="read"`) once its user read it.
//!
//! Like messages, they go to every linked client device of the sender through the offline
//! queue: a device that is offline gets them at its next login, and each is kept until
//! the device acknowledges it (`<ack class="receipt" id type/>`).

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::error::SimError;
use crate::hub::{DeviceAddr, Hub};
use crate::inbox::Entry;
use crate::node;
use crate::sim::Shared;

/// What a receipt confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The recipient's phone has the message.
    Delivered,
    /// The recipient read it.
    Read,
}

/// Sends the receipt for the text in `entry` to every linked device of its sender; returns how
/// many devices it went to (now or at their next login).
pub fn send(hub: &Hub, entry: &Entry, receipt: Receipt) -> usize {
    let stanza = stanza(entry, receipt);
    let devices = hub.linked_devices(&entry.text.from_phone);
    for device in &devices {
        hub.deliver(&DeviceAddr { phone: entry.text.from_phone.clone(), device: *device }, stanza.clone());
    }
    devices.len()
}

/// Account `reader` reads the text `id` it received: its phone sends the read receipt.
pub fn read(shared: &Shared, reader: &str, id: &str) -> Result<(), SimError> {
    let account = shared.world.account_by_phone(reader).ok_or_else(|| SimError::UnknownAccount(reader.to_owned()))?;
    let entry = shared
        .inboxes
        .find(&account.phone, id)
        .ok_or_else(|| SimError::UnknownMessage { phone: account.phone.clone(), id: id.to_owned() })?;
    let devices = send(&shared.hub, &entry, Receipt::Read);
    tracing::info!("{} read {id}: receipt to {devices} device(s) of {}", account.phone, entry.text.from_phone);
    Ok(())
}

/// `<receipt id from [participant] t [type="read"]/>`, from the recipient as the sender
/// addressed it (in a group: from the group, with the member as `participant`).
fn stanza(entry: &Entry, receipt: Receipt) -> Node {
    let mut b = NodeBuilder::new("receipt")
        .attr("id", entry.text.id.as_str())
        .attr("from", entry.chat.clone())
        .attr("t", node::now().to_string());
    if let Some(participant) = &entry.participant {
        b = b.attr("participant", participant.clone());
    }
    if receipt == Receipt::Read {
        b = b.attr("type", "read");
    }
    b.build()
}

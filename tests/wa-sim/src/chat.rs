//! Messages the world's accounts send to linked devices, and their changes to groups. Each
//! message carries the sender's push name (`notify`), which is how a client learns other
//! contacts' push names.

use std::time::Duration;

use wacore::libsignal::protocol::SignalProtocolError;
use wacore::messages::MessageUtils;
use wacore_binary::builder::NodeBuilder;
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;

use crate::error::SimError;
use crate::hub::DeviceAddr;
use crate::node;
use crate::signal::{self, Bundle, Envelope};
use crate::sim::Shared;
use crate::world::Account;

/// A text the sim sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message id of the stanza (one id for every device of the recipient).
    pub id: String,
    /// How many devices it was delivered to now or queued for (offline devices get it at
    /// their next login).
    pub devices: usize,
}

/// Sends a text from account `from` to every linked device of account `to` the sim holds
/// pre-keys for: online devices get it now, offline ones at their next login, and each
/// gets it again at every login until it acknowledges it.
pub async fn send_text(shared: &Shared, from: &str, to: &str, text: &str) -> Result<Sent, SimError> {
    let account =
        |phone: &str| shared.world.account_by_phone(phone).ok_or_else(|| SimError::UnknownAccount(phone.to_owned()));
    let (sender, recipient) = (account(from)?, account(to)?);
    if sender.phone == recipient.phone {
        return Err(SimError::SelfMessage);
    }
    let content = wa::Message { conversation: Some(text.to_owned()), ..Default::default() };
    wait_for_pre_keys(shared, &recipient.phone).await;
    let id = node::random_id();
    let envelope = Envelope { id: &id, kind: "text", notify: Some(&sender.push_name) };
    let crypto = |e: SignalProtocolError| SimError::Crypto(e.to_string());
    let phone = shared.devices.get(sender, 0).map_err(crypto)?;
    let mut phone = phone.lock().await;
    let receiving = receiving_devices(shared, [recipient]);
    for (addr, bundle) in &receiving {
        let message = signal::message(&mut phone, sender, addr, bundle, envelope, &content).await.map_err(crypto)?;
        shared.hub.deliver(addr, message);
    }
    let devices = receiving.len();
    if devices == 0 {
        return Err(SimError::NoReceivingDevice(recipient.phone.clone()));
    }
    Ok(Sent { id, devices })
}

/// Sends a text from account `from` to group `group` (its id): every linked client device of
/// the group's other members gets it, with the sender's key for the group (a `pkmsg` each) and
/// the text under it (one `skmsg`), now or at its next login, as [`send_text`] delivers.
pub async fn send_group_text(shared: &Shared, from: &str, group: &str, text: &str) -> Result<Sent, SimError> {
    let sender = shared.world.account_by_phone(from).ok_or_else(|| SimError::UnknownAccount(from.to_owned()))?;
    let group = shared.world.group(group).ok_or_else(|| SimError::UnknownGroup(group.to_owned()))?;
    if !group.has_member(sender) {
        return Err(SimError::NotAMember { phone: sender.phone.clone(), group: group.id.clone() });
    }
    let members: Vec<&Account> =
        shared.world.accounts.iter().filter(|a| a.phone != sender.phone && group.has_member(a)).collect();
    for member in &members {
        wait_for_pre_keys(shared, &member.phone).await;
    }
    let crypto = |e: SignalProtocolError| SimError::Crypto(e.to_string());
    let phone = shared.devices.get(sender, 0).map_err(crypto)?;
    let mut phone = phone.lock().await;
    let group_jid = group.jid().to_string();
    let own = signal::address(&DeviceAddr { phone: sender.phone.clone(), device: 0 });
    let content = wa::Message { conversation: Some(text.to_owned()), ..Default::default() };
    let plaintext = MessageUtils::pad_message_v2(content.encode_to_vec());
    let (distribution, skmsg) = phone.group_encrypt(&group_jid, &own, &plaintext).await.map_err(crypto)?;
    let distribution = wa::Message {
        sender_key_distribution_message: MessageField::some(wa::message::SenderKeyDistributionMessage {
            group_id: Some(group_jid),
            axolotl_sender_key_distribution_message: Some(distribution.serialized().to_vec()),
        }),
        ..Default::default()
    };
    let id = node::random_id();
    let envelope = Envelope { id: &id, kind: "text", notify: Some(&sender.push_name) };
    let receiving = receiving_devices(shared, members);
    for (addr, bundle) in &receiving {
        let parts = (&distribution, skmsg.as_slice());
        let message =
            signal::group_message(&mut phone, (sender, group), addr, bundle, envelope, parts).await.map_err(crypto)?;
        shared.hub.deliver(addr, message);
    }
    let devices = receiving.len();
    if devices == 0 {
        return Err(SimError::NoReceivingDevice(group.id.clone()));
    }
    Ok(Sent { id, devices })
}

/// Account `by` renames group `group` (its id) to `subject`: every linked client device of the
/// group's members gets a `w:gp2` notification, through the offline queue like a message.
/// Returns the notification's id. The world's group keeps its subject: look-ups still show it.
pub fn rename_group(shared: &Shared, by: &str, group: &str, subject: &str) -> Result<String, SimError> {
    let admin = shared.world.account_by_phone(by).ok_or_else(|| SimError::UnknownAccount(by.to_owned()))?;
    let group = shared.world.group(group).ok_or_else(|| SimError::UnknownGroup(group.to_owned()))?;
    if !group.has_member(admin) {
        return Err(SimError::NotAMember { phone: admin.phone.clone(), group: group.id.clone() });
    }
    let (id, at) = (node::random_id(), node::now().to_string());
    let by = group.address_of(admin);
    let change =
        NodeBuilder::new("subject").attr("subject", subject).attr("s_o", by.clone()).attr("s_t", at.as_str()).build();
    let notification = NodeBuilder::new("notification")
        .attr("type", "w:gp2")
        .attr("id", id.as_str())
        .attr("from", group.jid())
        .attr("participant", by)
        .attr("notify", admin.push_name.as_str())
        .attr("addressing_mode", if group.lid_addressed { "lid" } else { "pn" })
        .attr("t", at)
        .children([change])
        .build();
    for member in shared.world.accounts.iter().filter(|a| group.has_member(a)) {
        for device in shared.hub.linked_devices(&member.phone) {
            shared.hub.deliver(&DeviceAddr { phone: member.phone.clone(), device }, notification.clone());
        }
    }
    Ok(id)
}

/// The linked devices of `accounts` that a new session can be started with, each with the
/// pre-keys it takes (one of the device's uploaded one-time pre-keys is used up).
fn receiving_devices<'a>(
    shared: &Shared,
    accounts: impl IntoIterator<Item = &'a Account>,
) -> Vec<(DeviceAddr, Bundle)> {
    let devices = accounts.into_iter().flat_map(|account| {
        shared
            .hub
            .linked_devices(&account.phone)
            .into_iter()
            .map(|device| DeviceAddr { phone: account.phone.clone(), device })
    });
    devices
        .filter_map(|addr| match shared.hub.take_bundle(&addr) {
            Some(bundle) => Some((addr, bundle)),
            None => {
                tracing::warn!("{}:{} has no pre-keys left to encrypt to", addr.phone, addr.device);
                None
            }
        })
        .collect()
}

/// How long a send waits for a just-connected device to upload its pre-keys (the
/// client reports `Connected` before its upload is through).
const PRE_KEY_WAIT: Duration = Duration::from_secs(5);

async fn wait_for_pre_keys(shared: &Shared, phone: &str) {
    let deadline = tokio::time::Instant::now() + PRE_KEY_WAIT;
    while tokio::time::Instant::now() < deadline
        && shared.hub.connected_devices(phone).iter().any(|(_, d)| shared.hub.unused_pre_keys(d) == 0)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! A `<message>` from a client device. The server acks it with its time (or nacks it when
//! a fault says so, and nothing arrives), and every device the sim plays opens what was
//! encrypted for it — the recipient's devices and the sender's own phone, which gets a
//! copy. A text to a world account lands in its inbox once per message id, and its phone
//! confirms delivery with a receipt unless told not to.
//!
//! A text to a group is opened by every member the sim plays: its phone takes the sender key
//! the client distributed to it (a pairwise `<enc>` inside `<participants>`) and decrypts the
//! group's `skmsg` with it; the text lands in each member's inbox, and each confirms delivery
//! with a receipt from the group.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, JidExt as _, Node};
use waproto::whatsapp as wa;

use crate::hub::DeviceAddr;
use crate::inbox::{Entry, ReceivedText};
use crate::node::{self, children};
use crate::receipts::{self, Receipt};
use crate::signal;
use crate::sim_device::is_simulated;
use crate::stanza::Ctx;
use crate::world::{Account, Group};

/// Handles a client's `<message>`; returns the server's ack (or nack).
pub async fn receive(ctx: &Ctx, stanza: &Node) -> Vec<Node> {
    let Some(id) = node::attr(stanza, "id") else {
        return Vec::new();
    };
    let shared = &ctx.shared;
    let chat = node::jid_attr(stanza, "to").map(|to| to.to_non_ad());
    let recipient = chat.as_ref().filter(|c| c.is_pn() || c.is_lid()).and_then(|c| shared.world.account_by_jid(c));
    if let Some(code) = recipient.and_then(|r| shared.faults.take_nack(&r.phone)) {
        tracing::info!("fault: nacking message {id} to {} with {code}", recipient.map_or("?", |r| r.phone.as_str()));
        return vec![ack(stanza, &id, Answer::Refused(code))];
    }
    let at = node::now();
    if let (Some(sender), Some(from), Some(chat)) = (ctx.account(), &ctx.device, chat) {
        let opened = open_all(ctx, from, stanza).await;
        let message = Message { sender, from, id: &id, at };
        if let Some(recipient) = recipient {
            let content = opened.iter().find(|(account, _)| account.phone == recipient.phone);
            if let Some(text) = content.and_then(|(_, content)| message.text(content)) {
                take(ctx, recipient, Entry { text, chat, participant: None }, from);
            }
        } else if let Some(group) = shared.world.group(&chat.user).filter(|_| chat.is_group()) {
            take_group(ctx, &message, (group, &chat), stanza, &opened).await;
        }
    }
    vec![ack(stanza, &id, Answer::Taken(at))]
}

/// A message a client device sent, as the sim took it.
struct Message<'a> {
    sender: &'a Account,
    from: &'a DeviceAddr,
    id: &'a str,
    at: u64,
}

impl Message<'_> {
    /// What a recipient's phone keeps of `content`, if it is a text.
    fn text(&self, content: &wa::Message) -> Option<ReceivedText> {
        let (text, reply_to, quoted_author) = text_of(content)?;
        Some(ReceivedText {
            from_phone: self.sender.phone.clone(),
            from_lid: self.sender.lid.clone(),
            id: self.id.to_owned(),
            text,
            reply_to,
            quoted_author,
            at: self.at,
        })
    }
}

/// A text to `group` (`chat`, its JID): each member the sim plays takes the sender key the
/// client distributed to it (in `opened`) and decrypts the `skmsg` of `stanza` with it.
async fn take_group(
    ctx: &Ctx,
    message: &Message<'_>,
    (group, chat): (&Group, &Jid),
    stanza: &Node,
    opened: &[(&Account, wa::Message)],
) {
    let (shared, from, group_jid) = (&ctx.shared, message.from, chat.to_string());
    for (account, content) in opened {
        let taken = async {
            let phone = shared.devices.get(account, 0)?;
            signal::take_sender_key(&mut *phone.lock().await, &group_jid, from, content).await
        };
        if let Err(e) = taken.await {
            tracing::warn!("{} cannot take the sender key of {}:{}: {e}", account.phone, from.phone, from.device);
        }
    }
    let is_skmsg = |c: &&Node| c.tag == "enc" && node::attr(c, "type").as_deref() == Some("skmsg");
    let Some(skmsg) = children(stanza).iter().find(is_skmsg) else {
        tracing::warn!(
            "{} to {group_jid} from {}:{} has no skmsg: no member can read it",
            message.id,
            from.phone,
            from.device
        );
        return;
    };
    for member in shared.world.accounts.iter().filter(|a| a.phone != message.sender.phone && group.has_member(a)) {
        let opened = async {
            let phone = shared.devices.get(member, 0)?;
            signal::open_group(&mut *phone.lock().await, &group_jid, from, skmsg).await
        };
        match opened.await {
            Ok(content) => {
                if let Some(text) = message.text(&content) {
                    let participant = Some(group.address_of(member));
                    take(ctx, member, Entry { text, chat: chat.clone(), participant }, from);
                }
            }
            Err(e) => {
                tracing::warn!(
                    "{} cannot open what {}:{} sent to {group_jid}: {e}",
                    member.phone,
                    from.phone,
                    from.device
                )
            }
        }
    }
}

/// Records `entry` in `recipient`'s inbox, once per message id, and has its phone confirm
/// delivery unless told not to.
fn take(ctx: &Ctx, recipient: &Account, entry: Entry, from: &DeviceAddr) {
    let shared = &ctx.shared;
    let id = entry.text.id.clone();
    if shared.inboxes.record(&recipient.phone, entry.clone()) {
        tracing::info!("{} received {id} from {}:{}", recipient.phone, from.phone, from.device);
        if shared.inboxes.auto_delivery(&recipient.phone) {
            receipts::send(&shared.hub, &entry, Receipt::Delivered);
        }
    } else {
        tracing::info!("{} already has {id}: not recorded again", recipient.phone);
    }
}

/// Opens every `<participants><to jid><enc>` addressed to a device the sim plays (each
/// must decrypt to keep its session in step with the client's); returns what each account
/// found, the first of its devices that opened one.
async fn open_all<'a>(ctx: &'a Ctx, from: &DeviceAddr, stanza: &Node) -> Vec<(&'a Account, wa::Message)> {
    let shared = &ctx.shared;
    let participants = stanza.get_optional_child("participants").map(children).unwrap_or_default();
    let mut found: Vec<(&Account, wa::Message)> = Vec::new();
    for to in participants.iter().filter(|p| p.tag == "to") {
        let (Some(jid), Some(enc)) = (node::jid_attr(to, "jid"), to.get_optional_child("enc")) else {
            continue;
        };
        let Some(account) = shared.world.account_by_jid(&jid).filter(|a| is_simulated(a, jid.device, &shared.hub))
        else {
            continue;
        };
        let opened = open(ctx, account, jid.device, from, enc).await;
        if opened.is_ok() {
            let kind = node::attr(enc, "type").unwrap_or_default();
            tracing::debug!("{}:{} opened a {kind} from {}:{}", account.phone, jid.device, from.phone, from.device);
        }
        match opened {
            Ok(opened) if !found.iter().any(|(a, _)| a.phone == account.phone) => found.push((account, opened)),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "{}:{} cannot open what {}:{} sent: {e}",
                account.phone,
                jid.device,
                from.phone,
                from.device
            ),
        }
    }
    found
}

async fn open(ctx: &Ctx, account: &Account, device: u16, from: &DeviceAddr, enc: &Node) -> anyhow::Result<wa::Message> {
    let device = ctx.shared.devices.get(account, device)?;
    let mut device = device.lock().await;
    Ok(signal::open(&mut device, from, enc).await?)
}

/// The text of a message, and the id and author of the message it quotes, if it is a text.
fn text_of(message: &wa::Message) -> Option<(String, Option<String>, Option<String>)> {
    if let Some(text) = &message.conversation {
        return Some((text.clone(), None, None));
    }
    let extended = message.extended_text_message.as_option()?;
    let context = extended.context_info.as_option();
    let (reply_to, author) = (context.and_then(|c| c.stanza_id.clone()), context.and_then(|c| c.participant.clone()));
    Some((extended.text.clone()?, reply_to, author))
}

/// What the server says to a message.
enum Answer {
    /// Taken at this time (unix seconds).
    Taken(u64),
    /// Refused with this error code.
    Refused(u16),
}

/// `<ack class="message" id from=<to> t/>`, or with `error` instead of `t`.
fn ack(stanza: &Node, id: &str, answer: Answer) -> Node {
    let mut ack = NodeBuilder::new("ack").attr("class", "message").attr("id", id);
    if let Some(to) = node::jid_attr(stanza, "to") {
        ack = ack.attr("from", to);
    }
    match answer {
        Answer::Taken(at) => ack.attr("t", at.to_string()),
        Answer::Refused(code) => ack.attr("error", code.to_string()),
    }
    .build()
}

#[cfg(test)]
mod tests {
    use wacore_binary::Jid;
    use waproto::buffa::MessageField;

    use super::*;

    #[test]
    fn texts_are_conversations_or_extended_texts_with_the_quoted_id_and_author() {
        let plain = wa::Message { conversation: Some("hi".into()), ..Default::default() };
        assert_eq!(text_of(&plain), Some(("hi".to_owned(), None, None)));
        let reply = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("yes".into()),
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some("Q1".into()),
                    participant: Some("15550002222@s.whatsapp.net".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let quoted = (Some("Q1".to_owned()), Some("15550002222@s.whatsapp.net".to_owned()));
        assert_eq!(text_of(&reply), Some(("yes".to_owned(), quoted.0, quoted.1)));
        assert_eq!(text_of(&wa::Message::default()), None);
    }

    #[test]
    fn the_ack_names_the_recipient_and_either_the_time_or_the_error() {
        let message = NodeBuilder::new("message").attr("to", Jid::pn("15550002222")).attr("id", "M1").build();
        let taken = ack(&message, "M1", Answer::Taken(1_700_000_000));
        assert_eq!(node::attr(&taken, "from").as_deref(), Some("15550002222@s.whatsapp.net"));
        assert_eq!(node::attr(&taken, "t").as_deref(), Some("1700000000"));
        assert_eq!(node::attr(&taken, "error"), None);
        let refused = ack(&message, "M1", Answer::Refused(463));
        assert_eq!(node::attr(&refused, "error").as_deref(), Some("463"));
        assert_eq!(node::attr(&refused, "t"), None);
    }
}

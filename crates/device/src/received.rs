//! Messages WhatsApp delivers to a device, committed as `message.received` events before
//! WhatsApp is told they arrived.
//!
//! [`Received`] is the session's inbound durability hook (`whatsapp-rust`'s
//! `InboundDurabilityHook`): the client defers its acknowledgement of a batch until the hook
//! returns, so a batch the [`Mailbox`] did not commit is delivered again by WhatsApp — after a
//! crash too, from the client's own buffer. A batch delivered again is recognised by each
//! message's chat, sender and id, and not recorded twice.
//!
//! Two kinds of message bypass the hook, by whatsapp-rust's design: messages the phone sends
//! again because this device could not decrypt them (peer data operations) and newsletter
//! posts. WhatsApp has been told they arrived before the session sees them, so the session
//! commits them when it does ([`Received::commit`]); a crash in between loses them (at most
//! once, as for any client of WhatsApp), which the hook's messages never are.
//!
//! A protocol message becomes an event only when a user did something with it: a message
//! deleted for everyone (`revoke`), edited (`edit`), or the chat's disappearing-messages timer
//! set (`disappearing_timer`); the client's own plumbing (app-state key shares, history-sync
//! notices …) is committed as nothing, and acknowledged all the same.
//!
//! Senders and user chats carry both their LID and their phone JID whenever WhatsApp gave the
//! mapping (in the message itself, or earlier, as the client's LID map has it); otherwise the
//! missing one is `null`, never a guess.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use waedge_store::events::{GROUP_UPDATED, MESSAGE_RECEIVED, NewEvent};
use whatsapp_rust::types::events::{GroupUpdate, InboundMessage};
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::wacore::stanza::groups::GroupParticipantInfo;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, InboundDurabilityHook, Jid};

use super::Mailbox;
use super::sending::rfc3339;
use super::whatsapp::lid_mapping;

/// The inbound durability hook of one device's client.
pub(crate) struct Received {
    pub(crate) tenant: String,
    pub(crate) device: String,
    pub(crate) mailbox: Arc<dyn Mailbox>,
}

impl Received {
    /// Commits the events of `batch` to the mailbox.
    pub(crate) async fn commit(&self, client: &Client, batch: &[InboundMessage]) -> anyhow::Result<()> {
        let mut events = Vec::with_capacity(batch.len());
        for message in batch {
            if let Some(event) = event(&self.device, client, message).await {
                events.push(event);
            }
        }
        self.mailbox.commit(&self.tenant, events).await
    }
}

#[async_trait]
impl InboundDurabilityHook for Received {
    async fn on_messages(&self, client: Arc<Client>, batch: &[InboundMessage]) -> anyhow::Result<()> {
        self.commit(&client, batch).await
    }
}

/// The `message.received` event of `message`, unless it is the client's plumbing.
async fn event(device: &str, client: &Client, message: &InboundMessage) -> Option<NewEvent> {
    let content = content(&message.message)?;
    let (info, source) = (&message.info, &message.info.source);
    let sender = party(client, &source.sender, source.sender_alt.as_ref()).await;
    let chat = if source.chat.to_non_ad_string() == source.sender.to_non_ad_string() {
        sender.clone()
    } else {
        party(client, &source.chat, source.recipient_alt.as_ref()).await
    };
    Some(NewEvent {
        device: device.to_string(),
        kind: MESSAGE_RECEIVED.to_string(),
        chat: source.chat.to_non_ad_string(),
        dedup: Some(format!("{}|{}|{}", source.chat, source.sender, info.id)),
        at: rfc3339(info.timestamp),
        data: json!({
            "message_id": info.id,
            "chat": chat,
            "sender": sender,
            "from_me": source.is_from_me,
            "push_name": Some(info.push_name.as_str()).filter(|name| !name.is_empty()),
            "offline": info.is_offline,
            "message": content,
        }),
    })
}

impl Received {
    /// Commits the `group.updated` event of `update`, a change WhatsApp notified of (a new
    /// subject or description, members added, removed, promoted or demoted, a setting).
    /// Notifications pass no durability hook: WhatsApp was told this one arrived already.
    pub(crate) async fn commit_group_update(&self, client: &Client, update: &GroupUpdate) -> anyhow::Result<()> {
        use whatsapp_rust::wacore::stanza::groups::GroupNotificationAction as Action;
        let members = async |participants: &[GroupParticipantInfo]| -> Vec<Value> {
            let mut members = Vec::with_capacity(participants.len());
            for member in participants {
                members.push(party(client, &member.jid, member.phone_number.as_ref().or(member.lid.as_ref())).await);
            }
            members
        };
        let action = match &update.action {
            Action::Subject { subject, .. } => json!({ "kind": "subject", "subject": subject }),
            Action::Description { description, .. } => json!({ "kind": "description", "description": description }),
            Action::Add { participants, .. } => json!({ "kind": "add", "participants": members(participants).await }),
            Action::Remove { participants, .. } => {
                json!({ "kind": "remove", "participants": members(participants).await })
            }
            Action::Promote { participants } => {
                json!({ "kind": "promote", "participants": members(participants).await })
            }
            Action::Demote { participants } => json!({ "kind": "demote", "participants": members(participants).await }),
            other => json!({ "kind": "other", "name": other.tag_name() }),
        };
        let by = match &update.participant {
            Some(by) => party(client, by, update.participant_pn.as_ref()).await,
            None => Value::Null,
        };
        let chat = update.group_jid.to_non_ad_string();
        // A notification without an id cannot come twice (WhatsApp is acknowledged by its id),
        // and one without a time gets the gateway's.
        let dedup = update.notification_id.as_ref().map(|id| format!("{chat}|gp2|{id}|{}", update.action_index));
        let at = Some(update.timestamp).filter(|at| at.timestamp() > 0).unwrap_or_else(whatsapp_rust::chrono::Utc::now);
        let event = NewEvent {
            device: self.device.clone(),
            kind: GROUP_UPDATED.to_string(),
            chat: chat.clone(),
            dedup,
            at: rfc3339(at),
            data: json!({ "group": party(client, &update.group_jid, None).await, "by": by, "action": action }),
        };
        self.mailbox.commit(&self.tenant, vec![event]).await
    }
}

/// A user, group or other chat: its JID without a device part, what kind of chat it is and,
/// for a user, its LID and phone JID as far as WhatsApp said them.
async fn party(client: &Client, jid: &Jid, alt: Option<&Jid>) -> Value {
    let id = jid.to_non_ad_string();
    let kind = kind_of(&id);
    if kind != "user" {
        return json!({ "jid": id, "type": kind });
    }
    let mut known: Vec<String> = std::iter::once(jid).chain(alt).map(Jid::to_non_ad_string).collect();
    if alt.is_none()
        && let Ok(Some(entry)) = client.get_lid_pn_entry(jid).await
    {
        let mapping = lid_mapping(&entry);
        known.extend([mapping.lid, mapping.phone_jid]);
    }
    let find = |suffix: &str| known.iter().find(|j| j.ends_with(suffix)).cloned();
    json!({ "jid": id, "type": kind, "lid": find("@lid"), "phone_jid": find("@s.whatsapp.net") })
}

/// `user`, `group`, `broadcast` (a broadcast list or status), `newsletter` or `other`, by the
/// JID's server.
fn kind_of(jid: &str) -> &'static str {
    match jid.rsplit_once('@').map(|(_, server)| server) {
        Some("s.whatsapp.net" | "lid") => "user",
        Some("g.us") => "group",
        Some("broadcast") => "broadcast",
        Some("newsletter") => "newsletter",
        _ => "other",
    }
}

/// What a message holds: its kind, its text or caption, and the metadata of media, without
/// downloading anything. A kind this version does not describe is `other`, with the names of
/// the message's fields, so nothing arrives as an empty event. `None` for the client's
/// plumbing (see the module's documentation).
fn content(message: &wa::Message) -> Option<Value> {
    let base = message.get_base_message();
    if let Some(protocol) = base.protocol_message.as_option() {
        return protocol_content(protocol);
    }
    let reply_to = reply_to(base);
    let mut content = if let Some(text) = base.text_content() {
        json!({ "kind": "text", "text": text })
    } else if let Some(image) = base.image_message.as_option() {
        json!({ "kind": "image", "mimetype": image.mimetype, "size": image.file_length,
                "width": image.width, "height": image.height })
    } else if let Some(video) = base.video_message.as_option() {
        json!({ "kind": "video", "mimetype": video.mimetype, "size": video.file_length, "seconds": video.seconds })
    } else if let Some(audio) = base.audio_message.as_option() {
        let kind = if audio.ptt == Some(true) { "voice" } else { "audio" };
        json!({ "kind": kind, "mimetype": audio.mimetype, "size": audio.file_length, "seconds": audio.seconds })
    } else if let Some(document) = base.document_message.as_option() {
        json!({ "kind": "document", "mimetype": document.mimetype, "size": document.file_length,
                "file_name": document.file_name })
    } else if let Some(sticker) = base.sticker_message.as_option() {
        json!({ "kind": "sticker", "mimetype": sticker.mimetype, "size": sticker.file_length })
    } else if let Some(location) = base.location_message.as_option() {
        json!({ "kind": "location", "latitude": location.degrees_latitude, "longitude": location.degrees_longitude,
                "name": location.name, "address": location.address })
    } else if let Some(contact) = base.contact_message.as_option() {
        json!({ "kind": "contact", "display_name": contact.display_name, "vcard": contact.vcard })
    } else if let Some(reaction) = base.reaction_message.as_option() {
        let target = reaction.key.as_option().and_then(|key| key.id.clone());
        json!({ "kind": "reaction", "emoji": reaction.text, "target_id": target })
    } else {
        json!({ "kind": "other", "fields": fields(base) })
    };
    if let Some(caption) = base.get_caption() {
        content["caption"] = json!(caption);
    }
    content["reply_to"] = json!(reply_to);
    Some(content)
}

/// What a protocol message did, when a user did something with it: deleted a message for
/// everyone, edited one, or set the disappearing-messages timer.
fn protocol_content(message: &wa::message::ProtocolMessage) -> Option<Value> {
    use wa::message::protocol_message::Type;
    let target = message.key.as_option().and_then(|key| key.id.clone());
    let mut content = match message.r#type? {
        Type::REVOKE => json!({ "kind": "revoke", "target_id": target }),
        Type::MESSAGE_EDIT => {
            let text = message.edited_message.as_option().and_then(|edited| edited.text_content());
            json!({ "kind": "edit", "target_id": target, "text": text })
        }
        Type::EPHEMERAL_SETTING => json!({ "kind": "disappearing_timer", "seconds": message.ephemeral_expiration }),
        _ => return None,
    };
    content["reply_to"] = Value::Null;
    Some(content)
}

/// The id of the message `message` replies to, if it is a reply.
fn reply_to(message: &wa::Message) -> Option<String> {
    let context = [
        message.extended_text_message.as_option().and_then(|m| m.context_info.as_option()),
        message.image_message.as_option().and_then(|m| m.context_info.as_option()),
        message.video_message.as_option().and_then(|m| m.context_info.as_option()),
        message.audio_message.as_option().and_then(|m| m.context_info.as_option()),
        message.document_message.as_option().and_then(|m| m.context_info.as_option()),
        message.sticker_message.as_option().and_then(|m| m.context_info.as_option()),
    ];
    context.into_iter().flatten().find_map(|context| context.stanza_id.clone())
}

/// The names of the fields a message has set, e.g. `["poll_creation_message"]`.
fn fields(message: &wa::Message) -> Vec<String> {
    match serde_json::to_value(message) {
        Ok(Value::Object(fields)) => fields.into_iter().filter(|(_, v)| !v.is_null()).map(|(name, _)| name).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_its_text_and_a_reply_names_what_it_replies_to() {
        let plain = wa::Message { conversation: Some("hi".into()), ..Default::default() };
        assert_eq!(content(&plain), Some(json!({ "kind": "text", "text": "hi", "reply_to": null })));
        let context = wa::ContextInfo { stanza_id: Some("3EB0A".into()), ..Default::default() };
        let reply = wa::Message {
            extended_text_message: whatsapp_rust::buffa::MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("yes".into()),
                context_info: whatsapp_rust::buffa::MessageField::some(context),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(content(&reply), Some(json!({ "kind": "text", "text": "yes", "reply_to": "3EB0A" })));
    }

    #[test]
    fn media_is_described_without_being_downloaded() {
        let image = wa::Message {
            image_message: whatsapp_rust::buffa::MessageField::some(wa::message::ImageMessage {
                mimetype: Some("image/jpeg".into()),
                caption: Some("the shop".into()),
                file_length: Some(52_000),
                width: Some(640),
                height: Some(480),
                url: Some("https://mmg.whatsapp.net/secret".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            content(&image),
            Some(json!({ "kind": "image", "mimetype": "image/jpeg", "size": 52_000, "width": 640, "height": 480,
                         "caption": "the shop", "reply_to": null }))
        );
    }

    #[test]
    fn a_kind_not_described_names_its_fields() {
        let poll = wa::Message {
            poll_creation_message: whatsapp_rust::buffa::MessageField::some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            content(&poll),
            Some(json!({ "kind": "other", "fields": ["poll_creation_message"], "reply_to": null }))
        );
    }

    fn protocol(kind: wa::message::protocol_message::Type) -> wa::Message {
        let key = wa::MessageKey { id: Some("3EB0A".into()), ..Default::default() };
        let protocol = wa::message::ProtocolMessage {
            key: whatsapp_rust::buffa::MessageField::some(key),
            r#type: Some(kind),
            ..Default::default()
        };
        wa::Message { protocol_message: whatsapp_rust::buffa::MessageField::some(protocol), ..Default::default() }
    }

    #[test]
    fn a_deletion_for_everyone_is_an_event_and_the_clients_plumbing_is_none() {
        use wa::message::protocol_message::Type;
        assert_eq!(
            content(&protocol(Type::REVOKE)),
            Some(json!({ "kind": "revoke", "target_id": "3EB0A", "reply_to": null }))
        );
        for plumbing in
            [Type::APP_STATE_SYNC_KEY_SHARE, Type::HISTORY_SYNC_NOTIFICATION, Type::LID_MIGRATION_MAPPING_SYNC]
        {
            assert_eq!(content(&protocol(plumbing)), None, "{plumbing:?}");
        }
    }

    #[test]
    fn chats_are_told_apart_by_their_server() {
        let kinds: Vec<&str> = ["1@s.whatsapp.net", "2@lid", "3-4@g.us", "status@broadcast", "5@newsletter", "x"]
            .into_iter()
            .map(kind_of)
            .collect();
        assert_eq!(kinds, ["user", "user", "group", "broadcast", "newsletter", "other"]);
    }
}

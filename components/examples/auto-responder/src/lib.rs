//! A keyword auto-responder: an event handler (the `event-handler` world of
//! `wit/gateway.wit`) that answers a text received by any of the tenant's devices when one of
//! its words has a reply in the tenant's settings.
//!
//! `waedge tenant set TENANT auto-reply.hours "We are open 9–17, Monday to Friday."` makes a
//! message containing the word `hours` (any case) answered with that text, as a reply to it.
//! Only the first word with a reply is answered; messages the device sent itself, group
//! messages and everything that is not a text are left alone.
//!
//! The reply is sent with the event's id as its idempotency key, so an event handed over twice
//! (delivery is at least once) is answered once.

use serde_json::Value;

wit_bindgen::generate!({
    world: "event-handler",
    path: "../../../wit",
    generate_all,
});

use exports::waedge::gateway::events::{Event, Guest};
use waedge::gateway::types::{Error, OutgoingText};
use waedge::gateway::whatsapp;
use wasi::config::store;

/// The prefix of the settings that hold the replies: `auto-reply.KEYWORD`.
const SETTING_PREFIX: &str = "auto-reply.";
/// How many words of a message are looked up, at most.
const MAX_WORDS: usize = 50;

struct AutoResponder;

impl Guest for AutoResponder {
    fn handle(event: Event) -> Result<(), String> {
        if event.type_ != "message.received" {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data).map_err(|e| format!("the event's data: {e}"))?;
        let Some(incoming) = Incoming::of(&data) else {
            return Ok(());
        };
        let Some(reply) = reply_for(incoming.text)? else {
            return Ok(());
        };
        let message = OutgoingText {
            to: incoming.sender.to_string(),
            text: reply,
            reply_to: Some(incoming.message_id.to_string()),
            idempotency_key: Some(format!("auto-reply:{}", event.id)),
        };
        let device = whatsapp::open_device(&event.device).map_err(describe)?;
        // A rate-limited or disconnected device is worth another attempt later: the event
        // comes back, and the idempotency key keeps it to one reply.
        device.send_text(&message).map(drop).map_err(describe)
    }
}

/// A text someone else sent the device in a one-to-one chat.
struct Incoming<'a> {
    message_id: &'a str,
    sender: &'a str,
    text: &'a str,
}

impl<'a> Incoming<'a> {
    fn of(data: &'a Value) -> Option<Self> {
        let from_me = data["from_me"].as_bool().unwrap_or(true);
        let one_to_one = data["chat"]["type"] == "user";
        if from_me || !one_to_one || data["message"]["kind"] != "text" {
            return None;
        }
        Some(Incoming {
            message_id: data["message_id"].as_str()?,
            sender: data["sender"]["jid"].as_str()?,
            text: data["message"]["text"].as_str()?,
        })
    }
}

/// The reply of the first word of `text` that has one.
fn reply_for(text: &str) -> Result<Option<String>, String> {
    let words = text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).take(MAX_WORDS);
    for word in words {
        let key = format!("{SETTING_PREFIX}{}", word.to_lowercase());
        if let Some(reply) = store::get(&key).map_err(|e| format!("reading setting {key}: {e:?}"))? {
            return Ok(Some(reply));
        }
    }
    Ok(None)
}

/// An error of the `whatsapp` interface, for the delivery log.
fn describe(error: Error) -> String {
    format!("{error:?}")
}

export!(AutoResponder);

//! A keyword auto-responder: an event handler (`waedge_sdk::EventHandler`, the
//! `event-handler` world of `wit/gateway.wit`) that answers a text received by any of the
//! tenant's devices when one of its words has a reply in the tenant's settings.
//!
//! The setting `auto-reply.hours` = `We are open 9–17, Monday to Friday.` makes a message
//! containing the word `hours` (any case) answered with that text, as a reply to it. Only the
//! first word with a reply is answered; messages the device sent itself, group messages and
//! everything that is not a text are left alone.
//!
//! The reply's idempotency key is derived from the event's id, so an event handed over twice
//! (delivery is at least once) is answered once.

use waedge_sdk::{Event, EventHandler, ReceivedText, config, whatsapp};

/// The prefix of the settings that hold the replies: `auto-reply.KEYWORD`.
const SETTING_PREFIX: &str = "auto-reply.";
/// How many words of a message are looked up, at most.
const MAX_WORDS: usize = 50;

struct AutoResponder;

impl EventHandler for AutoResponder {
    fn handle(event: Event) -> Result<(), String> {
        let Some(received) = ReceivedText::of(&event) else {
            return Ok(());
        };
        let Some(answer) = reply_for(&received.text) else {
            return Ok(());
        };
        // A rate-limited or disconnected device is worth another attempt later: the event
        // comes back, and the idempotency key keeps it to one reply.
        let device = whatsapp::open_device(&event.device).map_err(|e| format!("{e:?}"))?;
        device.send_text(&received.reply(answer, &event)).map(drop).map_err(|e| format!("{e:?}"))
    }
}

/// The reply of the first word of `text` that has one.
fn reply_for(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(MAX_WORDS)
        .find_map(|word| config::get(&format!("{SETTING_PREFIX}{}", word.to_lowercase())))
}

waedge_sdk::export_event_handler!(AutoResponder);

//! Event handlers: components that react to the events of the tenant's devices.
//!
//! A tenant subscribes an event handler as it subscribes a webhook, naming the component
//! instead of a URL (`"url": "component:NAME"`); the host then calls the handler with each
//! event the subscription takes, one at a time and in each chat's order, at least once (the
//! event's [`id`](Event::id) is the same on every attempt).
//!
//! ```no_run
//! use waedge_sdk::{Event, EventHandler, ReceivedText, whatsapp};
//!
//! struct Echo;
//!
//! impl EventHandler for Echo {
//!     fn handle(event: Event) -> Result<(), String> {
//!         let Some(text) = ReceivedText::of(&event) else { return Ok(()) };
//!         let reply = text.reply(format!("you said: {}", text.text), &event);
//!         let device = whatsapp::open_device(&event.device).map_err(|e| format!("{e:?}"))?;
//!         device.send_text(&reply).map(drop).map_err(|e| format!("{e:?}"))
//!     }
//! }
//!
//! waedge_sdk::export_event_handler!(Echo);
//! ```

use serde_json::Value;

use crate::bindings::waedge::gateway::types::OutgoingText;
pub use crate::events_export::exports::waedge::gateway::events::Event;

/// A waedge event handler: one call per event.
///
/// `handle` takes no `self`: the host reuses an instance for up to `requests_per_instance`
/// events of one tenant, so what lives between events lives in statics.
pub trait EventHandler {
    /// Handles one event: `Ok` when done with it (it acted, or chose to ignore it); `Err` with
    /// a reason to be handed it again later (with backoff; after the last attempt it becomes
    /// a dead letter the operator can replay).
    fn handle(event: Event) -> Result<(), String>;
}

/// A text someone else sent one of the tenant's devices in a one-to-one chat: what an
/// auto-responder or a forwarder acts on, read from a `message.received` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedText {
    /// The WhatsApp message id.
    pub message_id: String,
    /// The sender's JID as WhatsApp gave it (a phone JID or a LID).
    pub sender: String,
    /// The sender's phone JID, when WhatsApp gave it.
    pub sender_phone: Option<String>,
    /// The sender's push name, when there is one.
    pub push_name: Option<String>,
    /// The text.
    pub text: String,
}

impl ReceivedText {
    /// The text `event` carries, if it is a `message.received` event of a text in a
    /// one-to-one chat that the device did not send itself.
    pub fn of(event: &Event) -> Option<ReceivedText> {
        if event.type_ != "message.received" {
            return None;
        }
        let data: Value = serde_json::from_str(&event.data).ok()?;
        let from_me = data["from_me"].as_bool().unwrap_or(true);
        if from_me || data["chat"]["type"] != "user" || data["message"]["kind"] != "text" {
            return None;
        }
        let text = |value: &Value| value.as_str().map(str::to_string);
        Some(ReceivedText {
            message_id: text(&data["message_id"])?,
            sender: text(&data["sender"]["jid"])?,
            sender_phone: text(&data["sender"]["phone_jid"]),
            push_name: text(&data["push_name"]),
            text: text(&data["message"]["text"])?,
        })
    }

    /// A reply to this text, sent with an idempotency key derived from `event`'s id: an event
    /// handed over again sends nothing twice.
    pub fn reply(&self, text: String, event: &Event) -> OutgoingText {
        OutgoingText {
            to: self.sender.clone(),
            text,
            reply_to: Some(self.message_id.clone()),
            idempotency_key: Some(format!("reply:{}", event.id)),
        }
    }
}

/// Exports an [`EventHandler`] as the component's `waedge:gateway/events`.
#[macro_export]
macro_rules! export_event_handler {
    ($handler:ty) => {
        struct __WaedgeEventHandler;

        impl $crate::events_export::exports::waedge::gateway::events::Guest for __WaedgeEventHandler {
            fn handle(event: $crate::Event) -> ::core::result::Result<(), ::std::string::String> {
                <$handler as $crate::EventHandler>::handle(event)
            }
        }

        $crate::events_export::export!(__WaedgeEventHandler with_types_in $crate::events_export);
    };
}

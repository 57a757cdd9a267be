//! A CRM forwarder: an event handler that turns each text a device receives into a contact
//! activity in the shape a CRM's API takes, and POSTs it there — the glue a help desk would
//! otherwise run as a webhook receiver of its own.
//!
//! Settings: `crm.url` (where to POST; its host must be on the tenant's `outbound_hosts`) and,
//! optionally, `crm.token` (sent as a bearer token). Each activity carries the event's id as
//! its `Idempotency-Key`, so a CRM that honours it records an event handed over twice once.
//! A CRM that is down, slow or answers 5xx, 408 or 429 gets the event again later (the
//! handler answers `err`); one that refuses it otherwise (a 4xx) would refuse it again, so the
//! event is logged and dropped.

use serde_json::json;
use waedge_sdk::{Event, EventHandler, ReceivedText, config, logging, outbound};

struct CrmForwarder;

impl EventHandler for CrmForwarder {
    fn handle(event: Event) -> Result<(), String> {
        let Some(received) = ReceivedText::of(&event) else {
            return Ok(());
        };
        let url = config::get("crm.url").ok_or("the setting `crm.url` is not set: set it to the CRM's endpoint")?;
        let activity = json!({
            "type": "whatsapp_message",
            "contact": {
                "whatsapp": received.sender,
                "phone": received.sender_phone.as_deref().map(|jid| jid.trim_end_matches("@s.whatsapp.net")),
                "name": received.push_name,
            },
            "body": received.text,
            "channel": event.device,
            "occurred_at": event.at,
            "external_id": received.message_id,
        });
        let mut request = outbound::Request::post(&url).header("idempotency-key", &event.id);
        if let Some(token) = config::get("crm.token") {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let answer = request.json(&activity).and_then(outbound::Request::send).map_err(|e| format!("{url}: {e}"))?;
        match answer.status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(format!("{url} answered {}", answer.status)),
            refused => {
                let line = format!("{url} refused event {} with {refused}: dropped", event.id);
                logging::log(logging::Level::Warn, &line);
                Ok(())
            }
        }
    }
}

waedge_sdk::export_event_handler!(CrmForwarder);

//! `POST /devices/{device_id}/messages` sends a text; `GET /devices/{device_id}/messages/{id}`
//! shows how far a sent message got.
//!
//! A send answers `202` with the message once WhatsApp has it (`pending`, or further if the
//! server already acknowledged it). An `Idempotency-Key` header makes a retry safe: the same
//! key with the same body answers `200` with the message as it is now and sends nothing
//! (`Idempotent-Replayed: true`); the same key with another body is `422
//! IDEMPOTENCY_KEY_REUSED`.

use serde::{Deserialize, Serialize};
use waedge_jid::Jid;
use waedge_sdk::{Device, ErrorClass, MessageStatus, OutgoingText, Request, Response, SendOutcome, SentMessage};

/// The longest text, in bytes (the host's limit).
const MAX_TEXT_BYTES: usize = 65_536;

/// The longest `Idempotency-Key`, in characters (the host's limit).
const MAX_KEY: usize = 255;

/// The body of a send.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// A phone number, phone JID, LID or group JID.
    to: String,
    text: String,
    #[serde(default)]
    reply_to: Option<String>,
}

/// A sent message as the API shows it.
#[derive(Serialize)]
pub struct Message {
    id: String,
    to: String,
    status: &'static str,
    error_code: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<SentMessage> for Message {
    fn from(sent: SentMessage) -> Self {
        let status = match sent.status {
            MessageStatus::Pending => "pending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        };
        Message {
            id: sent.id,
            to: sent.to,
            status,
            error_code: sent.error_code,
            created_at: sent.created_at,
            updated_at: sent.updated_at,
        }
    }
}

/// `POST /devices/{device_id}/messages`.
pub fn send(device: &Device, request: &Request) -> Result<Response, ErrorClass> {
    let body: SendBody = serde_json::from_slice(request.body()).map_err(|e| {
        ErrorClass::validation(format!("the body must be JSON {{\"to\": …, \"text\": …, \"reply_to\": …}}: {e}"))
    })?;
    let to = Jid::normalize(&body.to).map_err(|e| ErrorClass::validation(format!("`to`: {e}")))?.without_device();
    if body.text.is_empty() || body.text.len() > MAX_TEXT_BYTES {
        return Err(ErrorClass::validation(format!("`text` must have 1 to {MAX_TEXT_BYTES} bytes")));
    }
    if body.reply_to.as_ref().is_some_and(|id| id.is_empty() || id.len() > 128) {
        return Err(ErrorClass::validation("`reply_to` must be a message id of 1 to 128 characters"));
    }
    // A key that is present but no printable ASCII is refused, never ignored: ignoring it would
    // let a retry send the message twice.
    let key = match request.header_bytes("idempotency-key") {
        None => None,
        Some(key)
            if !key.is_empty() && key.len() <= MAX_KEY && key.iter().all(|b| b.is_ascii_graphic() || *b == b' ') =>
        {
            Some(String::from_utf8_lossy(key).into_owned())
        }
        Some(_) => {
            return Err(ErrorClass::validation(format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY} printable ASCII characters"
            )));
        }
    };
    let message = OutgoingText { to: to.to_string(), text: body.text, reply_to: body.reply_to, idempotency_key: key };
    Ok(match device.send_text(&message)? {
        SendOutcome::Sent(sent) => answer(202, sent),
        SendOutcome::Repeated(sent) => answer(200, sent).with_header("idempotent-replayed", "true"),
        SendOutcome::KeyReused => {
            let message = "this Idempotency-Key was used for a different message; use a new key for a new message";
            return Err(ErrorClass::new(422, "IDEMPOTENCY_KEY_REUSED", message));
        }
    })
}

/// `GET /devices/{device_id}/messages/{id}`.
pub fn get(device: &Device, id: &str) -> Result<Message, ErrorClass> {
    let sent = device.get_sent_message(id)?;
    let message = format!("this device sent no message with id `{id}`");
    sent.map(Message::from).ok_or_else(|| ErrorClass::new(404, "MESSAGE_NOT_FOUND", message))
}

fn answer(status: u16, sent: SentMessage) -> Response {
    Response::json(status, &serde_json::json!({ "data": Message::from(sent) }))
}

//! LID verifications: a one-time code sent to a phone number, so that the LID that answers with
//! it is linked to the number.
//!
//! The code is made and recorded (as a salted hash) by the [`Mailbox`] before the message that
//! carries it is handed to the client, so an answer can never arrive before its verification;
//! answers are matched where received messages are committed (`waedge_store::links`). The code
//! appears in no record of the message: the sent message's fingerprint names the verification
//! instead of the text.

use std::ops::RangeInclusive;
use std::sync::Arc;

use waedge_contract::types::{Error, LidVerification};
use waedge_jid::Jid;
use waedge_store::links::{NewVerification, Started};
use waedge_store::sent::NewSend;
use whatsapp_rust::Client;
use whatsapp_rust::wacore::proto_helpers::MessageBuilderExt;
use whatsapp_rust::waproto::whatsapp as wa;

use super::Mailbox;
use super::sending::{self, InFlight, upstream};
use super::whatsapp::to_wa;

/// Where the code goes in the text of a verification.
pub const PLACEHOLDER: &str = "{code}";

/// The longest text of a verification, in bytes, before the code is put in.
pub const MAX_TEXT_BYTES: usize = 4_096;

/// How long a code may be good for, in seconds.
pub const TTL_SECONDS: RangeInclusive<u32> = 60..=3_600;

/// How long a code is good for when the request does not say.
pub const DEFAULT_TTL_SECONDS: u32 = 600;

/// A verification to start: a text with [`PLACEHOLDER`] for the code, to a phone number.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationRequest {
    /// The phone JID the code goes to.
    pub phone_jid: Jid,
    /// The text, with [`PLACEHOLDER`] once.
    pub text: String,
    /// How long the code is good for.
    pub ttl_seconds: u32,
}

impl VerificationRequest {
    /// Checks what the WIT contract promises: a phone JID without a device part, a text of at
    /// most [`MAX_TEXT_BYTES`] with [`PLACEHOLDER`] exactly once, a time to live within
    /// [`TTL_SECONDS`].
    pub fn check(&self) -> Result<(), String> {
        if self.text.len() > MAX_TEXT_BYTES {
            return Err(format!("the text has {} bytes; at most {MAX_TEXT_BYTES} are allowed", self.text.len()));
        }
        if self.text.matches(PLACEHOLDER).count() != 1 {
            return Err(format!("the text must hold {PLACEHOLDER} exactly once, where the code goes"));
        }
        if !TTL_SECONDS.contains(&self.ttl_seconds) {
            let (min, max) = (TTL_SECONDS.start(), TTL_SECONDS.end());
            return Err(format!("the time to live must be {min} to {max} seconds, not {}", self.ttl_seconds));
        }
        Ok(())
    }
}

/// Starts `request` (checked already, see [`VerificationRequest::check`]) on `device` of
/// `tenant`: records it in `mailbox` with a new code, then sends the text with the code in it
/// through `client`. A limit of the mailbox is `rate-limited`; a send that fails forgets the
/// verification again.
pub(crate) async fn start(
    client: &Arc<Client>,
    mailbox: &dyn Mailbox,
    in_flight: &InFlight,
    (tenant, device): (&str, &str),
    request: &VerificationRequest,
) -> Result<LidVerification, Error> {
    let to = to_wa(&request.phone_jid)?;
    let new = NewVerification {
        device: device.to_string(),
        phone_jid: request.phone_jid.to_string(),
        message_id: client.generate_message_id(),
        ttl_seconds: request.ttl_seconds,
    };
    let message_id = new.message_id.clone();
    let (verification, code) = match mailbox.start_lid_verification(tenant, new).await.map_err(upstream)? {
        Started::Started { verification, code } => (verification, code),
        Started::TooMany { retry_after, reason } => {
            tracing::info!(tenant, device, "a LID verification must wait {retry_after} s: {reason}");
            return Err(Error::RateLimited(retry_after));
        }
    };
    let send = NewSend {
        device: device.to_string(),
        id: message_id,
        to: verification.phone_jid.clone(),
        request: format!("lid-verification {}", verification.id),
    };
    let content = wa::Message::text(request.text.replacen(PLACEHOLDER, &code, 1));
    if let Err(e) = sending::hand_over(client, mailbox, in_flight, tenant, send, (to, content)).await {
        if let Err(forgetting) = mailbox.forget_lid_verification(tenant, device, &verification.id).await {
            // It stays pending, unanswerable (nobody has its code), until it expires.
            tracing::warn!(tenant, device, "an unsent verification could not be forgotten: {forgetting:#}");
        }
        return Err(e);
    }
    Ok(verification)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str, ttl_seconds: u32) -> VerificationRequest {
        VerificationRequest {
            phone_jid: "6281234567890@s.whatsapp.net".parse().unwrap(),
            text: text.into(),
            ttl_seconds,
        }
    }

    #[test]
    fn a_request_holds_the_placeholder_once_and_a_time_to_live_within_bounds() {
        assert_eq!(request("Your code: {code}", DEFAULT_TTL_SECONDS).check(), Ok(()));
        for text in ["no code here", "{code} and {code}"] {
            assert!(request(text, 600).check().unwrap_err().contains("exactly once"), "{text}");
        }
        let long = format!("{{code}}{}", "a".repeat(MAX_TEXT_BYTES));
        assert!(request(&long, 600).check().unwrap_err().contains("at most 4096"));
        for ttl in [59, 3_601] {
            assert!(request("{code}", ttl).check().unwrap_err().contains("60 to 3600 seconds"), "{ttl}");
        }
    }
}

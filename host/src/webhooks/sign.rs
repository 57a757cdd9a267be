//! Webhook signatures, as the [Standard Webhooks](https://www.standardwebhooks.com/)
//! specification has them, so receivers can check them with its libraries or in ten lines:
//!
//! - `webhook-id`: the event's id (the same on every attempt: deduplicate on it);
//! - `webhook-timestamp`: when this attempt was signed, in seconds since the Unix epoch
//!   (refuse one too far from your clock, and a replayed request is refused);
//! - `webhook-signature`: `v1,` and the Base64 of HMAC-SHA256 over `ID.TIMESTAMP.BODY`, keyed
//!   with the webhook's secret: `whsec_` and the Base64 of 32 random bytes, the key being
//!   those bytes.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header with the event's id.
pub const ID_HEADER: &str = "webhook-id";
/// The header with the time of signing.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// What a secret starts with.
const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the Base64 of 32 bytes from the system's secure random source.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The HMAC key of `secret`: the bytes its Base64 part encodes, or, for a secret not made by
/// [`new_secret`], its own bytes.
fn key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The `webhook-signature` value for `body` of event `id` signed at `timestamp` with `secret`.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_hmac_sha256_over_id_timestamp_and_body() {
        // Computed independently: printf 'msg_1.1700000000.{"a":1}' | openssl dgst -sha256 -hmac
        // 'whsec-test-secret-0001' -binary | base64
        let signed = signature("whsec-test-secret-0001", "msg_1", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(signed, "v1,/VxLmXhizFt/BYpBzVeO/GFPfLHGO9cJnWFaT8yussI=");
    }

    #[test]
    fn a_new_secret_is_32_random_bytes_and_signs_with_them() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_") && secret.len() == 6 + 44, "{secret}");
        assert_ne!(new_secret(), secret);
        // The key is the decoded bytes: `whsec_` + Base64 of "0123456789abcdef0123456789abcdef".
        let secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        assert_eq!(key(secret), b"0123456789abcdef0123456789abcdef");
        assert_eq!(
            signature(secret, "msg_1", 1, b"{}"),
            signature("0123456789abcdef0123456789abcdef", "msg_1", 1, b"{}")
        );
    }

    #[test]
    fn any_change_changes_the_signature() {
        let base = signature("secret-secret-secret", "id", 1, b"body");
        for other in [
            signature("secret-secret-secreT", "id", 1, b"body"),
            signature("secret-secret-secret", "iD", 1, b"body"),
            signature("secret-secret-secret", "id", 2, b"body"),
            signature("secret-secret-secret", "id", 1, b"Body"),
        ] {
            assert_ne!(other, base);
        }
    }
}

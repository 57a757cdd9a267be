//! API tokens: stored only as SHA-256 digests, compared in constant time.
//!
//! Tokens are UUID v4 strings (122 random bits), so a plain SHA-256 digest is enough to make a
//! stolen configuration or database useless for calling the API; no slow password hash is
//! needed. A token never appears in logs or error messages: [`TokenHash`] is what code passes
//! around.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::{Column, Value};

/// The SHA-256 digest of an API token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token as presented by a client.
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Parses a digest written as 64 hexadecimal characters (as in the configuration file).
    pub fn from_hex(hex: &str) -> Result<Self, String> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex.trim(), &mut digest)
            .map_err(|e| format!("not a SHA-256 digest in hex (64 characters): {e}"))?;
        Ok(TokenHash(digest))
    }

    /// The digest's bytes, to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Compares two digests without leaking where they differ.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A digest as stored: 32 bytes.
impl Column<'_> for TokenHash {
    fn from_value(value: Value<'_>) -> Result<Self, &'static str> {
        const EXPECTED: &str = "a SHA-256 digest (32 bytes)";
        match value {
            Value::Blob(bytes) => bytes.try_into().map(TokenHash).map_err(|_| EXPECTED),
            _ => Err(EXPECTED),
        }
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest is not secret, but a short prefix is all a log reader needs.
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_round_trips_hex() {
        let hash = TokenHash::of("0b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a90");
        assert_eq!(TokenHash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert!(hash.ct_eq(&TokenHash::of("0b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a90")));
        assert!(!hash.ct_eq(&TokenHash::of("0b5f1c1e-3a5e-4d0b-9c7a-2f1d8e6b4a91")));
        assert_eq!(TokenHash::of("abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn rejects_bad_hex_and_hides_digest() {
        assert!(TokenHash::from_hex("xyz").is_err());
        assert!(TokenHash::from_hex("ab").is_err());
        assert_eq!(format!("{:?}", TokenHash::of("abc")), "TokenHash(ba7816bf…)");
    }
}

//! Request signatures of the example `hmac-auth` plugin, as its clients compute them.

use sha2::{Digest, Sha256};

/// HMAC-SHA256 of `message` under `key` (at most 64 bytes), in hex (RFC 2104, with SHA-256's
/// 64-byte blocks).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::digest([pad(0x36), message.to_vec()].concat());
    hex::encode(Sha256::digest([pad(0x5c), inner.to_vec()].concat()))
}

/// The headers that sign `GET path` at `timestamp` (Unix seconds) with `secret`.
pub fn signed_get(path: &str, timestamp: u64, secret: &str) -> [(&'static str, String); 2] {
    let signature = hmac_sha256(secret.as_bytes(), format!("GET\n{path}\n{timestamp}").as_bytes());
    [("x-waedge-timestamp", timestamp.to_string()), ("x-waedge-signature", signature)]
}

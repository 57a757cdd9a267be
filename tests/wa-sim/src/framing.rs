//! Frame layer: the connection header and 3-byte length-prefixed frames.
//!
//! The client's first bytes are an optional edge-routing pre-intro
//! (`ED\0\1` + 3-byte length + routing data), then the `WA` header (4 bytes), then
//! frames. Every frame, in both directions, is a 3-byte big-endian length and a body.

use bytes::{Buf, BytesMut};

/// Bodies larger than this (16 MiB) are a protocol violation.
const MAX_FRAME: usize = 1 << 24;
const EDGE_ROUTING_MAGIC: &[u8] = b"ED\x00\x01";
const WA_MAGIC: &[u8] = b"WA";
const WA_HEADER_LEN: usize = 4;

/// A framing violation by the client.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection did not start with the `WA` header.
    #[error("connection does not start with the WA header")]
    BadHeader,
    /// A frame claimed more than 16 MiB.
    #[error("frame of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(usize),
}

/// Incremental decoder of the client's byte stream into frame bodies.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: BytesMut,
    header_done: bool,
}

impl FrameReader {
    /// A reader expecting the connection header first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the socket.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if !self.header_done && !self.strip_header()? {
            return Ok(None);
        }
        if self.buf.len() < 3 {
            return Ok(None);
        }
        let len = read_len3(&self.buf);
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 3 + len {
            return Ok(None);
        }
        self.buf.advance(3);
        Ok(Some(self.buf.split_to(len).to_vec()))
    }

    /// Removes the pre-intro and `WA` header; `false` while incomplete.
    fn strip_header(&mut self) -> Result<bool, FrameError> {
        let mut skip = 0;
        if self.buf.starts_with(EDGE_ROUTING_MAGIC) {
            if self.buf.len() < EDGE_ROUTING_MAGIC.len() + 3 {
                return Ok(false);
            }
            skip = EDGE_ROUTING_MAGIC.len() + 3 + read_len3(&self.buf[EDGE_ROUTING_MAGIC.len()..]);
        } else if self.buf.len() < WA_MAGIC.len() {
            return Ok(false);
        }
        if self.buf.len() < skip + WA_HEADER_LEN {
            return Ok(false);
        }
        if &self.buf[skip..skip + WA_MAGIC.len()] != WA_MAGIC {
            return Err(FrameError::BadHeader);
        }
        self.buf.advance(skip + WA_HEADER_LEN);
        self.header_done = true;
        Ok(true)
    }
}

/// Prefixes a body with its 3-byte length.
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    if body.len() >= MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(3 + body.len());
    let len = body.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    Ok(out)
}

fn read_len3(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_edge_routing_and_header_then_splits_frames() {
        let mut wire = b"ED\x00\x01\x00\x00\x02xyWA\x06\x03".to_vec();
        wire.extend(encode_frame(b"hello").unwrap());
        wire.extend(encode_frame(b"").unwrap());
        let mut r = FrameReader::new();
        for chunk in wire.chunks(3) {
            r.feed(chunk);
        }
        assert_eq!(r.next_frame().unwrap().unwrap(), b"hello");
        assert_eq!(r.next_frame().unwrap().unwrap(), b"");
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn rejects_missing_header() {
        let mut r = FrameReader::new();
        r.feed(b"GET / HTTP");
        assert!(matches!(r.next_frame(), Err(FrameError::BadHeader)));
    }
}

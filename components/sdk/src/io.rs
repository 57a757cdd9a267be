//! Whole bodies over `wasi:io` streams, for the incoming request, the response and outbound
//! calls alike.

use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

/// How many bytes one read from a body stream asks for.
const READ_CHUNK: u64 = 64 * 1024;

/// `wasi:io` output streams accept at most this many bytes per blocking write.
const WRITE_CHUNK: usize = 4096;

/// Reads `stream` to its end. The error is the host's description of what failed.
pub(crate) fn read_all(stream: &InputStream) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => return Err(error.to_debug_string()),
        }
    }
}

/// Writes all of `bytes` to `stream`, flushing as it goes; stops at the first failure, whose
/// description is the error.
pub(crate) fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), String> {
    bytes.chunks(WRITE_CHUNK).try_for_each(|chunk| {
        stream.blocking_write_and_flush(chunk).map_err(|error| match error {
            StreamError::Closed => "the stream was closed".to_string(),
            StreamError::LastOperationFailed(error) => error.to_debug_string(),
        })
    })
}

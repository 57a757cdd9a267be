//! Outbound HTTP from a handler, through the standard `wasi:http/outgoing-handler`. The host
//! only lets a tenant's components reach the hosts on the tenant's allow-list (and never
//! loopback, private or link-local addresses unless the tenant allows them), so a refused
//! call is an ordinary error here.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
use crate::bindings::wasi::io::streams::StreamError;

/// What an outbound call got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The whole body.
    pub body: Vec<u8>,
}

/// `GET url` (`http://` or `https://`), the whole body read. The error says what failed:
/// a malformed URL, a refusal by the host (the allow-list, an address), or the network.
pub fn get(url: &str) -> Result<Fetched, String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(format!("`{url}`: only http:// and https:// URLs")),
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let set = [
        request.set_method(&Method::Get),
        request.set_scheme(Some(&scheme)),
        request.set_authority(Some(authority)),
        request.set_path_with_query(Some(path)),
    ];
    if set.iter().any(Result::is_err) {
        return Err(format!("`{url}` is not a valid URL"));
    }
    let future = outgoing_handler::handle(request, None).map_err(|code| format!("refused: {code:?}"))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("failed: {code:?}")),
        Some(Err(())) | None => return Err("the response was already taken".to_string()),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "the body was already taken".to_string())?;
    let stream = incoming.stream().map_err(|()| "the body stream was already taken".to_string())?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading the body: {}", e.to_debug_string()));
            }
        }
    }
    Ok(Fetched { status, body })
}

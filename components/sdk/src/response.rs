//! The outgoing response, written whole to `wasi:http`.

use crate::bindings::wasi::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// An HTTP response built by a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, the given content type and body.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Response { status, headers: vec![("content-type".to_string(), content_type.to_string())], body }
    }

    /// A JSON response: `value` (a [`serde_json::Value`], or any `Serialize` type — written
    /// straight to bytes, which is faster than building a `Value` first).
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        // Serializing derived or `Value` types into memory cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response::new(status, "application/json", body)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Writes the response to the host. Failures here mean the client went away or the host
    /// refused the response (e.g. it is over the size cap); the host reports those itself.
    pub(crate) fn send(self, out: ResponseOutparam) {
        let mut headers: Vec<(String, Vec<u8>)> =
            self.headers.into_iter().map(|(name, value)| (name, value.into_bytes())).collect();
        headers.push(("content-length".to_string(), self.body.len().to_string().into_bytes()));
        let Ok(fields) = Fields::from_list(&headers) else {
            ResponseOutparam::set(out, Err(internal_error("handler produced an invalid header")));
            return;
        };
        let response = OutgoingResponse::new(fields);
        if response.set_status_code(self.status).is_err() {
            ResponseOutparam::set(out, Err(internal_error("handler produced an invalid status code")));
            return;
        }
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        let Ok(stream) = body.write() else { return };
        if crate::io::write_all(&stream, &self.body).is_err() {
            return;
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

fn internal_error(message: &str) -> crate::bindings::wasi::http::types::ErrorCode {
    crate::bindings::wasi::http::types::ErrorCode::InternalError(Some(message.to_string()))
}

//! The outgoing response, written whole to `wasi:http`.

use crate::bindings::wasi::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// An HTTP response built by a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values. `Content-Length` is the body's, written when the response is
    /// sent: one set here is left out.
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
        let mut headers: Vec<(String, Vec<u8>)> = self
            .headers
            .into_iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
            .map(|(name, value)| (name, value.into_bytes()))
            .collect();
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

/// The response as the `http` crate's. Fails when its status or a header is not valid there.
impl TryFrom<Response> for http::Response<Vec<u8>> {
    type Error = http::Error;

    fn try_from(response: Response) -> Result<Self, http::Error> {
        let builder = http::Response::builder().status(response.status);
        let builder = response.headers.iter().fold(builder, |builder, (name, value)| builder.header(name, value));
        builder.body(response.body)
    }
}

/// A response from the `http` crate's, for a handler that builds one. Fails when a header
/// value is not text.
impl TryFrom<http::Response<Vec<u8>>> for Response {
    type Error = http::header::ToStrError;

    fn try_from(response: http::Response<Vec<u8>>) -> Result<Self, Self::Error> {
        let (parts, body) = response.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| Ok((name.to_string(), value.to_str()?.to_string())))
            .collect::<Result<_, Self::Error>>()?;
        Ok(Response { status: parts.status.as_u16(), headers, body })
    }
}

fn internal_error(message: &str) -> crate::bindings::wasi::http::types::ErrorCode {
    crate::bindings::wasi::http::types::ErrorCode::InternalError(Some(message.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_the_http_crates_response() {
        let response = Response::json(201, &serde_json::json!({ "ok": true })).with_header("Set-Cookie", "a=1");
        let converted = http::Response::try_from(response.clone()).unwrap();
        assert_eq!(converted.status(), http::StatusCode::CREATED);
        assert_eq!(converted.headers()["content-type"], "application/json");
        assert_eq!(converted.headers()["set-cookie"], "a=1");
        assert_eq!(converted.body(), br#"{"ok":true}"#);

        let back = Response::try_from(converted).unwrap();
        assert_eq!((back.status, &back.body), (201, &response.body));
        assert_eq!(
            back.headers,
            [("content-type", "application/json"), ("set-cookie", "a=1")].map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn what_http_cannot_carry_fails_to_convert() {
        assert!(http::Response::try_from(Response::new(1000, "text/plain", Vec::new())).is_err());
        assert!(http::Response::try_from(Response::new(200, "text/plain\n", Vec::new())).is_err());
        let binary = http::Response::builder().header("x-raw", &[0xff][..]).body(Vec::new()).unwrap();
        assert!(Response::try_from(binary).is_err());
    }
}

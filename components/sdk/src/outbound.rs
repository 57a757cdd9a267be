//! Outbound HTTP from a handler, through the standard `wasi:http/outgoing-handler`. The host
//! only lets a tenant's components reach the hosts on the tenant's allow-list (and never
//! loopback, private or link-local addresses unless the tenant allows them), so a refused
//! call is an ordinary error here.
//!
//! ```no_run
//! use waedge_sdk::outbound;
//!
//! # fn lookup(key: &str, phone: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
//! let answer = outbound::Request::post("https://crm.example.com/v1/lookups")
//!     .header("authorization", &format!("Bearer {key}"))
//!     .json(&serde_json::json!({ "phone": phone }))?
//!     .send()?;
//! let record: serde_json::Value = answer.json()?;
//! # Ok(record)
//! # }
//! ```
//!
//! A call blocks until the whole response is read, and its time counts toward the request's
//! `request_timeout_ms`.

use std::fmt;

use crate::bindings::wasi::http::outgoing_handler;
pub use crate::bindings::wasi::http::types::ErrorCode;
use crate::bindings::wasi::http::types::{
    Fields, FutureIncomingResponse, HeaderError, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::request::find_header;

/// An outbound request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// What an outbound call got back, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in the order the server sent them.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why an outbound call failed. It displays as one line for a log or a JSON answer; a
/// refusal or failure of the host carries its `wasi:http` error code, e.g.
/// `failed: ErrorCode::HttpRequestDenied`.
#[derive(Debug)]
pub enum Error {
    /// The URL (given) is not `http://` or `https://`.
    UnsupportedScheme(String),
    /// The host does not accept the URL's (given) authority or path.
    InvalidUrl(String),
    /// The host does not accept the method (given).
    InvalidMethod(String),
    /// The host does not accept a header: a malformed name or value, or one it sets itself
    /// (`host`, `connection`, `transfer-encoding`, …).
    InvalidHeader {
        /// The header's name.
        name: String,
        /// Why the host refused it.
        error: HeaderError,
    },
    /// The value given to [`Request::json`] cannot be written as JSON (e.g. a map whose keys
    /// are not strings).
    Json(serde_json::Error),
    /// The host refused the request before sending it.
    Refused(ErrorCode),
    /// The request got no response: `HttpRequestDenied` (a host not on the tenant's
    /// `outbound_hosts`, or past `max_outbound_requests`), `DestinationIpProhibited` (an
    /// internal address), `DnsTimeout`, `ConnectionRefused`, `ConnectionReadTimeout`, …
    Failed(ErrorCode),
    /// Streaming the request body or the response failed; what failed.
    Io(String),
}

/// `GET url` (`http://` or `https://`), the whole body read: `Request::get(url).send()`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

impl Request {
    /// A request with `method` (any case, e.g. `"PUT"`) to `url` (`http://` or `https://`,
    /// with its path and query), with no headers and no body.
    pub fn new(method: &str, url: &str) -> Self {
        Request { method: method.to_ascii_uppercase(), url: url.to_string(), headers: Vec::new(), body: None }
    }

    /// `GET url`.
    pub fn get(url: &str) -> Self {
        Request::new("GET", url)
    }

    /// `POST url`; give it a body with [`Request::body`] or [`Request::json`].
    pub fn post(url: &str) -> Self {
        Request::new("POST", url)
    }

    /// The request with one more header (the name in any case). `Content-Length` is left
    /// out: it is the body's length, set by [`Request::send`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// The request with `bytes` as its body, sent with its `Content-Length`.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    /// The request with `value` written as its JSON body and `Content-Type: application/json`.
    pub fn json(self, value: &impl serde::Serialize) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(Error::Json)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends the request and reads the whole response, whatever its status.
    pub fn send(self) -> Result<Response, Error> {
        let outgoing = self.outgoing()?;
        let body = match self.body {
            Some(bytes) => Some((outgoing.body().map_err(|()| io_error("the request body was already taken"))?, bytes)),
            None => None,
        };
        let future = outgoing_handler::handle(outgoing, None).map_err(Error::Refused)?;
        // The body streams out while the host sends the request; should the request fail,
        // the host's error code says more than the broken stream, so it is reported first.
        let written = body.map_or(Ok(()), |(body, bytes)| write_body(body, &bytes));
        let response = wait(&future)?;
        written?;
        Response::read(response)
    }

    /// The `wasi:http` request: method, URL and headers.
    fn outgoing(&self) -> Result<OutgoingRequest, Error> {
        let (scheme, rest) = match self.url.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            _ => return Err(Error::UnsupportedScheme(self.url.clone())),
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        let fields = Fields::new();
        let length = self.body.as_ref().map(|body| ("content-length".to_string(), body.len().to_string().into_bytes()));
        for (name, value) in self.headers.iter().filter(|(name, _)| name != "content-length").chain(&length) {
            fields.append(name, value).map_err(|error| Error::InvalidHeader { name: name.clone(), error })?;
        }
        let request = OutgoingRequest::new(fields);
        request.set_method(&wasi_method(&self.method)).map_err(|()| Error::InvalidMethod(self.method.clone()))?;
        let set = [
            request.set_scheme(Some(&scheme)),
            request.set_authority(Some(authority)),
            request.set_path_with_query(Some(path)),
        ];
        if set.iter().any(Result::is_err) {
            return Err(Error::InvalidUrl(self.url.clone()));
        }
        Ok(request)
    }
}

impl Response {
    /// The first value of header `name` (case-insensitive) as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body read as JSON into `T` (a [`serde_json::Value`] or any `Deserialize` type).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Reads a `wasi:http` response, body included.
    fn read(response: IncomingResponse) -> Result<Self, Error> {
        let status = response.status();
        let headers =
            response.headers().entries().into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
        let incoming = response.consume().map_err(|()| io_error("the body was already taken"))?;
        let stream = incoming.stream().map_err(|()| io_error("the body stream was already taken"))?;
        let body = crate::io::read_all(&stream).map_err(|error| Error::Io(format!("reading the body: {error}")))?;
        Ok(Response { status, headers, body })
    }
}

impl Error {
    /// The `wasi:http` error code of a refusal or failure of the host, to match on.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Refused(code) | Error::Failed(code) => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedScheme(url) => write!(f, "`{url}`: only http:// and https:// URLs"),
            Error::InvalidUrl(url) => write!(f, "`{url}` is not a valid URL"),
            Error::InvalidMethod(method) => write!(f, "`{method}` is not a valid method"),
            Error::InvalidHeader { name, error } => write!(f, "header `{name}`: {error:?}"),
            Error::Json(error) => write!(f, "the JSON body: {error}"),
            Error::Refused(code) => write!(f, "refused: {code:?}"),
            Error::Failed(code) => write!(f, "failed: {code:?}"),
            Error::Io(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Json(error) => Some(error),
            _ => None,
        }
    }
}

fn io_error(what: &str) -> Error {
    Error::Io(what.to_string())
}

/// The `wasi:http` method for an upper-case method name.
fn wasi_method(method: &str) -> Method {
    match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    }
}

/// Writes the whole request body and finishes it.
fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    let stream = body.write().map_err(|()| io_error("the request body stream was already taken"))?;
    let written = crate::io::write_all(&stream, bytes);
    drop(stream);
    written.map_err(|error| Error::Io(format!("writing the request body: {error}")))?;
    OutgoingBody::finish(body, None).map_err(Error::Failed)
}

/// Waits for the response to `future`.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, Error> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(Error::Failed(code)),
        Some(Err(())) | None => Err(io_error("the response was already taken")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_writes_the_body_and_its_type() {
        let request = Request::post("https://crm.example.com/v1").header("X-Key", "k").json(&[1, 2]).unwrap();
        assert_eq!(
            request.headers,
            [("x-key", &b"k"[..]), ("content-type", b"application/json")].map(|(n, v)| (n.to_string(), v.to_vec()))
        );
        assert_eq!(request.body.as_deref(), Some(&b"[1,2]"[..]));
        let keys_not_strings = std::collections::BTreeMap::from([((1, 2), 3)]);
        assert!(matches!(Request::post("https://crm.example.com").json(&keys_not_strings), Err(Error::Json(_))));
    }

    #[test]
    fn an_error_names_the_hosts_error_code() {
        // Plugins answer with this text (the probe of tests/e2e does), and tests match on it.
        assert_eq!(Error::Failed(ErrorCode::HttpRequestDenied).to_string(), "failed: ErrorCode::HttpRequestDenied");
        assert_eq!(Error::Refused(ErrorCode::DnsTimeout).to_string(), "refused: ErrorCode::DnsTimeout");
        assert!(matches!(
            Error::Failed(ErrorCode::DestinationIpProhibited).code(),
            Some(ErrorCode::DestinationIpProhibited)
        ));
        assert_eq!(Error::UnsupportedScheme("ftp://x".into()).to_string(), "`ftp://x`: only http:// and https:// URLs");
    }

    #[test]
    fn a_response_reads_its_headers_and_json() {
        let response =
            Response { status: 200, headers: vec![("x-n".into(), b"1".to_vec())], body: b"{\"a\":1}".to_vec() };
        assert_eq!((response.header("X-N"), response.header("x-m")), (Some("1"), None));
        assert_eq!(response.json::<serde_json::Value>().unwrap()["a"], 1);
    }
}

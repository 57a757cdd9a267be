//! The incoming request, read whole from `wasi:http`.

use std::cell::OnceCell;

use crate::bindings::waedge::gateway::request_context;
use crate::bindings::wasi::http::types::{IncomingRequest, Method};
use crate::query::Query;

/// An HTTP request, with its body read in full. The host has already capped the body size.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    path: String,
    raw_query: Option<String>,
    query: Query,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// The matched route's prefix, asked of the host on first use.
    route_prefix: OnceCell<String>,
    /// The host's request id, asked of the host on first use.
    id: OnceCell<String>,
}

impl Request {
    /// Builds a request from parts: for tests of handler logic outside a Wasm host.
    pub fn new(method: &str, path_and_query: &str, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) -> Self {
        let (path, raw_query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (path_and_query, None),
        };
        let query = Query::parse(raw_query.as_deref().unwrap_or_default());
        let headers = headers.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            raw_query,
            query,
            headers,
            body,
            route_prefix: OnceCell::new(),
            id: OnceCell::new(),
        }
    }

    /// The request with its route prefix and id given instead of asked of the host: for tests
    /// outside a Wasm host, with [`Request::new`].
    pub fn with_context(self, route_prefix: &str, id: &str) -> Self {
        Request { route_prefix: OnceCell::from(route_prefix.to_string()), id: OnceCell::from(id.to_string()), ..self }
    }

    /// Reads a `wasi:http` incoming request, body included.
    pub(crate) fn read(incoming: IncomingRequest) -> Result<Self, String> {
        let method = match incoming.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Other(other) => other,
        };
        let path_and_query = incoming.path_with_query().unwrap_or_else(|| "/".to_string());
        let headers = incoming.headers().entries();
        let body = read_body(&incoming)?;
        Ok(Request::new(&method, &path_and_query, headers, body))
    }

    /// The method in upper case, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, still percent-encoded, without the query string.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path split on `/`, with empty segments dropped and each segment percent-decoded.
    pub fn segments(&self) -> Vec<String> {
        split_segments(&self.path)
    }

    /// The prefix of the route the request matched, e.g. `/devices`, or `/` for a catch-all
    /// route: the same handler answers under whatever prefix the operator routes to it.
    pub fn route_prefix(&self) -> &str {
        self.route_prefix.get_or_init(request_context::route_prefix)
    }

    /// The path after the route prefix, still percent-encoded: `/main/groups` for
    /// `/signed/main/groups` routed at `/signed`; empty for the prefix itself. The whole path
    /// if it does not start with the prefix (it always does when the host routed it).
    pub fn route_path(&self) -> &str {
        let prefix = self.route_prefix().trim_end_matches('/');
        match self.path.strip_prefix(prefix) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => &self.path,
        }
    }

    /// [`Request::route_path`] split like [`Request::segments`]: `["main", "groups"]` for
    /// `/signed/main/groups` routed at `/signed`.
    pub fn route_segments(&self) -> Vec<String> {
        split_segments(self.route_path())
    }

    /// The host's id for this request: the response carries it in `x-request-id` and the
    /// host's log lines about the request carry it. Quote it in logs and outbound calls.
    pub fn id(&self) -> &str {
        self.id.get_or_init(request_context::request_id)
    }

    /// The query string as sent (without `?`), e.g. to verify a signature over it.
    pub fn query_string(&self) -> Option<&str> {
        self.raw_query.as_deref()
    }

    /// The parsed query string.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The first value of header `name` (case-insensitive) as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The first value of header `name` (case-insensitive) as it came, if present: for a header
    /// whose presence matters even when its value is no text (an idempotency key a handler must
    /// refuse rather than ignore).
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        find_header_bytes(&self.headers, name)
    }

    /// The bearer token from the `Authorization` header, if the header uses the `Bearer` scheme.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// The request body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// The request as the `http` crate's: method, path and query, headers and body. Fails when
/// one of them is not valid there (only possible for a request built with [`Request::new`],
/// e.g. from a path with a space). The route prefix and the request id stay behind.
impl TryFrom<Request> for http::Request<Vec<u8>> {
    type Error = http::Error;

    fn try_from(request: Request) -> Result<Self, http::Error> {
        let uri = match &request.raw_query {
            Some(query) => format!("{}?{query}", request.path),
            None => request.path,
        };
        let builder = http::Request::builder().method(request.method.as_str()).uri(uri);
        let builder = request.headers.iter().fold(builder, |builder, (name, value)| builder.header(name, &value[..]));
        builder.body(request.body)
    }
}

/// A request from the `http` crate's: for tests of handler logic, or a handler written
/// against `http` types. Its route prefix and id are asked of the host on first use, as for
/// a request the host sent; outside a Wasm host, give them with [`Request::with_context`].
impl From<http::Request<Vec<u8>>> for Request {
    fn from(request: http::Request<Vec<u8>>) -> Self {
        let (parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
        let headers = parts.headers.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())).collect();
        Request::new(parts.method.as_str(), path_and_query, headers, body)
    }
}

/// The first value of header `name` (case-insensitive) in `headers`, whose names are lower
/// case, as text, if present and valid UTF-8.
pub(crate) fn find_header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    find_header_bytes(headers, name).and_then(|value| std::str::from_utf8(value).ok())
}

/// The first value of header `name` (case-insensitive) in `headers`, whose names are lower
/// case, as it came.
fn find_header_bytes<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    let name = name.to_ascii_lowercase();
    headers.iter().find(|(n, _)| *n == name).map(|(_, value)| value.as_slice())
}

/// `path` split on `/`, with empty segments dropped and each segment percent-decoded.
fn split_segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(crate::query::percent_decode).collect()
}

fn read_body(incoming: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = incoming.consume().map_err(|()| "request body was already consumed".to_string())?;
    let stream = body.stream().map_err(|()| "request body stream is unavailable".to_string())?;
    crate::io::read_all(&stream).map_err(|error| format!("reading the request body failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(prefix: &str, path: &str) -> Request {
        Request::new("GET", path, Vec::new(), Vec::new()).with_context(prefix, "req-1")
    }

    #[test]
    fn the_route_path_follows_the_prefix() {
        let request = routed("/signed", "/signed/main/groups?x=1");
        assert_eq!((request.route_prefix(), request.id()), ("/signed", "req-1"));
        assert_eq!(request.route_path(), "/main/groups");
        assert_eq!(request.route_segments(), ["main", "groups"]);
        assert_eq!(routed("/api/v1/", "/api/v1/main%2Fx/groups").route_segments(), ["main/x", "groups"]);
        assert_eq!(routed("/signed", "/signed").route_path(), "");
    }

    #[test]
    fn a_catch_all_route_keeps_the_whole_path() {
        assert_eq!(routed("/", "/main/groups").route_path(), "/main/groups");
        assert_eq!(routed("/", "/").route_path(), "/");
    }

    #[test]
    fn converts_to_and_from_the_http_crates_request() {
        let built = http::Request::post("/api/main/notes?x=a+b")
            .header("X-Trace", "t1")
            .header("x-trace", "t2")
            .body(b"{}".to_vec())
            .unwrap();
        let request = Request::from(built).with_context("/api", "req-1");
        assert_eq!(
            (request.method(), request.route_path(), request.query().get("x")),
            ("POST", "/main/notes", Some("a b"))
        );
        assert_eq!((request.header("x-trace"), request.body()), (Some("t1"), &b"{}"[..]));

        let back = http::Request::try_from(request).unwrap();
        assert_eq!((back.method().as_str(), back.uri().to_string()), ("POST", "/api/main/notes?x=a+b".to_string()));
        let traces: Vec<_> = back.headers().get_all("x-trace").iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!((traces, back.body()), (vec!["t1", "t2"], &b"{}".to_vec()));
    }

    #[test]
    fn a_request_http_cannot_carry_fails_to_convert() {
        let request = Request::new("GET", "/a b", Vec::new(), Vec::new());
        assert!(http::Request::try_from(request).is_err());
        let request = Request::new("GET", "/", vec![("bad name".to_string(), Vec::new())], Vec::new());
        assert!(http::Request::try_from(request).is_err());
    }

    #[test]
    fn a_header_that_is_no_text_is_absent_as_text_and_present_as_bytes() {
        let headers = vec![("idempotency-key".to_string(), b"caf\xe9".to_vec())];
        let request = Request::new("POST", "/", headers, Vec::new());
        assert_eq!(request.header("Idempotency-Key"), None);
        assert_eq!(request.header_bytes("Idempotency-Key"), Some(&b"caf\xe9"[..]));
        assert_eq!(request.header_bytes("x-other"), None);
    }

    #[test]
    fn a_path_outside_the_prefix_stays_whole() {
        assert_eq!(routed("/signed", "/signedx/main").route_path(), "/signedx/main");
        assert_eq!(routed("/signed", "/other").route_segments(), ["other"]);
    }
}

//! The admin API: JSON over HTTP on its own listener (default `127.0.0.1:8081`), for operators
//! and the `waedge` CLI.
//!
//! Every `/v1/…` endpoint needs `Authorization: Bearer ADMIN_TOKEN` (`waedge admin-token
//! create` makes one). Health (`/healthz`, `/readyz`), metrics (`/metrics`), the OpenAPI
//! document (`/openapi.json`) and the pairing page (`/pair`) are open: keep the listener on
//! loopback or a private network. Every change goes to the [store](crate::store) first and
//! is then applied to the running gateway before the response is sent.
//!
//! One module per resource: [`tenants`], [`users`] (and tokens), [`devices`] (and linking,
//! with [`link`] holding the linkings in progress), [`routes`], [`components`] (deploys and
//! versions), and [`ops`] (health, metrics, OpenAPI, pairing page).

pub mod components;
pub mod devices;
pub mod link;
pub mod ops;
pub mod routes;
pub mod tenants;
pub mod users;
pub mod watch;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Gateway;
use crate::gateway::{ResponseBody, error};
use crate::server::Handler;
use crate::store::{Store, StoreError};
use crate::token::{self, TokenHash};

/// Largest JSON body the admin API reads.
const MAX_BODY: usize = 1 << 20;

/// The admin API's state: the store and the gateway it changes.
pub struct Admin {
    store: Store,
    gateway: Arc<Gateway>,
    links: link::Links,
}

/// A request's method, path segments, query and body, read whole.
pub struct Call {
    method: Method,
    path: String,
    query: Option<String>,
    body: Bytes,
    /// The id of the admin token that authenticated the call (empty for the open endpoints).
    author: String,
}

/// An admin API answer before it becomes a response: a value to send as JSON, or an error.
pub type Answer = Result<Response<ResponseBody>, Failure>;

/// An admin API error: status, code and a message that says what to do.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    /// A failure with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Failure { status, code, message: message.into() }
    }

    /// 400 with code `INVALID`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, "INVALID", message)
    }

    /// 409 with code `CONFLICT`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::CONFLICT, "CONFLICT", message)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(m) => Failure::new(StatusCode::NOT_FOUND, "NOT_FOUND", m),
            StoreError::Conflict(m) => Failure::conflict(m),
            StoreError::Invalid(m) => Failure::invalid(m),
            StoreError::Sqlite(e) => {
                tracing::error!("admin store operation failed: {e}");
                Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "STORE_FAILED", "the store failed; see the server log")
            }
        }
    }
}

impl Admin {
    /// The admin API over `store`, applying changes to `gateway`.
    pub fn new(store: Store, gateway: Arc<Gateway>) -> Self {
        Admin { store, gateway, links: link::Links::default() }
    }

    async fn answer(&self, call: Call) -> Answer {
        let path = call.path.trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match segments.as_slice() {
            ["healthz"] | ["readyz"] | ["metrics"] | ["openapi.json"] | ["pair"] => {
                return ops::answer(self, &call, segments[0]).await;
            }
            _ => {}
        }
        match segments.as_slice() {
            ["v1", "tenants", rest @ ..] => match rest {
                [] | [_] => tenants::answer(self, &call, rest.first().copied()).await,
                [tenant, "users", rest @ ..] => users::answer(self, &call, tenant, rest).await,
                [tenant, "devices", rest @ ..] => devices::answer(self, &call, tenant, rest).await,
                [tenant, "routes"] => routes::answer(self, &call, tenant).await,
                [tenant, "components", rest @ ..] => components::answer(self, &call, tenant, rest).await,
                _ => Err(no_endpoint(&call)),
            },
            _ => Err(no_endpoint(&call)),
        }
    }

    /// Checks the request's admin token; returns the token's id.
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<String, Failure> {
        let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(token::bearer);
        let Some(bearer) = bearer else {
            return Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "send `Authorization: Bearer ADMIN_TOKEN`; `waedge admin-token create` makes a token",
            ));
        };
        let hash = TokenHash::of(bearer);
        match self.store.run(move |store| store.admin_token_id(&hash)).await? {
            Some(id) => Ok(id),
            None => {
                Err(Failure::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "this admin token is unknown or revoked"))
            }
        }
    }

    /// Runs `change` on the store, then rebuilds the gateway from it; answers what `change`
    /// returned.
    async fn change<T, F>(&self, change: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let value = self.store.run(change).await?;
        self.reload().await?;
        Ok(value)
    }

    /// Rebuilds the gateway from the store.
    async fn reload(&self) -> Result<(), Failure> {
        let gateway = self.gateway.clone();
        let problems = self.store.run(move |store| gateway.reload(store)).await?;
        for problem in problems {
            tracing::warn!("{problem}");
        }
        Ok(())
    }

    /// Reads something from the store.
    async fn read<T, F>(&self, read: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        Ok(self.store.run(read).await?)
    }
}

impl Handler for Admin {
    async fn handle(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let answer = async {
            let (parts, body) = request.into_parts();
            // The token is checked before the body is read: no one without a token makes the
            // server buffer an upload.
            let author = match parts.uri.path().starts_with("/v1/") {
                true => self.authenticate(&parts.headers).await?,
                false => String::new(),
            };
            self.answer(read_call(parts, body, author).await?).await
        }
        .await;
        let response = answer.unwrap_or_else(|f| error(f.status, f.code, &f.message));
        tracing::info!(target: "waedge::admin", %method, path, status = response.status().as_u16());
        response
    }
}

async fn read_call(parts: http::request::Parts, body: Incoming, author: String) -> Result<Call, Failure> {
    // Component uploads are the only large bodies.
    let limit = if parts.uri.path().contains("/components/") { components::MAX_COMPONENT } else { MAX_BODY };
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        match e.downcast_ref::<http_body_util::LengthLimitError>() {
            Some(_) => Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("this request's body may be at most {limit} bytes"),
            ),
            None => Failure::invalid("the request body could not be read"),
        }
    })?;
    Ok(Call {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        body: body.to_bytes(),
        author,
    })
}

impl Call {
    /// The body parsed as JSON into `T` (an empty body reads as `{}`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        serde_json::from_slice(body)
            .map_err(|e| Failure::invalid(format!("the request body is not valid JSON for this endpoint: {e}")))
    }

    /// The decoded query parameter `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == name).map(|(_, value)| {
            let value = value.replace('+', " ");
            percent_decode(&value)
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_vec(value).expect("admin answers serialise");
    Ok(respond(status, "application/json", body))
}

/// 204 No Content.
pub fn no_content() -> Answer {
    let mut response = respond(StatusCode::NO_CONTENT, "application/json", Vec::new());
    response.headers_mut().remove(header::CONTENT_TYPE);
    Ok(response)
}

/// A response with a body of `content_type`.
pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// 404 for a path or method the admin API does not have.
pub fn no_endpoint(call: &Call) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "NO_ENDPOINT",
        format!("the admin API has no `{} {}`; /openapi.json lists every endpoint", call.method, call.path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("%2Fdevices%2fx"), "/devices/x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}

//! The host's own answers: JSON errors in the envelope of the API a request is for.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use crate::body::ResponseBody;

/// The shape of a host-generated error: that of the API the request is for, so a client
/// reads the host's errors the way it reads the API's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Envelope {
    /// `{"error": {"code": …, "message": …}}`: the devices API's and the host's own.
    Standard,
    /// `{"success": false, "error": …, "error_code": …, "timestamp": …}`: the contacts API's
    /// (`seeds/contacts-api.md`).
    Contacts,
}

impl Envelope {
    /// The envelope of the API served by `component`.
    pub(super) fn of_component(component: &str) -> Self {
        if component == "builtin:contacts-api" { Envelope::Contacts } else { Envelope::Standard }
    }

    /// The envelope of the API at `path` when no route is known yet: the contacts API's under
    /// `/contacts`, where the configurations this host ships serve it.
    pub(super) fn of_path(path: &str) -> Self {
        if crate::tenancy::prefix_matches("/contacts", path) { Envelope::Contacts } else { Envelope::Standard }
    }

    /// `503 CAPACITY` with `Retry-After: 1`: the host, not the request, is short of something.
    pub(super) fn capacity(self, message: &str) -> Response<ResponseBody> {
        self.retry_soon("CAPACITY", message)
    }

    /// `503 NODE_BEHIND` with `Retry-After: 1`: this node may be behind the changes of the
    /// nodes it shares its store with (see [`Heartbeat`](super::heartbeat::Heartbeat)).
    pub(super) fn behind(self) -> Response<ResponseBody> {
        let message = "this node has lost touch with the other nodes of its store and may be behind their changes; \
                       retry shortly, or on another node";
        self.retry_soon("NODE_BEHIND", message)
    }

    /// A 503 with `code` and `message`, and `Retry-After: 1`.
    fn retry_soon(self, code: &str, message: &str) -> Response<ResponseBody> {
        let mut response = self.error(StatusCode::SERVICE_UNAVAILABLE, code, message);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        response
    }

    pub(super) fn error(self, status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
        match self {
            Envelope::Standard => error(status, code, message),
            Envelope::Contacts => {
                /// The contacts API's error, its fields in the seed's order.
                #[derive(serde::Serialize)]
                struct ContactsError<'a> {
                    success: bool,
                    error: &'a str,
                    error_code: &'a str,
                    timestamp: String,
                }
                let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                json_response(status, &ContactsError { success: false, error: message, error_code: code, timestamp })
            }
        }
    }
}

/// A host-generated JSON error: `{"error": {"code": …, "message": …}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(status, &serde_json::json!({ "error": { "code": code, "message": message } }))
}

/// A host-generated JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<ResponseBody> {
    json_body(status, Bytes::from(serde_json::to_string(value).unwrap_or_default()))
}

/// A response whose `body` is JSON already.
pub fn json_body(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

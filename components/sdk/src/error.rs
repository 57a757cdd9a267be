//! What a host error means for an HTTP response.

use crate::Error;

/// The HTTP meaning of a host [`Error`]: a status code, a stable machine-readable code and a
/// message that tells the client what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorClass {
    /// The HTTP status code.
    pub status: u16,
    /// A stable `SCREAMING_SNAKE_CASE` error code.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl From<Error> for ErrorClass {
    fn from(error: Error) -> Self {
        let (status, code, message) = match error {
            Error::DeviceNotFound => (404, "DEVICE_NOT_FOUND", "no such device for this tenant".to_string()),
            Error::DeviceNotConnected(state) => (
                503,
                "DEVICE_NOT_CONNECTED",
                format!(
                    "the device is not connected to WhatsApp (state: {state}); link it or wait for it to reconnect"
                ),
            ),
            Error::InvalidJid(reason) => (400, "INVALID_JID", reason),
            Error::NotFound => (404, "NOT_FOUND", "WhatsApp has no such user or group".to_string()),
            Error::Forbidden(reason) => (403, "FORBIDDEN", reason),
            Error::RateLimited(seconds) => (429, "RATE_LIMITED", format!("too many requests; retry in {seconds} s")),
            Error::Timeout => (504, "TIMEOUT", "WhatsApp did not answer in time; retry".to_string()),
            Error::Upstream(reason) => (502, "UPSTREAM_ERROR", format!("WhatsApp returned an error: {reason}")),
        };
        ErrorClass { status, code, message }
    }
}

impl From<ErrorClass> for crate::Response {
    fn from(error: ErrorClass) -> Self {
        error.into_response()
    }
}

impl ErrorClass {
    /// The error as a response: its status and `{"error": {"code": …, "message": …}}`.
    pub fn into_response(self) -> crate::Response {
        crate::Response::json(
            self.status,
            &serde_json::json!({ "error": { "code": self.code, "message": self.message } }),
        )
    }

    /// A 400 error for a malformed request parameter.
    pub fn validation(message: impl Into<String>) -> Self {
        ErrorClass { status: 400, code: "VALIDATION_ERROR", message: message.into() }
    }

    /// A 404 error for a path the handler does not serve.
    pub fn no_route(path: &str) -> Self {
        ErrorClass { status: 404, code: "NOT_FOUND", message: format!("no endpoint at `{path}`") }
    }

    /// A 405 error for a method the endpoint does not accept.
    pub fn method_not_allowed(method: &str, allowed: &str) -> Self {
        ErrorClass {
            status: 405,
            code: "METHOD_NOT_ALLOWED",
            message: format!("{method} is not allowed here; use {allowed}"),
        }
    }
}

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
    /// Headers the response must carry, e.g. `Allow` on a 405 (RFC 9110 §15.5.6).
    pub headers: Vec<(String, String)>,
}

impl From<Error> for ErrorClass {
    fn from(error: Error) -> Self {
        match error {
            Error::DeviceNotFound => ErrorClass::new(404, "DEVICE_NOT_FOUND", "no such device for this tenant"),
            Error::DeviceNotConnected(state) => ErrorClass::new(
                503,
                "DEVICE_NOT_CONNECTED",
                format!(
                    "the device is not connected to WhatsApp (state: {state}); link it or wait for it to reconnect"
                ),
            ),
            Error::InvalidJid(reason) => ErrorClass::new(400, "INVALID_JID", reason),
            Error::NotFound => ErrorClass::new(404, "NOT_FOUND", "WhatsApp has no such user or group"),
            Error::Forbidden(reason) => ErrorClass::new(403, "FORBIDDEN", reason),
            Error::RateLimited(seconds) => {
                ErrorClass::new(429, "RATE_LIMITED", format!("too many requests; retry in {seconds} s"))
                    .with_header("retry-after", &seconds.to_string())
            }
            Error::Timeout => ErrorClass::new(504, "TIMEOUT", "WhatsApp did not answer in time; retry"),
            Error::Upstream(reason) => {
                ErrorClass::new(502, "UPSTREAM_ERROR", format!("WhatsApp returned an error: {reason}"))
            }
        }
    }
}

impl From<ErrorClass> for crate::Response {
    fn from(error: ErrorClass) -> Self {
        error.into_response()
    }
}

impl ErrorClass {
    /// An error with `status`, `code` and `message`, and no extra headers.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ErrorClass { status, code, message: message.into(), headers: Vec::new() }
    }

    /// The error with one more response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The error as a response: its status, its headers and
    /// `{"error": {"code": …, "message": …}}`.
    pub fn into_response(self) -> crate::Response {
        self.respond(&serde_json::json!({ "error": { "code": self.code, "message": self.message } }))
    }

    /// The error as a response with `body` as JSON, for handlers whose error envelope differs
    /// from [`ErrorClass::into_response`]'s: the error's status and headers.
    pub fn respond(&self, body: &impl serde::Serialize) -> crate::Response {
        let mut response = crate::Response::json(self.status, body);
        response.headers.extend(self.headers.iter().cloned());
        response
    }

    /// A 400 error for a malformed request parameter.
    pub fn validation(message: impl Into<String>) -> Self {
        ErrorClass::new(400, "VALIDATION_ERROR", message)
    }

    /// A 404 error for a path the handler does not serve.
    pub fn no_route(path: &str) -> Self {
        ErrorClass::new(404, "NOT_FOUND", format!("no endpoint at `{path}`"))
    }

    /// A 405 error for a method the endpoint does not accept, with the `Allow` header listing
    /// the methods it does accept.
    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        let message = format!("{method} is not allowed here; use {}", allowed.join(" or "));
        ErrorClass::new(405, "METHOD_NOT_ALLOWED", message).with_header("allow", &allowed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let response = ErrorClass::method_not_allowed("DELETE", &["GET", "HEAD"]).into_response();
        assert_eq!(response.status, 405);
        assert!(response.headers.contains(&("allow".to_string(), "GET, HEAD".to_string())));
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
        assert_eq!(body["error"]["message"], "DELETE is not allowed here; use GET or HEAD");
    }

    #[test]
    fn a_device_not_connected_names_its_state() {
        let error = ErrorClass::from(Error::DeviceNotConnected(crate::DeviceState::LoggedOut));
        assert_eq!((error.status, error.code), (503, "DEVICE_NOT_CONNECTED"));
        assert_eq!(
            error.message,
            "the device is not connected to WhatsApp (state: logged-out); link it or wait for it to reconnect"
        );
    }

    #[test]
    fn a_rate_limit_says_when_to_retry_in_its_header_too() {
        let error = ErrorClass::from(Error::RateLimited(7));
        assert_eq!((error.status, error.code), (429, "RATE_LIMITED"));
        assert_eq!(error.headers, [("retry-after".to_string(), "7".to_string())]);
    }

    #[test]
    fn respond_keeps_status_and_headers_with_another_envelope() {
        let error = ErrorClass::method_not_allowed("POST", &["GET"]);
        let response = error.respond(&serde_json::json!({ "success": false, "error_code": error.code }));
        assert_eq!(response.status, 405);
        assert!(response.headers.contains(&("allow".to_string(), "GET".to_string())));
        assert_eq!(response.body, br#"{"success":false,"error_code":"METHOD_NOT_ALLOWED"}"#);
    }
}

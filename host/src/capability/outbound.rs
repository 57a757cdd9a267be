//! Outbound HTTP from components (`wasi:http/outgoing-handler`): only to the tenant's
//! allow-listed hosts. Everything else is refused with `HTTP-request-denied`.

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The outbound policy of one request: the tenant's host allow-list.
pub struct OutboundPolicy {
    allowed_hosts: Arc<[String]>,
}

impl OutboundPolicy {
    /// A policy allowing exactly `allowed_hosts` (host names, compared case-insensitively).
    pub fn new(allowed_hosts: Arc<[String]>) -> Self {
        OutboundPolicy { allowed_hosts }
    }

    /// Whether a request to `host` may leave.
    pub fn permits(&self, host: &str) -> bool {
        self.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host))
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let permitted = request.uri().host().is_some_and(|host| self.permits(host));
        Box::new(async move {
            if !permitted {
                return Err(Error::HttpRequestDenied);
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let response = response.map(http_body_util::BodyExt::boxed_unsync);
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_only_listed_hosts() {
        let policy = OutboundPolicy::new(vec!["api.example.com".to_string()].into());
        assert!(policy.permits("API.example.com"));
        assert!(!policy.permits("example.com"));
        assert!(!policy.permits("127.0.0.1"));
    }
}

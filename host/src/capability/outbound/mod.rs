//! Outbound HTTP from components (`wasi:http/outgoing-handler`), under the tenant's policy:
//!
//! - only to hosts on the tenant's allow-list (else `HTTP-request-denied`);
//! - never to loopback, private, link-local or otherwise internal addresses, unless the host
//!   is also on the tenant's private allow-list (else `destination-IP-prohibited`) — the
//!   host name is resolved first and every address it resolves to is checked;
//! - at most the tenant's `max_outbound_requests` per request (else `HTTP-request-denied`).
//!
//! Every refusal is reported as a sandbox violation (log line and metric) naming the tenant,
//! the component and the limit.
//!
//! The connection itself is made by wasmtime's default sender, which resolves the name again:
//! a DNS answer that changes between the check and the connection (rebinding) is not caught.

use std::net::IpAddr;
use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::runtime::violation::Reporter;

/// The outbound policy of one request.
pub struct OutboundPolicy {
    allowed_hosts: Arc<[String]>,
    private_hosts: Arc<[String]>,
    remaining: usize,
    reporter: Reporter,
}

impl OutboundPolicy {
    /// A policy allowing `allowed_hosts` (host names, compared case-insensitively), of which
    /// `private_hosts` may resolve to internal addresses, for at most `max_requests` calls.
    pub fn new(
        allowed_hosts: Arc<[String]>,
        private_hosts: Arc<[String]>,
        max_requests: usize,
        reporter: Reporter,
    ) -> Self {
        OutboundPolicy { allowed_hosts, private_hosts, remaining: max_requests, reporter }
    }

    /// Whether a request to `host` may leave.
    pub fn permits(&self, host: &str) -> bool {
        contains(&self.allowed_hosts, host)
    }
}

fn contains(hosts: &[String], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host))
}

/// Whether `ip` is an address a tenant's component must not reach by default: loopback,
/// private, link-local, unspecified, shared (CGNAT), unique-local, multicast or broadcast.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10, shared address space
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // fc00::/7, unique local
                || (first & 0xffc0) == 0xfe80 // fe80::/10, link local
        }
    }
}

type ResponseFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>>
        + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let reporter = self.reporter.clone();
        let host = request.uri().host().unwrap_or_default().to_string();
        let refusal = if self.remaining == 0 {
            Some("max_outbound_requests")
        } else if !self.permits(&host) {
            Some("outbound_hosts")
        } else {
            None
        };
        self.remaining = self.remaining.saturating_sub(1);
        let may_be_internal = contains(&self.private_hosts, &host);
        let https = request.uri().scheme_str() == Some("https");
        let port = request.uri().port_u16().unwrap_or(if https { 443 } else { 80 });
        Box::new(async move {
            if let Some(limit) = refusal {
                reporter.violation(limit, &format!("outbound request to `{host}` refused"));
                return Err(Error::HttpRequestDenied);
            }
            if !may_be_internal {
                let name = host.trim_start_matches('[').trim_end_matches(']').to_string();
                let addresses = tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|e| Error::DnsError { rcode: Some(e.to_string()), info_code: None })?;
                if let Some(internal) = addresses.map(|a| a.ip()).find(|ip| is_internal(*ip)) {
                    reporter.violation(
                        "outbound_address",
                        &format!("`{host}` resolves to the internal address {internal}"),
                    );
                    return Err(Error::DestinationIpProhibited);
                }
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
        let policy =
            OutboundPolicy::new(vec!["api.example.com".to_string()].into(), Arc::from([]), 1, Reporter::detached());
        assert!(policy.permits("API.example.com"));
        assert!(!policy.permits("example.com"));
        assert!(!policy.permits("127.0.0.1"));
    }

    #[test]
    fn knows_internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}

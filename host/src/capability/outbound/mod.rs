//! Outbound HTTP from components (`wasi:http/outgoing-handler`), under the tenant's policy:
//!
//! - only to hosts on the tenant's allow-list (else `HTTP-request-denied`);
//! - at most the tenant's `max_outbound_requests` per request (else `HTTP-request-denied`);
//! - the host name is looked up once ([`resolve`]: asynchronously, bounded in time and in
//!   number) and every address it resolves to is checked ([`address`]): only globally
//!   reachable unicast addresses pass, unless the host is also on the tenant's private
//!   allow-list (else `destination-IP-prohibited`);
//! - the connection goes to the checked addresses themselves ([`send`]), with the host name
//!   for TLS and in the `Host` header: a name that answers differently the next time it is
//!   looked up (DNS rebinding) cannot move the connection elsewhere. Redirects are not
//!   followed; a component that follows one makes a new request, checked like this one.
//!
//! Every refusal is reported as a sandbox violation (log line and metric) naming the tenant,
//! the component and the limit.

pub mod address;
pub mod resolve;
pub mod send;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::Config;
use crate::telemetry::violation::Reporter;
use address::Blocked;
use resolve::Resolver;

/// A lookup gives up this long before the request's deadline at the latest, a tenth of the
/// request's budget when that is less, so the component can still answer with the error.
const ANSWER_MARGIN: Duration = Duration::from_millis(250);

/// The process's side of outbound HTTP, shared by every request: the resolver with its caps
/// on lookups in flight, and the TLS set-up.
pub struct Outbound {
    resolver: Resolver,
    tls: OnceLock<Arc<rustls::ClientConfig>>,
    /// Addresses a test treats as public (see [`Config::public_test_addresses`]).
    #[cfg(feature = "wa-sim")]
    public_for_tests: Vec<IpAddr>,
}

impl Outbound {
    /// Outbound HTTP looking names up with the system's resolver configuration.
    pub fn system() -> Outbound {
        Outbound::with(Resolver::system())
    }

    fn with(resolver: Resolver) -> Outbound {
        Outbound {
            resolver,
            tls: OnceLock::new(),
            #[cfg(feature = "wa-sim")]
            public_for_tests: Vec::new(),
        }
    }

    /// Outbound HTTP as `config` sets it up: the system's resolver, or in test builds (the
    /// `wa-sim` feature) the test's `dns_server` and `public_test_addresses`. Other builds
    /// refuse those two keys.
    pub fn from_config(config: &Config) -> anyhow::Result<Outbound> {
        #[cfg(feature = "wa-sim")]
        {
            let mut outbound = match config.dns_server {
                Some(server) => {
                    tracing::warn!("outbound HTTP looks names up at {server} only (test build)");
                    Outbound::with(Resolver::with_server(server))
                }
                None => Outbound::system(),
            };
            if !config.public_test_addresses.is_empty() {
                tracing::warn!(
                    "outbound HTTP treats {:?} as public addresses (test build)",
                    config.public_test_addresses
                );
            }
            outbound.public_for_tests = config.public_test_addresses.clone();
            Ok(outbound)
        }
        #[cfg(not(feature = "wa-sim"))]
        {
            anyhow::ensure!(
                config.dns_server.is_none() && config.public_test_addresses.is_empty(),
                "`dns_server` and `public_test_addresses` are test settings: remove them, or use a test build \
                 (`cargo build -p waedge --features wa-sim`)"
            );
            Ok(Outbound::system())
        }
    }

    /// Whether (and why) `ip` is refused to hosts that are not on the private allow-list.
    fn blocked(&self, ip: IpAddr) -> Option<Blocked> {
        #[cfg(feature = "wa-sim")]
        if self.public_for_tests.contains(&ip) {
            return None;
        }
        address::blocked(ip)
    }

    fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.get_or_init(send::tls_config).clone()
    }

    /// Looks `host` up (an IP literal is its own address), checks every address unless
    /// `may_be_internal`, and sends `request` to them. Components' requests and webhooks go
    /// through it.
    pub(crate) async fn send(
        &self,
        reporter: &Reporter,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        may_be_internal: bool,
        lookups_until: Instant,
    ) -> Result<send::Sent, Error> {
        let uri = request.uri();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = uri.host().unwrap_or_default();
        let name = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let literal = name.parse::<IpAddr>().ok();
        let addresses = match literal {
            Some(ip) => vec![ip],
            None => {
                let connect_by = options.and_then(|o| o.connect_timeout).map(|t| Instant::now() + t);
                let until = connect_by.map_or(lookups_until, |by| by.min(lookups_until));
                self.resolver.lookup(reporter.tenant(), &name, until).await?
            }
        };
        if !may_be_internal
            && let Some((ip, blocked)) = addresses.iter().find_map(|ip| self.blocked(*ip).map(|b| (ip, b)))
        {
            let what = format!("outbound request to `{host}` refused: address {ip} {blocked}");
            reporter.violation("outbound_address", &what);
            return Err(Error::DestinationIpProhibited);
        }
        let tls = match (https, literal) {
            (false, _) => None,
            (true, Some(ip)) => Some((ServerName::from(ip), self.tls())),
            (true, None) => Some((ServerName::try_from(name).map_err(Error::from)?, self.tls())),
        };
        let addresses: Vec<SocketAddr> = addresses.into_iter().map(|ip| SocketAddr::new(ip, port)).collect();
        send::send(request, &addresses, tls, options).await
    }
}

/// The outbound policy of one request.
pub struct OutboundPolicy {
    outbound: Arc<Outbound>,
    allowed_hosts: Arc<[String]>,
    private_hosts: Arc<[String]>,
    remaining: usize,
    reporter: Reporter,
    /// When lookups give up: [`ANSWER_MARGIN`] before the request's deadline.
    lookups_until: Instant,
}

impl OutboundPolicy {
    /// A policy allowing `allowed_hosts` (host names, compared case-insensitively), of which
    /// `private_hosts` may resolve to internal addresses, for at most `max_requests` calls,
    /// sent through `outbound`, of a request that must be answered by `deadline`.
    pub fn new(
        outbound: Arc<Outbound>,
        allowed_hosts: Arc<[String]>,
        private_hosts: Arc<[String]>,
        max_requests: usize,
        reporter: Reporter,
        deadline: Instant,
    ) -> Self {
        let margin = ANSWER_MARGIN.min(deadline.saturating_duration_since(Instant::now()) / 10);
        OutboundPolicy {
            outbound,
            allowed_hosts,
            private_hosts,
            remaining: max_requests,
            reporter,
            lookups_until: deadline - margin,
        }
    }

    /// Whether a request to `host` may leave.
    pub fn permits(&self, host: &str) -> bool {
        names(&self.allowed_hosts, host)
    }
}

/// Whether `hosts` names `host` (case-insensitively; an IPv6 literal with or without its
/// brackets).
pub(crate) fn names(hosts: &[String], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host))
}

type ResponseFuture = Box<dyn Future<Output = Result<send::Sent, Error>> + Send>;

/// The most a body the component writes (an outbound request's or its response's) buffers in
/// the host before the component must wait for it to be sent: wasmtime's default is 1 MiB per
/// body, and a component may hold hundreds of unsent bodies.
pub const BODY_CHUNK: usize = 16 << 10;

impl WasiHttpHooks for OutboundPolicy {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let host = request.uri().host().unwrap_or_default().to_string();
        let refusal = if self.remaining == 0 {
            Some("max_outbound_requests")
        } else if !self.permits(&host) {
            Some("outbound_hosts")
        } else {
            None
        };
        self.remaining = self.remaining.saturating_sub(1);
        let may_be_internal = names(&self.private_hosts, &host);
        let (outbound, reporter, lookups_until) = (self.outbound.clone(), self.reporter.clone(), self.lookups_until);
        Box::new(async move {
            if let Some(limit) = refusal {
                reporter.violation(limit, &format!("outbound request to `{host}` refused"));
                return Err(Error::HttpRequestDenied);
            }
            outbound.send(&reporter, request, options, may_be_internal, lookups_until).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_only_listed_hosts() {
        let policy = OutboundPolicy::new(
            Arc::new(Outbound::system()),
            vec!["api.example.com".to_string()].into(),
            Arc::from([]),
            1,
            Reporter::detached(),
            Instant::now(),
        );
        assert!(policy.permits("API.example.com"));
        assert!(!policy.permits("example.com"));
        assert!(!policy.permits("127.0.0.1"));
    }
}

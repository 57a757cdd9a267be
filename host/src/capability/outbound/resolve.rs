//! Name lookups for outbound HTTP: asynchronous (hickory), so a slow or silent DNS server ties
//! up no thread, and bounded — each lookup in time (it ends before the request's deadline),
//! and the lookups in flight per tenant in number.
//!
//! A lookup waits for a free slot of its tenant within its time: a tenant whose names resolve
//! slowly fills its own [`TENANT_LOOKUPS`] slots and nobody else's. There is no process-wide
//! cap for tenants to fill together (four tenants with silent name servers took all of an
//! earlier cap of 256): a pending lookup holds no thread, only a socket and a little memory,
//! and how many tenants' requests are in flight at all is bounded by the instance pool.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::Error;

/// Lookups in flight for one tenant.
pub const TENANT_LOOKUPS: usize = 64;

/// Looks up the addresses of host names.
pub struct Resolver {
    /// Where names are looked up: the system's resolvers, or (tests) one server.
    server: Option<SocketAddr>,
    /// The resolver, made at the first lookup, or why there is none (the system's
    /// configuration could not be read).
    resolver: OnceLock<Result<TokioResolver, String>>,
    /// Each tenant's slots, while the tenant has lookups in flight.
    tenants: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

impl Resolver {
    /// A resolver with the system's configuration (`/etc/resolv.conf`, `/etc/hosts`), asking
    /// for IPv4 and IPv6 addresses. A configuration that cannot be read is logged at the first
    /// lookup, and every lookup then fails with a DNS error.
    pub fn system() -> Resolver {
        Resolver::with(None)
    }

    /// A resolver asking only `server` (over UDP), with no hosts file and no search domains:
    /// a test's own DNS server.
    #[cfg(feature = "wa-sim")]
    pub fn with_server(server: SocketAddr) -> Resolver {
        Resolver::with(Some(server))
    }

    fn with(server: Option<SocketAddr>) -> Resolver {
        Resolver { server, resolver: OnceLock::new(), tenants: Mutex::default() }
    }

    fn resolver(&self) -> Result<&TokioResolver, Error> {
        let made = self.resolver.get_or_init(|| {
            let made = match self.server {
                None => TokioResolver::builder_tokio(),
                Some(server) => {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = server.port();
                    let server = NameServerConfig::new(server.ip(), true, vec![udp]);
                    let mut builder = TokioResolver::builder_with_config(
                        ResolverConfig::from_name_servers(vec![server]),
                        TokioRuntimeProvider::default(),
                    );
                    builder.options_mut().use_hosts_file = ResolveHosts::Never;
                    Ok(builder)
                }
            };
            made.and_then(|mut builder| {
                builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                builder.build()
            })
            .map_err(|e| {
                let reason = format!("no DNS configuration: {e}");
                tracing::warn!("outbound HTTP can only reach IP addresses: {reason}");
                reason
            })
        });
        made.as_ref().map_err(|reason| dns_error(reason.clone()))
    }

    /// The addresses of `host` (a name, not an IP literal), looked up for `tenant`; a lookup
    /// not done by `until` fails with `DNS-timeout`.
    pub async fn lookup(&self, tenant: &Arc<str>, host: &str, until: Instant) -> Result<Vec<IpAddr>, Error> {
        let resolver = self.resolver()?;
        let tenant_slots = self.tenant_slots(tenant);
        let lookup = async {
            let _slot = tenant_slots.slots.acquire().await.map_err(|_closed| Error::DnsTimeout)?;
            resolver.lookup_ip(host).await.map_err(lookup_error)
        };
        let found = tokio::time::timeout_at(until.into(), lookup).await.map_err(|_elapsed| Error::DnsTimeout)??;
        let addresses: Vec<IpAddr> = found.iter().collect();
        if addresses.is_empty() {
            return Err(dns_error(format!("`{host}` has no address")));
        }
        Ok(addresses)
    }

    fn tenant_slots<'a>(&'a self, tenant: &'a Arc<str>) -> TenantSlots<'a> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let slots = tenants.entry(tenant.clone()).or_insert_with(|| Arc::new(Semaphore::new(TENANT_LOOKUPS))).clone();
        TenantSlots { resolver: self, tenant, slots }
    }
}

/// A tenant's lookup slots, held while one of its lookups is in flight (or waits for a slot).
/// The last one dropped takes the tenant out of the map, which so only holds tenants with
/// lookups in flight.
struct TenantSlots<'a> {
    resolver: &'a Resolver,
    tenant: &'a Arc<str>,
    slots: Arc<Semaphore>,
}

impl Drop for TenantSlots<'_> {
    fn drop(&mut self) {
        let mut tenants = self.resolver.tenants.lock().unwrap_or_else(|p| p.into_inner());
        // The map's and this one: no other lookup of the tenant holds them.
        if Arc::strong_count(&self.slots) == 2 && tenants.get(self.tenant).is_some_and(|s| Arc::ptr_eq(s, &self.slots))
        {
            tenants.remove(self.tenant);
        }
    }
}

fn dns_error(rcode: String) -> Error {
    Error::DnsError { rcode: Some(rcode), info_code: None }
}

fn lookup_error(error: NetError) -> Error {
    match error {
        NetError::Timeout => Error::DnsTimeout,
        NetError::Dns(DnsError::NoRecordsFound(none)) => dns_error(none.response_code.to_string()),
        NetError::Dns(DnsError::ResponseCode(code)) => dns_error(code.to_string()),
        other => dns_error(other.to_string()),
    }
}

#[cfg(all(test, feature = "wa-sim"))]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    /// A DNS server that never answers; it records the name of every query it receives.
    async fn silent_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let names = Arc::new(Mutex::new(Vec::new()));
        let heard = names.clone();
        tokio::spawn(async move {
            let mut packet = [0u8; 512];
            while let Ok((n, _)) = socket.recv_from(&mut packet).await {
                // The question's name: length-prefixed labels after the 12-byte header.
                let (mut at, mut labels) = (12, Vec::new());
                while at < n && packet[at] != 0 {
                    let len = usize::from(packet[at]);
                    labels.push(String::from_utf8_lossy(&packet[at + 1..(at + 1 + len).min(n)]).to_lowercase());
                    at += 1 + len;
                }
                heard.lock().unwrap().push(labels.join("."));
            }
        });
        (address, names)
    }

    #[tokio::test]
    async fn lookups_in_flight_are_capped_per_tenant_and_no_tenant_waits_for_the_others() {
        let (server, names) = silent_server().await;
        let resolver = Arc::new(Resolver::with_server(server));
        let until = Instant::now() + Duration::from_secs(3);
        // Five tenants with 80 lookups each: 64 of each tenant's are in flight, whatever the
        // other four have in flight (a process-wide cap of 256 once let four tenants stall a fifth).
        let mut lookups = tokio::task::JoinSet::new();
        for t in 0..5 {
            let tenant: Arc<str> = format!("t{t}").into();
            for n in 0..80 {
                let (resolver, tenant) = (resolver.clone(), tenant.clone());
                lookups.spawn(async move { resolver.lookup(&tenant, &format!("n{n}.t{t}.test"), until).await });
            }
        }
        // Until every tenant's 64 have reached the server, or shortly before the lookups end.
        let queried = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let queried: HashSet<String> = names.lock().unwrap().iter().cloned().collect();
            if queried.len() >= 5 * TENANT_LOOKUPS || Instant::now() + Duration::from_millis(500) >= until {
                break queried;
            }
        };
        for t in 0..5 {
            let of_tenant = queried.iter().filter(|name| name.ends_with(&format!(".t{t}.test"))).count();
            assert_eq!(of_tenant, TENANT_LOOKUPS, "tenant t{t}'s lookups in flight");
        }
        while let Some(result) = lookups.join_next().await {
            assert!(matches!(result.unwrap(), Err(Error::DnsTimeout)));
        }
        assert!(Instant::now() < until + Duration::from_millis(500), "every lookup ended at its time");
        assert!(resolver.tenants.lock().unwrap().is_empty(), "no tenant's slots are left behind");
    }
}

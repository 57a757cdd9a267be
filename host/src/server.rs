//! The listeners: accept connections, speak HTTP/1.1 or HTTP/2 on them, and hand every request
//! to a [`Handler`] — the [`Gateway`](crate::Gateway) on the API listener, the
//! admin API on the admin listener — and the open-files limit they and the
//! device sessions need.
//!
//! A connection costs a file descriptor and buffers, so what a client can hold is bounded
//! before any request is read ([`Connections`]): how many connections are open at once, in all
//! and from one client address (an excess connection is closed as soon as it is accepted);
//! how long a client may take to send a request's headers and its body; how long a connection
//! may stay idle; how large a header block may be, and how many requests an HTTP/2 connection
//! may have in flight.

pub mod connections;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::body::ResponseBody;
use crate::config::Connections;
use crate::tenancy::admission::ClientAddr;
use connections::{Activity, ConnectionGate, TimedBody};

/// How long in-flight requests get to finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The request body handlers read: the connection's body, failing with
/// [`BodyTimeout`](connections::BodyTimeout) when the client takes longer than
/// `body_read_timeout_ms` to send it.
pub type RequestBody = TimedBody<Incoming>;

/// Something that answers HTTP requests; never fails (errors are responses). The client's
/// address is in the request's extensions as a [`ClientAddr`].
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request<RequestBody>) -> impl Future<Output = Response<ResponseBody>> + Send;
}

impl Handler for crate::Gateway {
    fn handle(&self, request: Request<RequestBody>) -> impl Future<Output = Response<ResponseBody>> + Send {
        crate::Gateway::handle(self, request)
    }
}

/// Serves `handler` on `listener` under `limits` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish for up to [`DRAIN_TIMEOUT`].
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Connections,
    shutdown: impl Future<Output = ()>,
) {
    let gate = Arc::new(ConnectionGate::new(limits.max_connections, limits.max_connections_per_client));
    let builder = Arc::new(http_builder(&limits));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Refused early: before a task, a buffer or a byte of the request.
        let Some(pass) = gate.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many open connections");
            continue;
        };
        // A response's frames go out as they are written, not held back for the client's
        // acknowledgement of the last ones (Nagle's algorithm against delayed ACKs: tens of
        // milliseconds per HTTP/2 exchange).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "TCP_NODELAY not set: {e}");
        }
        let connection = Connection { builder: builder.clone(), limits, stopping: stopping.clone() };
        let handler = handler.clone();
        tokio::spawn(async move {
            connection.run(stream, peer, handler).await;
            drop(pass);
        });
    }
    let _ = stop.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, gate.drained()).await.is_err() {
        tracing::warn!("some connections were still busy after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// HTTP/1.1 and HTTP/2 (by prior knowledge, as behind a proxy) with the limits' timeouts and
/// sizes.
fn http_builder(limits: &Connections) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // Pings find peers that went away without closing.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// One accepted connection and what it runs under.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Connections,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection's requests until the client closes it, it stays idle for
    /// `idle_timeout_ms`, or the listener shuts down (then in-flight requests finish first).
    async fn run<H: Handler>(mut self, stream: TcpStream, peer: SocketAddr, handler: Arc<H>) {
        let activity = Arc::new(Activity::default());
        let body_timeout = Duration::from_millis(self.limits.body_read_timeout_ms);
        let service = {
            let activity = activity.clone();
            service_fn(move |request: Request<Incoming>| {
                let handler = handler.clone();
                let busy = activity.begin();
                async move {
                    let mut request = request.map(|body| TimedBody::new(body, body_timeout));
                    request.extensions_mut().insert(ClientAddr(peer.ip()));
                    let response = handler.handle(request).await;
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let header_timeout = Duration::from_millis(self.limits.header_read_timeout_ms);
        if !speaks_http(&stream, header_timeout).await {
            tracing::debug!(%peer, "closing a connection that sent no request within {header_timeout:?}");
            return;
        }
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let idle = Duration::from_millis(self.limits.idle_timeout_ms);
        let mut closing = false;
        loop {
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                _ = self.stopping.wait_for(|stop| *stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = activity.idle_for(idle), if !closing => {
                    tracing::debug!(%peer, "closing a connection idle for {idle:?}");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Whether the client, within `timeout`, sends enough for the HTTP version to be known: the
/// first bytes of an HTTP/1.1 request, or HTTP/2's whole preface. hyper's header-read timer
/// starts only after that, so without this a client that sends nothing (or half a preface)
/// would hold its connection until the idle timeout.
async fn speaks_http(stream: &TcpStream, timeout: Duration) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let known = async {
        let mut start = [0u8; PREFACE.len()];
        loop {
            let seen = match stream.peek(&mut start).await {
                Ok(0) | Err(_) => return false,
                Ok(seen) => seen,
            };
            if seen == PREFACE.len() || start[..seen] != PREFACE[..seen] {
                return true;
            }
            // Part of the preface: peek again once more may have arrived.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(timeout, known).await.unwrap_or(false)
}

/// Lifts the process's soft limit on open files (often 1,024) to its hard limit: every device
/// holds a WhatsApp connection and its store's files open, every client a socket. Returns the
/// soft limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let raised = super::raise_open_files_limit().expect("the limit can be raised");
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(soft, raised, "the limit in force is the one answered");
        assert_eq!(soft, hard, "raised to the hard limit");
    }
}

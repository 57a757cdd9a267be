//! Sending a checked request: to the addresses the host resolved and checked, never to a
//! name (which would be resolved again, and could answer differently), with the request's
//! host name for TLS (SNI and certificate check) and in its `Host` header.
//!
//! This is wasmtime-wasi-http's `default_send_request` with the connection made to given
//! addresses: the same rustls set-up and roots, HTTP/1.1 over hyper, and the request options'
//! timeouts (connect — which here bounds the TLS handshake too —, first byte, between bytes;
//! 600 s each when unset). Redirects are not
//! followed: a component that follows one sends a new request, checked like any other.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What a sent request yields: the response, and a future that finishes the connection's I/O
/// (its error, if any, reaches the component).
pub type Sent = (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>);

/// How long each step may take when the request options do not say (wasmtime's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// TLS for requests to `https://` URLs: webpki's roots, ring, TLS 1.2 and 1.3.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Sends `request` over a connection to the first of `addresses` that accepts one, through
/// TLS for `server_name` when `tls` is given.
pub async fn send(
    mut request: http::Request<WasiBody>,
    addresses: &[SocketAddr],
    tls: Option<(ServerName<'static>, Arc<rustls::ClientConfig>)>,
    options: Option<RequestOptions>,
) -> Result<Sent, Error> {
    let timeout =
        |pick: fn(&RequestOptions) -> Option<Duration>| options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT);
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);
    let between_bytes_timeout = timeout(|o| o.between_bytes_timeout);

    // Each address in turn, as `TcpStream::connect` does; a slice of addresses is never looked up.
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addresses)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_elapsed) => return Err(Error::ConnectionTimeout),
    };
    let stream: Box<dyn Stream> = match tls {
        Some((server_name, config)) => {
            let handshake = tokio_rustls::TlsConnector::from(config).connect(server_name, stream);
            match tokio::time::timeout(connect_timeout, handshake).await {
                Ok(stream) => Box::new(stream.map_err(Error::Tls)?),
                Err(_elapsed) => return Err(Error::ConnectionTimeout),
            }
        }
        None => Box::new(stream),
    };
    let (mut sender, connection) =
        tokio::time::timeout(connect_timeout, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
            .await
            .map_err(|_elapsed| Error::ConnectionTimeout)??;

    // The request line carries only the path: the scheme and authority are for proxies.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;

    let send = async move {
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_elapsed| Error::ConnectionReadTimeout)??;
        // tokio panics on a zero interval: 1 ns is as good as zero.
        let mut between_bytes = tokio::time::interval(between_bytes_timeout.max(Duration::from_nanos(1)));
        between_bytes.reset();
        Ok::<_, Error>(response.map(|incoming| TimedBody { incoming, between_bytes }))
    };
    // Wait for the response while driving the connection's I/O.
    let mut send = pin!(send);
    let mut connection = Some(connection);
    let response = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(driving) = connection.as_mut() else { return Poll::Pending };
            let driven = ready!(Pin::new(driving).poll(cx));
            connection = None;
            match driven {
                Ok(()) => send.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;
    let io = async move {
        match connection {
            None => Ok(()),
            Some(connection) => {
                connection.await.map_err(|e| if e.is_timeout() { Error::HttpResponseTimeout } else { e.into() })
            }
        }
    };
    let response = response.map(http_body_util::BodyExt::boxed_unsync);
    Ok((response, Box::new(io)))
}

/// A response body that fails with `connection-read-timeout` when no frame arrives within the
/// between-bytes timeout.
struct TimedBody {
    incoming: Incoming,
    between_bytes: tokio::time::Interval,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(if e.is_timeout() { Error::HttpResponseTimeout } else { Error::from(e) })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.between_bytes.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.between_bytes.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

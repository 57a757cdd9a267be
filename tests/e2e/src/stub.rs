//! A stub HTTP service on loopback, for components' outbound calls.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `body` (as JSON, status 200) to every request on a loopback port; returns the port.
pub async fn serve(body: &'static str) -> u16 {
    listen(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, body).await.expect("a loopback port").port
}

/// A stub listening on one address, counting the connections it accepted.
pub struct Stub {
    /// The port it listens on.
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl Stub {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Serves `body` (as JSON, status 200) to every request on `ip`:`port` (0: any free port).
pub async fn listen(ip: IpAddr, port: u16, body: &'static str) -> std::io::Result<Stub> {
    listen_answering_after(ip, port, body, Duration::ZERO).await
}

/// Like [`listen`], answering each request `delay` after it arrived. Each connection carries
/// one request (the answers close it), so [`Stub::connections`] counts the requests.
pub async fn listen_answering_after(
    ip: IpAddr,
    port: u16,
    body: &'static str,
    delay: Duration,
) -> std::io::Result<Stub> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await?;
    let port = listener.local_addr()?.port();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                tokio::time::sleep(delay).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    Ok(Stub { port, connections })
}

//! A client's WebSocket, seen as a stream of frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_websockets::{Message, WebSocketStream};

use crate::framing::{FrameError, FrameReader, encode_frame};

/// Why reading or writing the socket failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// WebSocket or TCP failure.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_websockets::Error),
    /// The client broke the framing rules.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// One client connection after the WebSocket upgrade.
pub struct Wire {
    ws: WebSocketStream<TcpStream>,
    reader: FrameReader,
}

impl Wire {
    /// Wraps an upgraded WebSocket.
    pub fn new(ws: WebSocketStream<TcpStream>) -> Self {
        Self { ws, reader: FrameReader::new() }
    }

    /// The next frame body; `Ok(None)` once the client has closed the socket.
    pub async fn recv_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                return Ok(Some(frame));
            }
            match self.ws.next().await {
                None => return Ok(None),
                Some(msg) => {
                    let msg = msg?;
                    if msg.is_close() {
                        return Ok(None);
                    }
                    if msg.is_binary() {
                        self.reader.feed(msg.as_payload());
                    }
                }
            }
        }
    }

    /// Sends one frame body (the length prefix is added here).
    pub async fn send_frame(&mut self, body: &[u8]) -> Result<(), WireError> {
        let framed = encode_frame(body)?;
        self.ws.send(Message::binary(framed)).await?;
        Ok(())
    }

    /// Reads and discards whatever the client still sends until it closes the socket
    /// (or `grace` passes), then closes.
    pub async fn drain_then_close(mut self, grace: Duration) {
        let drain = async { while let Ok(Some(_)) = self.recv_frame().await {} };
        let _ = tokio::time::timeout(grace, drain).await;
        self.close().await;
    }

    /// Closes the TCP connection without a WebSocket close handshake.
    pub async fn close(self) {
        let mut tcp = self.ws.into_inner();
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tcp).await;
    }
}

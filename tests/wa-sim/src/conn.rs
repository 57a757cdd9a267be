//! One client connection: WebSocket upgrade, Noise handshake, login, then the stanza
//! loop until either side closes.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use wacore_binary::Node;
use waproto::whatsapp as wa;

use crate::handshake::{self, HandshakeError};
use crate::hub::{ConnId, DeviceAddr, Outbound};
use crate::noise::{CipherError, Transport};
use crate::pairing;
use crate::sim::Shared;
use crate::stanza::{self, Ctx, login};
use crate::wire::{Wire, WireError};

/// The only WebSocket path the sim serves.
pub const WS_PATH: &str = "/ws/chat";

/// How long a connection stays open after a final stanza (stream error, failure) so
/// the client reads it before the socket goes away; closing at once with unread client
/// data in the buffer resets the connection and the client may never see the stanza.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("websocket upgrade: {0}")]
    Upgrade(#[from] tokio_websockets::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Cipher(#[from] CipherError),
}

/// Serves one accepted TCP connection to the end; errors are logged, never raised.
pub async fn serve(shared: Arc<Shared>, tcp: TcpStream) {
    if let Err(e) = run(shared, tcp).await {
        tracing::debug!("connection ended: {e}");
    }
}

async fn run(shared: Arc<Shared>, tcp: TcpStream) -> Result<(), ConnError> {
    let (request, ws) = tokio_websockets::ServerBuilder::new().accept(tcp).await?;
    let mut wire = Wire::new(ws);
    if request.uri().path() != WS_PATH {
        tracing::warn!("websocket on unexpected path {}", request.uri().path());
        wire.close().await;
        return Ok(());
    }
    let done = handshake::respond(&mut wire, &shared.noise).await?;
    shared.handshakes.record(done.pattern);
    let mut transport = done.transport;
    let device = login_device(&done.payload);
    tracing::debug!(?device, pattern = ?done.pattern, "handshake complete");

    let account = device.as_ref().and_then(|d| shared.world.account_by_phone(&d.phone));
    if let Some(d) = &device
        && (account.is_none() || shared.hub.is_removed(d))
    {
        if account.is_none() {
            tracing::warn!("{}:{} tried to log in, but {} is not an account of the world", d.phone, d.device, d.phone);
        }
        send(&mut wire, &mut transport, &login::failure_logged_out()).await?;
        wire.drain_then_close(GOODBYE_GRACE).await;
        return Ok(());
    }

    if let Some(left) = device.as_ref().and_then(|d| shared.faults.ban_left(&d.phone)) {
        // Whole seconds, rounded up: a ban never looks over before it is.
        let expire = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        send(&mut wire, &mut transport, &login::failure_temp_banned(expire)).await?;
        wire.drain_then_close(GOODBYE_GRACE).await;
        return Ok(());
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn = shared.hub.register(tx.clone(), device.clone());
    let _registration = Registration { shared: shared.clone(), conn };
    let greeting = match account {
        Some(account) => login::success(account),
        None => pairing::pair_device(&shared, conn),
    };
    send(&mut wire, &mut transport, &greeting).await?;
    if let Some(d) = &device {
        if let Some(share) = shared.hub.unconfirmed_key_share(d) {
            send(&mut wire, &mut transport, &share).await?;
        }
        if shared.hub.unused_pre_keys(d) == 0 && !shared.hub.owes_key_share(d) {
            send(&mut wire, &mut transport, &login::pre_keys_low()).await?;
        }
    }

    let ctx = Ctx { shared: shared.clone(), conn, device };
    loop {
        tokio::select! {
            frame = wire.recv_frame() => {
                let Some(frame) = frame? else { break };
                let stanza = transport.open(frame)?;
                let answers = stanza::handle(&ctx, &stanza).await;
                let latency = shared.faults.latency();
                if stanza.tag == "iq" && !latency.is_zero() && !answers.is_empty() {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(latency).await;
                        for a in answers {
                            let _ = tx.send(Outbound::Node(a));
                        }
                    });
                } else {
                    for a in &answers {
                        send(&mut wire, &mut transport, a).await?;
                    }
                }
            }
            Some(out) = rx.recv() => match out {
                Outbound::Node(n) => send(&mut wire, &mut transport, &n).await?,
                Outbound::Final(n) => {
                    send(&mut wire, &mut transport, &n).await?;
                    wire.drain_then_close(GOODBYE_GRACE).await;
                    return Ok(());
                }
                Outbound::Close => break,
            },
        }
    }
    wire.close().await;
    Ok(())
}

async fn send(wire: &mut Wire, transport: &mut Transport, node: &Node) -> Result<(), ConnError> {
    let frame = transport.seal(node)?;
    wire.send_frame(&frame).await?;
    Ok(())
}

/// The device a login payload names; `None` for a registration (unpaired client).
fn login_device(payload: &wa::ClientPayload) -> Option<DeviceAddr> {
    let phone = payload.username?;
    let device = u16::try_from(payload.device.unwrap_or(0)).ok()?;
    Some(DeviceAddr { phone: phone.to_string(), device })
}

/// Removes the connection from the hub when the task ends, however it ends.
struct Registration {
    shared: Arc<Shared>,
    conn: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.hub.unregister(self.conn);
    }
}

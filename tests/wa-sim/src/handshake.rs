//! Noise responder: XX for first contact, IK when the client already knows our static
//! key, and XX-fallback when an IK attempt used a static key we do not own.

use wacore::libsignal::protocol::KeyPair;
use wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER};
use wacore_noise::NoiseHandshake;
use waproto::buffa::{self, Message as _};
use waproto::whatsapp as wa;

use crate::noise::{NoiseIdentity, Transport};
use crate::wire::{Wire, WireError};

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed or closed mid-handshake.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The client closed the socket mid-handshake.
    #[error("client closed the connection during the handshake")]
    Closed,
    /// A handshake message did not decode.
    #[error("bad handshake message: {0}")]
    Decode(String),
    /// A required field was missing.
    #[error("handshake message lacks {0}")]
    Missing(&'static str),
    /// Noise crypto failed (bad key, bad tag).
    #[error("noise: {0}")]
    Noise(#[from] wacore_noise::HandshakeError),
}

/// Which pattern the handshake ended up using.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Full handshake.
    Xx,
    /// Resumed handshake with the cached server key.
    Ik,
    /// IK rejected, recovered with XX-fallback.
    XxFallback,
}

/// An authenticated client: its transport ciphers and login payload.
pub struct Established {
    /// Frame ciphers.
    pub transport: Transport,
    /// The decoded `ClientPayload` (login or registration).
    pub payload: wa::ClientPayload,
    /// The pattern used.
    pub pattern: Pattern,
}

/// Runs the responder side of the handshake on a fresh connection.
pub async fn respond(wire: &mut Wire, id: &NoiseIdentity) -> Result<Established, HandshakeError> {
    let hello = recv_message(wire).await?;
    let hello = hello.client_hello.into_option().ok_or(HandshakeError::Missing("client_hello"))?;
    let client_eph = key32(hello.ephemeral, "client ephemeral")?;
    match (hello.r#static, hello.payload) {
        (Some(enc_static), Some(enc_payload)) => match ik(wire, id, &client_eph, &enc_static, &enc_payload).await {
            Ok(done) => Ok(done),
            Err(HandshakeError::Noise(e)) => {
                tracing::info!("IK with an unknown server key ({e}); answering with XX-fallback");
                xx(wire, id, &client_eph, NOISE_PATTERN_XXFALLBACK, Pattern::XxFallback).await
            }
            Err(e) => Err(e),
        },
        _ => xx(wire, id, &client_eph, NOISE_PATTERN_XX, Pattern::Xx).await,
    }
}

async fn xx(
    wire: &mut Wire,
    id: &NoiseIdentity,
    client_eph: &[u8; 32],
    pattern_name: &str,
    pattern: Pattern,
) -> Result<Established, HandshakeError> {
    let mut noise = NoiseHandshake::new(pattern_name, &WA_CONN_HEADER)?;
    noise.authenticate(client_eph);
    let eph = KeyPair::generate(&mut rand::rng());
    let eph_pub = eph.public_key.public_key_bytes().to_vec();
    noise.authenticate(&eph_pub);
    noise.mix_shared_secret(eph.private_key.serialize(), client_eph)?;
    let enc_static = noise.encrypt(&id.public())?;
    noise.mix_shared_secret(id.static_key.private_key.serialize(), client_eph)?;
    let enc_cert = noise.encrypt(&id.cert_chain)?;
    send_server_hello(wire, eph_pub, Some(enc_static), enc_cert).await?;

    let finish = recv_message(wire).await?;
    let finish = finish.client_finish.into_option().ok_or(HandshakeError::Missing("client_finish"))?;
    let client_static = noise.decrypt(&finish.r#static.ok_or(HandshakeError::Missing("client static"))?)?;
    noise.mix_shared_secret(eph.private_key.serialize(), &client_static)?;
    let payload = noise.decrypt(&finish.payload.ok_or(HandshakeError::Missing("client payload"))?)?;
    established(noise, &payload, pattern)
}

async fn ik(
    wire: &mut Wire,
    id: &NoiseIdentity,
    client_eph: &[u8; 32],
    enc_static: &[u8],
    enc_payload: &[u8],
) -> Result<Established, HandshakeError> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
    noise.authenticate(&id.public());
    noise.authenticate(client_eph);
    noise.mix_shared_secret(id.static_key.private_key.serialize(), client_eph)?;
    let client_static = noise.decrypt(enc_static)?;
    noise.mix_shared_secret(id.static_key.private_key.serialize(), &client_static)?;
    let payload = noise.decrypt(enc_payload)?;

    let eph = KeyPair::generate(&mut rand::rng());
    let eph_pub = eph.public_key.public_key_bytes().to_vec();
    noise.authenticate(&eph_pub);
    noise.mix_shared_secret(eph.private_key.serialize(), client_eph)?;
    noise.mix_shared_secret(eph.private_key.serialize(), &client_static)?;
    let enc_cert = noise.encrypt(&id.cert_chain)?;
    send_server_hello(wire, eph_pub, None, enc_cert).await?;
    established(noise, &payload, Pattern::Ik)
}

fn established(noise: NoiseHandshake, payload: &[u8], pattern: Pattern) -> Result<Established, HandshakeError> {
    let payload = wa::ClientPayload::decode_from_slice(payload).map_err(|e| HandshakeError::Decode(e.to_string()))?;
    let (c2s, s2c) = noise.finish()?;
    Ok(Established { transport: Transport::new(c2s, s2c), payload, pattern })
}

async fn send_server_hello(
    wire: &mut Wire,
    ephemeral: Vec<u8>,
    enc_static: Option<Vec<u8>>,
    enc_cert: Vec<u8>,
) -> Result<(), HandshakeError> {
    let msg = wa::HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral),
            r#static: enc_static,
            payload: Some(enc_cert),
            ..Default::default()
        }),
        ..Default::default()
    };
    wire.send_frame(&msg.encode_to_vec()).await?;
    Ok(())
}

async fn recv_message(wire: &mut Wire) -> Result<wa::HandshakeMessage, HandshakeError> {
    let frame = wire.recv_frame().await?.ok_or(HandshakeError::Closed)?;
    wa::HandshakeMessage::decode_from_slice(&frame).map_err(|e| HandshakeError::Decode(e.to_string()))
}

fn key32(bytes: Option<Vec<u8>>, what: &'static str) -> Result<[u8; 32], HandshakeError> {
    bytes
        .ok_or(HandshakeError::Missing(what))?
        .try_into()
        .map_err(|_| HandshakeError::Decode(format!("{what} is not 32 bytes")))
}

//! The sim's Noise identity and the transport ciphers of an established connection.

use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore_binary::Node;
use wacore_noise::NoiseCipher;

/// Errors of the encrypted transport.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    /// A frame failed authentication.
    #[error("frame decryption failed: {0}")]
    Decrypt(wacore_noise::NoiseError),
    /// Encryption failed (should not happen).
    #[error("frame encryption failed: {0}")]
    Encrypt(wacore_noise::NoiseError),
    /// The decrypted frame is not a valid binary node.
    #[error("bad binary node: {0}")]
    Node(#[from] wacore_binary::BinaryError),
}

/// The sim's long-lived Noise static key and the certificate chain naming it.
pub struct NoiseIdentity {
    /// The static key pair; its public half is the chain's leaf key.
    pub static_key: KeyPair,
    /// A structurally valid (zero-signed) WhatsApp certificate chain for the static key.
    pub cert_chain: Vec<u8>,
}

impl NoiseIdentity {
    /// Uses the given private key, or a fresh random one.
    pub fn new(private: Option<[u8; 32]>) -> Result<Self, wacore::libsignal::protocol::CurveError> {
        let static_key = match private {
            Some(bytes) => KeyPair::try_from(PrivateKey::deserialize(&bytes)?)?,
            None => KeyPair::generate(&mut rand::rng()),
        };
        let cert_chain = wacore_noise::test_util::build_cert_chain_bytes(&static_public(&static_key));
        Ok(Self { static_key, cert_chain })
    }

    /// The static public key (raw 32 bytes).
    pub fn public(&self) -> [u8; 32] {
        static_public(&self.static_key)
    }
}

fn static_public(kp: &KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(kp.public_key.public_key_bytes());
    out
}

/// The two directional ciphers of a connection, with their frame counters.
pub struct Transport {
    read: NoiseCipher,
    write: NoiseCipher,
    read_n: u32,
    write_n: u32,
}

impl Transport {
    /// From the handshake's split: client→server and server→client ciphers.
    pub fn new(client_to_server: NoiseCipher, server_to_client: NoiseCipher) -> Self {
        Self { read: client_to_server, write: server_to_client, read_n: 0, write_n: 0 }
    }

    /// Decrypts and decodes one client frame.
    pub fn open(&mut self, mut frame: Vec<u8>) -> Result<Node, CipherError> {
        self.read.decrypt_in_place_with_counter(self.read_n, &mut frame).map_err(CipherError::Decrypt)?;
        self.read_n = self.read_n.wrapping_add(1);
        let plain = wacore_binary::util::unpack(&frame)?;
        Ok(wacore_binary::marshal::unmarshal_ref(&plain)?.to_owned())
    }

    /// Encodes and encrypts one node for the client.
    pub fn seal(&mut self, node: &Node) -> Result<Vec<u8>, CipherError> {
        let plain = wacore_binary::marshal(node)?;
        let out = self.write.encrypt_with_counter(self.write_n, &plain).map_err(CipherError::Encrypt)?;
        self.write_n = self.write_n.wrapping_add(1);
        Ok(out)
    }
}

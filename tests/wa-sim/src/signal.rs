//! The sim's Signal senders: a primary phone (device 0) encrypting to a client device
//! with the pre-keys that device uploaded (`xmlns="encrypt"`).
//!
//! Every message starts a fresh session (`pkmsg`) with one unused one-time pre-key, so
//! the sim keeps no ratchet state; the client simply replaces its session.

use std::collections::HashMap;

use wacore::libsignal::protocol::{
    self as signal, CiphertextMessage, Direction, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore,
    PreKeyBundle, ProtocolAddress, PublicKey, SessionRecord, SessionStore, SignalProtocolError, UsePQRatchet,
};
use wacore::messages::MessageUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::hub::DeviceAddr;
use crate::node::{self, child_bytes, children};
use crate::phone::Phone;
use crate::world::Account;

/// Result of the Signal library.
pub type SignalResult<T> = Result<T, SignalProtocolError>;

/// The public pre-keys a client device uploaded and the sim has not used yet.
#[derive(Debug, Clone)]
pub struct DeviceKeys {
    registration_id: u32,
    identity: [u8; 32],
    signed_pre_key: (u32, [u8; 32], Vec<u8>),
    pre_keys: Vec<(u32, [u8; 32])>,
}

/// What one new session needs: the device's keys with one one-time pre-key.
#[derive(Debug, Clone)]
pub struct Bundle {
    registration_id: u32,
    identity: [u8; 32],
    signed_pre_key: (u32, [u8; 32], Vec<u8>),
    pre_key: (u32, [u8; 32]),
}

impl DeviceKeys {
    /// Parses a pre-key upload; `None` if it is not one (or is malformed).
    pub fn parse(upload: &Node) -> Option<DeviceKeys> {
        let registration_id = u32::from_be_bytes(child_bytes(upload, "registration")?.try_into().ok()?);
        let identity = child_bytes(upload, "identity")?.try_into().ok()?;
        let skey = upload.get_optional_child("skey")?;
        let pre_keys = children(upload.get_optional_child("list")?)
            .iter()
            .filter_map(|k| Some((id24(child_bytes(k, "id")?)?, child_bytes(k, "value")?.try_into().ok()?)))
            .collect();
        Some(DeviceKeys {
            registration_id,
            identity,
            signed_pre_key: (
                id24(child_bytes(skey, "id")?)?,
                child_bytes(skey, "value")?.try_into().ok()?,
                child_bytes(skey, "signature")?.to_vec(),
            ),
            pre_keys,
        })
    }

    /// Takes in a newer upload: its identity and signed pre-key win, pre-keys add up.
    pub fn merge(&mut self, newer: DeviceKeys) {
        self.registration_id = newer.registration_id;
        self.identity = newer.identity;
        self.signed_pre_key = newer.signed_pre_key;
        self.pre_keys.extend(newer.pre_keys);
    }

    /// One-time pre-keys not used yet.
    pub fn unused(&self) -> usize {
        self.pre_keys.len()
    }

    /// Uses up one one-time pre-key for a new session.
    pub fn take_bundle(&mut self) -> Option<Bundle> {
        let pre_key = self.pre_keys.pop()?;
        Some(Bundle {
            registration_id: self.registration_id,
            identity: self.identity,
            signed_pre_key: self.signed_pre_key.clone(),
            pre_key,
        })
    }
}

fn id24(bytes: &[u8]) -> Option<u32> {
    let b: [u8; 3] = bytes.try_into().ok()?;
    Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
}

/// How a `<message>` presents itself besides its encrypted content.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The stanza id (WhatsApp uses one id for every device of the recipient).
    pub id: &'a str,
    /// The `type` attribute: `text`, `protocol`, …
    pub kind: &'static str,
    /// The sender's push name (`notify`), if the message carries it.
    pub notify: Option<&'a str>,
}

/// A `<message>` from `sender`'s phone to device `to`, carrying `content` encrypted in a
/// new session with `bundle` (one of that device's pre-keys).
pub async fn message(
    sender: &Account,
    to: &DeviceAddr,
    bundle: &Bundle,
    envelope: Envelope<'_>,
    content: &wa::Message,
) -> SignalResult<Node> {
    let phone = Phone::of(sender);
    let mut store = PhoneStore::new(&phone)?;
    let recipient = ProtocolAddress::new(to.phone.as_str(), u32::from(to.device).into());
    let prekey_bundle = PreKeyBundle::new(
        bundle.registration_id,
        u32::from(to.device).into(),
        Some((bundle.pre_key.0.into(), PublicKey::from_djb_public_key_bytes(&bundle.pre_key.1)?)),
        bundle.signed_pre_key.0.into(),
        PublicKey::from_djb_public_key_bytes(&bundle.signed_pre_key.1)?,
        bundle.signed_pre_key.2.clone(),
        IdentityKey::new(PublicKey::from_djb_public_key_bytes(&bundle.identity)?),
    )?;
    let mut sessions = Sessions::default();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    signal::process_prekey_bundle(&recipient, &mut sessions, &mut store, &prekey_bundle, &mut rng, UsePQRatchet::No)
        .await?;
    let plaintext = MessageUtils::pad_message_v2(content.encode_to_vec());
    let ciphertext = signal::message_encrypt(&plaintext, &recipient, &mut sessions, &mut store).await?;
    let (enc_type, bytes) = match &ciphertext {
        CiphertextMessage::PreKeySignalMessage(m) => ("pkmsg", m.serialized().to_vec()),
        CiphertextMessage::SignalMessage(m) => ("msg", m.serialized().to_vec()),
        _ => {
            return Err(SignalProtocolError::InvalidArgument("unexpected ciphertext kind".into()));
        }
    };
    let mut b = NodeBuilder::new("message")
        .attr("from", Jid::pn(sender.phone.as_str()))
        .attr("type", envelope.kind)
        .attr("id", envelope.id)
        .attr("t", node::now().to_string());
    if let Some(name) = envelope.notify {
        b = b.attr("notify", name);
    }
    if sender.phone == to.phone {
        b = b.attr("category", "peer");
    } else {
        // As WhatsApp does for a message addressed by phone number: the sender's LID with it.
        b = b.attr("sender_lid", Jid::lid(sender.lid.as_str()));
    }
    let enc = NodeBuilder::new("enc").attr("v", "2").attr("type", enc_type).bytes(bytes).build();
    Ok(b.children([enc]).build())
}

/// The phone's Signal identity (its account key), trusting every peer.
struct PhoneStore {
    identity: IdentityKeyPair,
    peers: HashMap<ProtocolAddress, IdentityKey>,
}

impl PhoneStore {
    fn new(phone: &Phone) -> SignalResult<Self> {
        let (public, private) = phone.signal_identity()?;
        Ok(Self { identity: IdentityKeyPair::new(IdentityKey::new(public), private), peers: HashMap::new() })
    }
}

#[async_trait::async_trait]
impl IdentityKeyStore for PhoneStore {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.identity.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(1)
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        match self.peers.insert(address.clone(), *identity) {
            Some(old) if old != *identity => Ok(IdentityChange::ReplacedExisting),
            _ => Ok(IdentityChange::NewOrUnchanged),
        }
    }

    async fn is_trusted_identity(&self, _: &ProtocolAddress, _: &IdentityKey, _: Direction) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(self.peers.get(address).copied())
    }
}

/// Sessions of one key-share exchange.
#[derive(Default)]
struct Sessions(HashMap<ProtocolAddress, SessionRecord>);

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        Ok(self.0.get(address).cloned())
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.0.contains_key(address))
    }

    async fn store_session(&mut self, address: &ProtocolAddress, record: SessionRecord) -> SignalResult<()> {
        self.0.insert(address.clone(), record);
        Ok(())
    }
}

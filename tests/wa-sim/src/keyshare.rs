//! The phone shares an app-state sync key with a freshly linked companion, as the real
//! primary does right after pairing. Without it the client waits ~10 s before its
//! critical app-state sync; with it, `Connected` follows the login almost at once.
//!
//! This needs one Signal message from device 0 to the companion: the sim builds a
//! session from the pre-key bundle the companion uploads and encrypts a
//! `protocolMessage{APP_STATE_SYNC_KEY_SHARE}`.

use std::collections::HashMap;

use wacore::libsignal::protocol::{
    self as signal, CiphertextMessage, Direction, IdentityChange, IdentityKey, IdentityKeyPair,
    IdentityKeyStore, PreKeyBundle, ProtocolAddress, PublicKey, SessionRecord, SessionStore,
    SignalProtocolError, UsePQRatchet,
};
use wacore::messages::MessageUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use waproto::buffa::{self, Message as _};
use waproto::whatsapp as wa;

use crate::node::{self, child_bytes};
use crate::phone::Phone;
use crate::world::Account;

type SignalResult<T> = Result<T, SignalProtocolError>;

/// The public half of a companion's pre-keys, as uploaded with `xmlns="encrypt"`.
#[derive(Debug, Clone)]
pub struct UploadedBundle {
    registration_id: u32,
    identity: [u8; 32],
    pre_key: (u32, [u8; 32]),
    signed_pre_key: (u32, [u8; 32], Vec<u8>),
}

impl UploadedBundle {
    /// Parses a pre-key upload; `None` if it is not one (or is malformed).
    pub fn parse(upload: &Node) -> Option<UploadedBundle> {
        let registration_id =
            u32::from_be_bytes(child_bytes(upload, "registration")?.try_into().ok()?);
        let identity = child_bytes(upload, "identity")?.try_into().ok()?;
        let first = upload
            .get_optional_child("list")?
            .get_optional_child("key")?;
        let skey = upload.get_optional_child("skey")?;
        Some(UploadedBundle {
            registration_id,
            identity,
            pre_key: (
                id24(child_bytes(first, "id")?)?,
                child_bytes(first, "value")?.try_into().ok()?,
            ),
            signed_pre_key: (
                id24(child_bytes(skey, "id")?)?,
                child_bytes(skey, "value")?.try_into().ok()?,
                child_bytes(skey, "signature")?.to_vec(),
            ),
        })
    }
}

fn id24(bytes: &[u8]) -> Option<u32> {
    let b: [u8; 3] = bytes.try_into().ok()?;
    Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
}

/// The `<message>` from the account's phone carrying a fresh app-state key to `device`.
pub async fn key_share_message(
    account: &Account,
    device: u16,
    bundle: &UploadedBundle,
) -> SignalResult<Node> {
    let phone = Phone::of(account);
    let mut store = PhoneStore::new(&phone)?;
    let companion = ProtocolAddress::new(&account.phone, u32::from(device).into());
    let prekey_bundle = PreKeyBundle::new(
        bundle.registration_id,
        u32::from(device).into(),
        Some((
            bundle.pre_key.0.into(),
            PublicKey::from_djb_public_key_bytes(&bundle.pre_key.1)?,
        )),
        bundle.signed_pre_key.0.into(),
        PublicKey::from_djb_public_key_bytes(&bundle.signed_pre_key.1)?,
        bundle.signed_pre_key.2.clone(),
        IdentityKey::new(PublicKey::from_djb_public_key_bytes(&bundle.identity)?),
    )?;
    let mut sessions = Sessions::default();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    signal::process_prekey_bundle(
        &companion,
        &mut sessions,
        &mut store,
        &prekey_bundle,
        &mut rng,
        UsePQRatchet::No,
    )
    .await?;
    let plaintext = MessageUtils::pad_message_v2(share(&phone, device).encode_to_vec());
    let ciphertext =
        signal::message_encrypt(&plaintext, &companion, &mut sessions, &mut store).await?;
    let (kind, bytes) = match &ciphertext {
        CiphertextMessage::PreKeySignalMessage(m) => ("pkmsg", m.serialized().to_vec()),
        CiphertextMessage::SignalMessage(m) => ("msg", m.serialized().to_vec()),
        _ => {
            return Err(SignalProtocolError::InvalidArgument(
                "unexpected ciphertext kind".into(),
            ));
        }
    };
    Ok(NodeBuilder::new("message")
        .attr("from", Jid::pn(account.phone.as_str()))
        .attr("type", "protocol")
        .attr("category", "peer")
        .attr("id", node::random_id())
        .attr("t", node::now().to_string())
        .children([NodeBuilder::new("enc")
            .attr("v", "2")
            .attr("type", kind)
            .bytes(bytes)
            .build()])
        .build())
}

/// A `protocolMessage` sharing one random app-state sync key.
fn share(phone: &Phone, device: u16) -> wa::Message {
    let key = wa::message::AppStateSyncKey {
        key_id: buffa::MessageField::some(wa::message::AppStateSyncKeyId {
            key_id: Some(rand::random::<[u8; 6]>().to_vec()),
        }),
        key_data: buffa::MessageField::some(wa::message::AppStateSyncKeyData {
            key_data: Some(rand::random::<[u8; 32]>().to_vec()),
            fingerprint: buffa::MessageField::some(wa::message::AppStateSyncKeyFingerprint {
                raw_id: Some(phone.raw_id()),
                current_index: Some(u32::from(device)),
                device_indexes: vec![0, u32::from(device)],
            }),
            timestamp: Some(i64::try_from(node::now()).unwrap_or(0) * 1000),
        }),
    };
    wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            app_state_sync_key_share: buffa::MessageField::some(
                wa::message::AppStateSyncKeyShare { keys: vec![key] },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The phone's Signal identity (its account key), trusting every peer.
struct PhoneStore {
    identity: IdentityKeyPair,
    peers: HashMap<ProtocolAddress, IdentityKey>,
}

impl PhoneStore {
    fn new(phone: &Phone) -> SignalResult<Self> {
        let (public, private) = phone.signal_identity()?;
        Ok(Self {
            identity: IdentityKeyPair::new(IdentityKey::new(public), private),
            peers: HashMap::new(),
        })
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

    async fn is_trusted_identity(
        &self,
        _: &ProtocolAddress,
        _: &IdentityKey,
        _: Direction,
    ) -> SignalResult<bool> {
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

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SignalResult<()> {
        self.0.insert(address.clone(), record);
        Ok(())
    }
}

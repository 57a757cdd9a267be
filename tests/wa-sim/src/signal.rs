//! WhatsApp's use of Signal on the sim's side: the pre-keys client devices upload
//! (`xmlns="encrypt"`), the `<message>` stanzas simulated devices encrypt to client
//! devices, and the `<enc>` payloads client devices encrypt to simulated ones.
//!
//! Every message to a client device starts a fresh session with one unused one-time
//! pre-key the device uploaded, so the client simply replaces its session; the sim keeps
//! it (and the older ones) to decrypt what the client answers on it.

use wacore::libsignal::protocol::{
    CiphertextMessage, IdentityKey, PreKeyBundle, PreKeySignalMessage, ProtocolAddress, PublicKey, SignalMessage,
    SignalProtocolError,
};
use wacore::messages::MessageUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::hub::DeviceAddr;
use crate::node::{self, child_bytes, children, content_bytes};
use crate::sim_device::SimDevice;
use crate::world::{Account, Group};

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

/// What one new session with a device needs: its keys with one one-time pre-key.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The device's Signal registration id.
    pub registration_id: u32,
    /// The device's identity public key.
    pub identity: [u8; 32],
    /// The signed pre-key: id, public key, signature by the identity.
    pub signed_pre_key: (u32, [u8; 32], Vec<u8>),
    /// The one-time pre-key: id and public key.
    pub pre_key: (u32, [u8; 32]),
    /// A companion's `ADVSignedDeviceIdentity` (bytes), vouching for its identity.
    pub device_identity: Option<Vec<u8>>,
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
            device_identity: None,
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

impl Bundle {
    /// The bundle as the Signal library takes it, for device `device`.
    pub fn to_signal(&self, device: u16) -> SignalResult<PreKeyBundle> {
        PreKeyBundle::new(
            self.registration_id,
            u32::from(device).into(),
            Some((self.pre_key.0.into(), PublicKey::from_djb_public_key_bytes(&self.pre_key.1)?)),
            self.signed_pre_key.0.into(),
            PublicKey::from_djb_public_key_bytes(&self.signed_pre_key.1)?,
            self.signed_pre_key.2.clone(),
            IdentityKey::new(PublicKey::from_djb_public_key_bytes(&self.identity)?),
        )
    }

    /// The `<user jid>` entry of a pre-key fetch answer carrying this bundle.
    pub fn user_node(&self, jid: Jid) -> Node {
        let id = |id: u32| NodeBuilder::new("id").bytes(id.to_be_bytes()[1..].to_vec()).build();
        let value = |key: &[u8; 32]| NodeBuilder::new("value").bytes(key.to_vec()).build();
        let (skey_id, skey, signature) = &self.signed_pre_key;
        let mut parts = vec![
            NodeBuilder::new("registration").bytes(self.registration_id.to_be_bytes().to_vec()).build(),
            NodeBuilder::new("type").bytes(vec![5]).build(),
            NodeBuilder::new("identity").bytes(self.identity.to_vec()).build(),
            NodeBuilder::new("key").children([id(self.pre_key.0), value(&self.pre_key.1)]).build(),
            NodeBuilder::new("skey")
                .children([id(*skey_id), value(skey), NodeBuilder::new("signature").bytes(signature.clone()).build()])
                .build(),
        ];
        if let Some(device_identity) = &self.device_identity {
            parts.push(NodeBuilder::new("device-identity").bytes(device_identity.clone()).build());
        }
        NodeBuilder::new("user").attr("jid", jid).children(parts).build()
    }
}

/// A `<message>` from `sender`'s phone (`phone`, its device 0) to client device `to`,
/// carrying `content` encrypted in a new session with `bundle` (one of that device's
/// pre-keys).
pub async fn message(
    phone: &mut SimDevice,
    sender: &Account,
    to: &DeviceAddr,
    bundle: &Bundle,
    envelope: Envelope<'_>,
    content: &wa::Message,
) -> SignalResult<Node> {
    let enc = pairwise(phone, to, bundle, content).await?;
    let own = sender.phone == to.phone;
    let from =
        if sender.privacy.lid_only && !own { Jid::lid(sender.lid.as_str()) } else { Jid::pn(sender.phone.as_str()) };
    let mut b = NodeBuilder::new("message")
        .attr("from", from)
        .attr("type", envelope.kind)
        .attr("id", envelope.id)
        .attr("t", node::now().to_string());
    if let Some(name) = envelope.notify {
        b = b.attr("notify", name);
    }
    if own {
        b = b.attr("category", "peer");
    } else if !sender.privacy.lid_only {
        // As WhatsApp does for a message addressed by phone number: the sender's LID with it.
        b = b.attr("sender_lid", Jid::lid(sender.lid.as_str()));
    }
    Ok(b.children([enc]).build())
}

/// A `<message>` from `sender`'s phone to client device `to` in `group`: the sender key
/// (`distribution`, encrypted pairwise in a new session with `bundle`) and the text under it
/// (`skmsg`, the same bytes for every member's device).
pub async fn group_message(
    phone: &mut SimDevice,
    (sender, group): (&Account, &Group),
    to: &DeviceAddr,
    bundle: &Bundle,
    envelope: Envelope<'_>,
    (distribution, skmsg): (&wa::Message, &[u8]),
) -> SignalResult<Node> {
    let enc = pairwise(phone, to, bundle, distribution).await?;
    let participant = group.address_of(sender);
    let alt = if group.lid_addressed {
        ("participant_pn", Jid::pn(sender.phone.as_str()))
    } else {
        ("participant_lid", Jid::lid(sender.lid.as_str()))
    };
    let mut b = NodeBuilder::new("message")
        .attr("from", group.jid())
        .attr("participant", participant)
        .attr("addressing_mode", if group.lid_addressed { "lid" } else { "pn" })
        .attr("type", envelope.kind)
        .attr("id", envelope.id)
        .attr("t", node::now().to_string());
    if !sender.privacy.lid_only {
        b = b.attr(alt.0, alt.1);
    }
    if let Some(name) = envelope.notify {
        b = b.attr("notify", name);
    }
    let sk = NodeBuilder::new("enc").attr("v", "2").attr("type", "skmsg").bytes(skmsg.to_vec()).build();
    Ok(b.children([enc, sk]).build())
}

/// `content` encrypted for client device `to` in a new session with `bundle`: its `<enc>`.
async fn pairwise(
    phone: &mut SimDevice,
    to: &DeviceAddr,
    bundle: &Bundle,
    content: &wa::Message,
) -> SignalResult<Node> {
    let plaintext = MessageUtils::pad_message_v2(content.encode_to_vec());
    let ciphertext = phone.encrypt(&address(to), &bundle.to_signal(to.device)?, &plaintext).await?;
    let (enc_type, bytes) = match &ciphertext {
        CiphertextMessage::PreKeySignalMessage(m) => ("pkmsg", m.serialized().to_vec()),
        CiphertextMessage::SignalMessage(m) => ("msg", m.serialized().to_vec()),
        _ => {
            return Err(SignalProtocolError::InvalidArgument("unexpected ciphertext kind".into()));
        }
    };
    Ok(NodeBuilder::new("enc").attr("v", "2").attr("type", enc_type).bytes(bytes).build())
}

/// Why an `<enc>` from a client device could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not a pairwise Signal message (`pkmsg` or `msg`), or no bytes.
    #[error("cannot open <enc type={0:?}>")]
    Unsupported(String),
    /// The Signal library refused it.
    #[error(transparent)]
    Signal(#[from] SignalProtocolError),
    /// It decrypted to something that is not a padded `wa::Message`.
    #[error("undecodable plaintext: {0}")]
    Plaintext(String),
}

/// Decrypts an `<enc>` (`pkmsg` or `msg`) that client device `from` encrypted for
/// `device`, and decodes the message in it.
pub async fn open(device: &mut SimDevice, from: &DeviceAddr, enc: &Node) -> Result<wa::Message, OpenError> {
    let kind = node::attr(enc, "type").unwrap_or_default();
    let bytes = content_bytes(enc).ok_or_else(|| OpenError::Unsupported(kind.clone()))?;
    let ciphertext = match kind.as_str() {
        "pkmsg" => CiphertextMessage::PreKeySignalMessage(PreKeySignalMessage::try_from(bytes)?),
        "msg" => CiphertextMessage::SignalMessage(SignalMessage::try_from(bytes)?),
        _ => return Err(OpenError::Unsupported(kind)),
    };
    let padded = device.decrypt(&address(from), &ciphertext).await?;
    let version = node::attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2);
    wacore::messages::decode_plaintext(&padded, version).map_err(|e| OpenError::Plaintext(e.to_string()))
}

/// Decrypts the `<enc type="skmsg">` that client device `from` encrypted for `group` (its JID) under
/// the sender key it distributed to `device` before, and decodes the message in it.
pub async fn open_group(
    device: &mut SimDevice,
    group: &str,
    from: &DeviceAddr,
    skmsg: &Node,
) -> Result<wa::Message, OpenError> {
    let bytes = content_bytes(skmsg).ok_or_else(|| OpenError::Unsupported("skmsg".into()))?;
    let padded = device.group_decrypt(group, &address(from), bytes).await?;
    let version = node::attr(skmsg, "v").and_then(|v| v.parse().ok()).unwrap_or(2);
    wacore::messages::decode_plaintext(&padded, version).map_err(|e| OpenError::Plaintext(e.to_string()))
}

/// Takes the sender key for `group` that client device `from` distributed to `device` in
/// `message` (the pairwise content of a group send), if it holds one.
pub async fn take_sender_key(
    device: &mut SimDevice,
    group: &str,
    from: &DeviceAddr,
    message: &wa::Message,
) -> SignalResult<()> {
    let distribution = message.sender_key_distribution_message.as_option();
    match distribution.and_then(|d| d.axolotl_sender_key_distribution_message.as_deref()) {
        Some(bytes) => device.take_sender_key(group, &address(from), bytes).await,
        None => Ok(()),
    }
}

/// The Signal address of a client device, as simulated devices name it.
pub fn address(device: &DeviceAddr) -> ProtocolAddress {
    ProtocolAddress::new(device.phone.as_str(), u32::from(device.device).into())
}

//! The Signal state of the devices the sim plays for world accounts: every account's
//! phone (device 0) and the companions the world lists for it, unless a real client
//! logged in as that companion.
//!
//! Keys derive from the account's phone number and the device id (the phone's identity
//! is its account key), so a restarted sim hands out the same identities. Sessions with
//! client devices are kept for the sim's lifetime: a client that established one sends
//! `msg` (not `pkmsg`) on it, and the sim's answers continue it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Mutex as AsyncMutex;
use wacore::libsignal::crypto::hmac_sha256;
use wacore::libsignal::protocol::{
    self as signal, CiphertextMessage, Direction, GenericSignedPreKey, IdentityChange, IdentityKey, IdentityKeyPair,
    IdentityKeyStore, KeyPair, PreKeyBundle, PreKeyId, PreKeyRecord, PreKeyStore, PrivateKey, ProtocolAddress,
    SenderKeyDistributionMessage, SenderKeyName, SenderKeyRecord, SenderKeyStore, SessionRecord, SessionStore,
    SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore, Timestamp, UsePQRatchet,
};
use waproto::buffa::Message as _;

use crate::hub::{DeviceAddr, Hub, lock};
use crate::phone::Phone;
use crate::signal::{Bundle, SignalResult};
use crate::world::Account;

/// The id of every simulated device's signed pre-key (the sim never rotates it).
const SIGNED_PRE_KEY_ID: u32 = 1;
/// Prefix of a companion's signature over its device identity (ADV).
const DEVICE_SIGNATURE_PREFIX: [u8; 2] = [6, 1];

/// Whether the sim plays device `device` of the account: its phone always, a companion
/// the world lists unless a real client logged in (or was linked) as that device.
pub fn is_simulated(account: &Account, device: u16, hub: &Hub) -> bool {
    device == 0 || (account.devices.contains(&device) && !hub.linked_devices(&account.phone).contains(&device))
}

/// Every simulated device the sim has used so far, each behind its own lock (a
/// decryption or encryption holds it across the Signal calls).
#[derive(Default)]
pub struct SimDevices {
    devices: Mutex<HashMap<DeviceAddr, Arc<AsyncMutex<SimDevice>>>>,
    /// One-time pre-key ids are handed out once, across all devices.
    last_pre_key: AtomicU32,
}

impl SimDevices {
    /// Device `device` of the account, created on first use.
    pub fn get(&self, account: &Account, device: u16) -> SignalResult<Arc<AsyncMutex<SimDevice>>> {
        let addr = DeviceAddr { phone: account.phone.clone(), device };
        let mut devices = lock(&self.devices);
        if let Some(known) = devices.get(&addr) {
            return Ok(known.clone());
        }
        let created = Arc::new(AsyncMutex::new(SimDevice::new(account, device)?));
        devices.insert(addr, created.clone());
        Ok(created)
    }

    /// The public keys a client needs to start a session with the device, with a
    /// one-time pre-key nobody got before.
    pub async fn bundle(&self, account: &Account, device: u16) -> SignalResult<Bundle> {
        let pre_key_id = self.last_pre_key.fetch_add(1, Ordering::Relaxed) + 1;
        let device = self.get(account, device)?;
        let device = device.lock().await;
        device.bundle(pre_key_id)
    }
}

/// One simulated device: its keys, the identities of the client devices it talks to and
/// its sessions with them.
pub struct SimDevice {
    identity: Identity,
    sessions: Sessions,
    pre_keys: PreKeys,
    signed_pre_key: SignedPreKey,
    sender_keys: SenderKeys,
    /// The account-signed proof that the identity is this companion's (`None` for the phone).
    device_identity: Option<Vec<u8>>,
}

impl SimDevice {
    fn new(account: &Account, device: u16) -> SignalResult<SimDevice> {
        let seed = hmac_sha256(b"wa-sim device keys", format!("{}:{device}", account.phone).as_bytes());
        let phone = Phone::of(account);
        let pair = if device == 0 {
            let (public, private) = phone.signal_identity()?;
            KeyPair::new(public, private)
        } else {
            derived_key(&seed, b"identity")?
        };
        let device_identity = match device {
            0 => None,
            _ => Some(companion_identity(&phone, device, &pair)?),
        };
        let identity = IdentityKeyPair::new(IdentityKey::new(pair.public_key), pair.private_key);
        let registration_id = u32::from(u16::from_be_bytes([seed[0], seed[1]]) & 0x3fff).max(1);
        let signed = derived_key(&seed, b"signed pre-key")?;
        let signature = identity.private_key().calculate_signature(&signed.public_key.serialize(), &mut rand::rng())?;
        let record = SignedPreKeyRecord::new(
            SIGNED_PRE_KEY_ID.into(),
            Timestamp::from_epoch_millis(crate::node::now() * 1000),
            &signed,
            &signature,
        );
        Ok(SimDevice {
            identity: Identity { pair: identity, registration_id, peers: HashMap::new() },
            sessions: Sessions::default(),
            pre_keys: PreKeys { seed, used: HashSet::new() },
            signed_pre_key: SignedPreKey(record),
            sender_keys: SenderKeys::default(),
            device_identity,
        })
    }

    /// The device's public keys with one-time pre-key `pre_key_id`.
    fn bundle(&self, pre_key_id: u32) -> SignalResult<Bundle> {
        let signed = &self.signed_pre_key.0;
        Ok(Bundle {
            registration_id: self.identity.registration_id,
            identity: raw_public(self.identity.pair.identity_key())?,
            signed_pre_key: (SIGNED_PRE_KEY_ID, raw(signed.public_key()?.public_key_bytes())?, signed.signature()?),
            pre_key: (pre_key_id, raw(self.pre_keys.pair(pre_key_id)?.public_key.public_key_bytes())?),
            device_identity: self.device_identity.clone(),
        })
    }

    /// Encrypts `plaintext` for client device `to`, first starting a new session with
    /// `bundle` (the device's uploaded pre-keys) — the previous session is kept for
    /// decrypting what the client still sends on it.
    pub async fn encrypt(
        &mut self,
        to: &ProtocolAddress,
        bundle: &PreKeyBundle,
        plaintext: &[u8],
    ) -> SignalResult<CiphertextMessage> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        signal::process_prekey_bundle(to, &mut self.sessions, &mut self.identity, bundle, &mut rng, UsePQRatchet::No)
            .await?;
        signal::message_encrypt(plaintext, to, &mut self.sessions, &mut self.identity).await
    }

    /// Decrypts what client device `from` encrypted for this device (a `pkmsg` starts or
    /// replaces the session, a `msg` continues one).
    pub async fn decrypt(&mut self, from: &ProtocolAddress, ciphertext: &CiphertextMessage) -> SignalResult<Vec<u8>> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let result = signal::message_decrypt(
            ciphertext,
            from,
            &mut self.sessions,
            &mut self.identity,
            &mut self.pre_keys,
            &self.signed_pre_key,
            &mut rng,
            UsePQRatchet::No,
        )
        .await?;
        if let Some(used) = result.consumed_prekey_id {
            self.pre_keys.remove_pre_key(used).await?;
        }
        Ok(result.plaintext)
    }
}

impl SimDevice {
    /// Encrypts `plaintext` for the members of `group` (its JID) under this device's sender
    /// key there, `sender` being this device's address; returns the distribution message that
    /// lets a member decrypt it (the same key for the sim's lifetime) and the `skmsg` bytes.
    pub async fn group_encrypt(
        &mut self,
        group: &str,
        sender: &ProtocolAddress,
        plaintext: &[u8],
    ) -> SignalResult<(SenderKeyDistributionMessage, Vec<u8>)> {
        let name = SenderKeyName::new(group.to_owned(), sender.to_string());
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let distribution =
            signal::create_sender_key_distribution_message(&name, &mut self.sender_keys, &mut rng).await?;
        let message = signal::group_encrypt(&mut self.sender_keys, &name, plaintext, &mut rng).await?;
        Ok((distribution, message.serialized().to_vec()))
    }

    /// Takes the sender key that `sender` distributed for `group` (`distribution`, the bytes
    /// of a sender-key distribution message).
    pub async fn take_sender_key(
        &mut self,
        group: &str,
        sender: &ProtocolAddress,
        distribution: &[u8],
    ) -> SignalResult<()> {
        let name = SenderKeyName::new(group.to_owned(), sender.to_string());
        let distribution = SenderKeyDistributionMessage::try_from(distribution)?;
        signal::process_sender_key_distribution_message(&name, &distribution, &mut self.sender_keys).await
    }

    /// Decrypts what `sender` encrypted for `group` under its sender key (`skmsg` bytes).
    pub async fn group_decrypt(
        &mut self,
        group: &str,
        sender: &ProtocolAddress,
        skmsg: &[u8],
    ) -> SignalResult<Vec<u8>> {
        let name = SenderKeyName::new(group.to_owned(), sender.to_string());
        signal::group_decrypt(skmsg, &mut self.sender_keys, &name).await
    }
}

/// Sender keys: this device's own, per group, and those members distributed to it.
#[derive(Default)]
struct SenderKeys(HashMap<SenderKeyName, SenderKeyRecord>);

#[async_trait::async_trait]
impl SenderKeyStore for SenderKeys {
    async fn store_sender_key(&mut self, name: &SenderKeyName, record: SenderKeyRecord) -> SignalResult<()> {
        self.0.insert(name.clone(), record);
        Ok(())
    }

    async fn load_sender_key(&self, name: &SenderKeyName) -> SignalResult<Option<SenderKeyRecord>> {
        Ok(self.0.get(name).cloned())
    }
}

/// A key pair derived from a device's seed and a purpose.
fn derived_key(seed: &[u8; 32], purpose: &[u8]) -> SignalResult<KeyPair> {
    Ok(KeyPair::try_from(PrivateKey::deserialize(&hmac_sha256(seed, purpose))?)?)
}

/// The `ADVSignedDeviceIdentity` a companion presents with its pre-keys: the account's
/// signature over its identity, and its own signature over that and the account key.
fn companion_identity(phone: &Phone, device: u16, pair: &KeyPair) -> SignalResult<Vec<u8>> {
    let identity = raw(pair.public_key.public_key_bytes())?;
    let mut signed = phone.signed_device_identity(device, &identity)?;
    let details = signed.details.clone().unwrap_or_default();
    let message = [&DEVICE_SIGNATURE_PREFIX[..], &details, &identity, &phone.public()].concat();
    signed.device_signature = Some(pair.calculate_signature(&message, &mut rand::rng())?.to_vec());
    Ok(signed.encode_to_vec())
}

fn raw_public(key: &IdentityKey) -> SignalResult<[u8; 32]> {
    raw(key.public_key().public_key_bytes())
}

fn raw(bytes: &[u8]) -> SignalResult<[u8; 32]> {
    bytes.try_into().map_err(|_| SignalProtocolError::InvalidArgument("public key is not 32 bytes".into()))
}

/// The device's identity, trusting every client device it meets.
struct Identity {
    pair: IdentityKeyPair,
    registration_id: u32,
    peers: HashMap<ProtocolAddress, IdentityKey>,
}

#[async_trait::async_trait]
impl IdentityKeyStore for Identity {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.pair.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.registration_id)
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

/// Sessions with client devices.
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

/// One-time pre-keys: any id derives its key from the seed; a used one is gone.
struct PreKeys {
    seed: [u8; 32],
    used: HashSet<u32>,
}

impl PreKeys {
    fn pair(&self, id: u32) -> SignalResult<KeyPair> {
        derived_key(&self.seed, &[&b"pre-key "[..], &id.to_be_bytes()].concat())
    }
}

#[async_trait::async_trait]
impl PreKeyStore for PreKeys {
    async fn get_pre_key(&self, prekey_id: PreKeyId) -> SignalResult<PreKeyRecord> {
        let id = u32::from(prekey_id);
        if self.used.contains(&id) {
            return Err(SignalProtocolError::InvalidPreKeyId);
        }
        Ok(PreKeyRecord::new(prekey_id, &self.pair(id)?))
    }

    async fn save_pre_key(&mut self, _: PreKeyId, _: &PreKeyRecord) -> SignalResult<()> {
        Err(SignalProtocolError::InvalidArgument("simulated devices derive their pre-keys".into()))
    }

    async fn remove_pre_key(&mut self, prekey_id: PreKeyId) -> SignalResult<()> {
        self.used.insert(prekey_id.into());
        Ok(())
    }
}

/// The device's only signed pre-key.
struct SignedPreKey(SignedPreKeyRecord);

#[async_trait::async_trait]
impl SignedPreKeyStore for SignedPreKey {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        if u32::from(id) == SIGNED_PRE_KEY_ID {
            Ok(self.0.clone())
        } else {
            Err(SignalProtocolError::InvalidSignedPreKeyId)
        }
    }

    async fn save_signed_pre_key(&mut self, _: SignedPreKeyId, _: &SignedPreKeyRecord) -> SignalResult<()> {
        Err(SignalProtocolError::InvalidArgument("simulated devices never rotate their signed pre-key".into()))
    }
}

#[cfg(test)]
mod tests {
    use wacore::adv::{AdvValidation, validate_adv_with_identity_key};
    use wacore::libsignal::protocol::PublicKey;
    use waproto::whatsapp as wa;

    use super::*;
    use crate::node;
    use crate::signal::{self, Envelope};
    use crate::world::World;

    fn world() -> World {
        World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/worlds/demo.toml")).unwrap()
    }

    #[tokio::test]
    async fn bundles_are_signed_derived_from_the_account_and_vouched_for_if_companions() {
        let world = world();
        let alice = world.account_by_phone("15550002222").unwrap();
        let devices = SimDevices::default();
        let (phone, companion) = (devices.bundle(alice, 0).await.unwrap(), devices.bundle(alice, 3).await.unwrap());
        assert_eq!(phone.identity, Phone::of(alice).public(), "the phone's identity is the account key");
        assert!(phone.device_identity.is_none());
        let vouched = companion.device_identity.as_deref().expect("a companion presents its device identity");
        assert_eq!(validate_adv_with_identity_key(vouched, &companion.identity, None), AdvValidation::Valid);
        for bundle in [&phone, &companion] {
            let (_, signed, signature) = &bundle.signed_pre_key;
            let identity = PublicKey::from_djb_public_key_bytes(&bundle.identity).unwrap();
            let signed = PublicKey::from_djb_public_key_bytes(signed).unwrap();
            assert!(identity.verify_signature(&signed.serialize(), signature), "XEdDSA(identity, 0x05‖spk)");
        }
        assert_ne!(phone.pre_key.0, companion.pre_key.0, "a one-time pre-key is handed out once");

        let restarted = SimDevices::default().bundle(alice, 3).await.unwrap();
        assert_eq!(restarted.identity, companion.identity);
        assert_eq!(restarted.registration_id, companion.registration_id);
    }

    #[tokio::test]
    async fn what_one_device_encrypts_to_another_opens_once() {
        let world = world();
        let (alice, acme) =
            (world.account_by_phone("15550002222").unwrap(), world.account_by_phone("15550004444").unwrap());
        let devices = SimDevices::default();
        let to = DeviceAddr { phone: acme.phone.clone(), device: 0 };
        let bundle = devices.bundle(acme, 0).await.unwrap();
        let content = wa::Message { conversation: Some("hello Acme".into()), ..Default::default() };
        let envelope = Envelope { id: "M1", kind: "text", notify: None };
        let sender = devices.get(alice, 0).unwrap();
        let message =
            signal::message(&mut *sender.lock().await, alice, &to, &bundle, envelope, &content).await.unwrap();
        let enc = message.get_optional_child("enc").unwrap();
        assert_eq!(node::attr(enc, "type").as_deref(), Some("pkmsg"));

        let from = DeviceAddr { phone: alice.phone.clone(), device: 0 };
        let recipient = devices.get(acme, 0).unwrap();
        let opened = signal::open(&mut *recipient.lock().await, &from, enc).await.unwrap();
        assert_eq!(opened.conversation.as_deref(), Some("hello Acme"));
        assert!(signal::open(&mut *recipient.lock().await, &from, enc).await.is_err(), "a replay does not open");
    }
}

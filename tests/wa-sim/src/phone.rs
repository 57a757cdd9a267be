//! The simulated primary phone of an account: its account key and what it signs.
//!
//! Keys are derived from the phone number, so a restarted sim (same world) signs with
//! the same account key that linked devices stored at pairing time.

use wacore::libsignal::crypto::hmac_sha256;
use wacore::libsignal::protocol::{CurveError, KeyPair, PrivateKey, PublicKey};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::world::Account;

const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];
const KEY_INDEX_LIST_PREFIX: [u8; 2] = [6, 2];

/// An account's primary phone.
pub struct Phone {
    key: KeyPair,
    raw_id: u32,
}

impl Phone {
    /// The phone of a world account.
    pub fn of(account: &Account) -> Phone {
        let seed = hmac_sha256(b"wa-sim account key", account.phone.as_bytes());
        let key = PrivateKey::deserialize(&seed)
            .and_then(KeyPair::try_from)
            .expect("any 32 bytes form an X25519 private key");
        let raw_id = u32::from_be_bytes([seed[0], seed[1], seed[2], seed[3]]);
        Phone { key, raw_id }
    }

    /// The account (identity) public key, raw 32 bytes.
    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.key.public_key.public_key_bytes());
        out
    }

    /// The id tying this account's device identities and key index lists together.
    pub fn raw_id(&self) -> u32 {
        self.raw_id
    }

    /// The account key as a Signal identity (public, private).
    pub fn signal_identity(&self) -> Result<(PublicKey, PrivateKey), CurveError> {
        Ok((self.key.public_key, PrivateKey::deserialize(self.key.private_key.serialize())?))
    }

    /// Diffie-Hellman between the account key and a peer's raw public key.
    pub fn agree(&self, their_public: &[u8; 32]) -> Result<[u8; 32], CurveError> {
        self.key.calculate_agreement(&PublicKey::from_djb_public_key_bytes(their_public)?)
    }

    /// The `<device-identity>` of a `pair-success`: an `ADVSignedDeviceIdentityHMAC`
    /// vouching that `companion_identity` is device `device` of this account.
    pub fn device_identity(
        &self,
        device: u16,
        companion_identity: &[u8; 32],
        adv_secret: &[u8; 32],
    ) -> Result<Vec<u8>, CurveError> {
        let signed = self.signed_device_identity(device, companion_identity)?.encode_to_vec();
        Ok(wa::ADVSignedDeviceIdentityHMAC {
            hmac: Some(hmac_sha256(adv_secret, &signed).to_vec()),
            details: Some(signed),
            account_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec())
    }

    /// The account's signature that `companion_identity` is device `device` of this
    /// account (the companion adds its own `device_signature` to present it to others).
    pub fn signed_device_identity(
        &self,
        device: u16,
        companion_identity: &[u8; 32],
    ) -> Result<wa::ADVSignedDeviceIdentity, CurveError> {
        let details = wa::ADVDeviceIdentity {
            raw_id: Some(self.raw_id),
            timestamp: Some(crate::node::now()),
            key_index: Some(u32::from(device)),
            account_type: Some(wa::ADVEncryptionType::E2EE),
            device_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec();
        let signed_message = [&ACCOUNT_SIGNATURE_PREFIX[..], &details, companion_identity].concat();
        Ok(wa::ADVSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(self.public().to_vec()),
            account_signature: Some(self.sign(&signed_message)?),
            device_signature: None,
        })
    }

    /// The `<key-index-list>` bytes listing the companion devices (key index = device id).
    pub fn key_index_list(&self, companions: &[u16]) -> Result<Vec<u8>, CurveError> {
        let valid: Vec<u32> = companions.iter().map(|d| u32::from(*d)).collect();
        let details = wa::ADVKeyIndexList {
            raw_id: Some(self.raw_id),
            timestamp: Some(crate::node::now()),
            current_index: valid.iter().copied().max(),
            valid_indexes: valid,
            account_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec();
        let signature = self.sign(&[&KEY_INDEX_LIST_PREFIX[..], &details].concat())?;
        Ok(wa::ADVSignedKeyIndexList {
            details: Some(details),
            account_signature: Some(signature),
            account_signature_key: Some(self.public().to_vec()),
        }
        .encode_to_vec())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CurveError> {
        Ok(self.key.private_key.calculate_signature(message, &mut rand::rng())?.to_vec())
    }
}

/// A business's verified-name certificate (unsigned; the client reads the details only).
pub fn verified_name_certificate(name: &str, serial: u64) -> Vec<u8> {
    let details = wa::verified_name_certificate::Details {
        serial: Some(serial),
        issuer: Some("smb:wa".to_owned()),
        verified_name: Some(name.to_owned()),
        ..Default::default()
    }
    .encode_to_vec();
    wa::VerifiedNameCertificate { details: Some(details), signature: Some(vec![0; 64]), ..Default::default() }
        .encode_to_vec()
}

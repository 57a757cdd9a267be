//! The phone shares an app-state sync key with a freshly linked companion, as the real
//! primary does right after pairing. Without it the client waits ~10 s before its
//! critical app-state sync; with it, `Connected` follows the login almost at once.

use wacore_binary::Node;
use waproto::buffa;
use waproto::whatsapp as wa;

use crate::hub::DeviceAddr;
use crate::node;
use crate::phone::Phone;
use crate::signal::{self, Bundle, Envelope, SignalResult};
use crate::sim_device::SimDevice;
use crate::world::Account;

/// The `<message>` from the account's phone (`phone`) carrying a fresh app-state key to
/// `device`.
pub async fn key_share_message(
    phone: &mut SimDevice,
    account: &Account,
    device: u16,
    bundle: &Bundle,
) -> SignalResult<Node> {
    let content = share(&Phone::of(account), device);
    let to = DeviceAddr { phone: account.phone.clone(), device };
    let envelope = Envelope { id: &node::random_id(), kind: "protocol", notify: None };
    signal::message(phone, account, &to, bundle, envelope, &content).await
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
            app_state_sync_key_share: buffa::MessageField::some(wa::message::AppStateSyncKeyShare { keys: vec![key] }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

//! Messages the world's accounts send to linked devices. Each carries the sender's push
//! name (`notify`), which is how a client learns other contacts' push names.

use std::time::Duration;

use waproto::whatsapp as wa;

use crate::error::SimError;
use crate::hub::Outbound;
use crate::signal;
use crate::sim::Shared;

/// Delivers a text from account `from` to every connected device of account `to`;
/// returns how many devices it reached.
pub async fn send_text(shared: &Shared, from: &str, to: &str, text: &str) -> Result<usize, SimError> {
    let account =
        |phone: &str| shared.world.account_by_phone(phone).ok_or_else(|| SimError::UnknownAccount(phone.to_owned()));
    let (sender, recipient) = (account(from)?, account(to)?);
    if sender.phone == recipient.phone {
        return Err(SimError::SelfMessage);
    }
    let content = wa::Message { conversation: Some(text.to_owned()), ..Default::default() };
    wait_for_pre_keys(shared, &recipient.phone).await;
    let mut reached = 0;
    for (conn, device) in shared.hub.connected_devices(&recipient.phone) {
        let Some(bundle) = shared.hub.take_bundle(&device) else {
            tracing::warn!("{}:{} has no pre-keys left to encrypt to", device.phone, device.device);
            continue;
        };
        let message = signal::message(
            sender,
            &recipient.phone,
            device.device,
            &bundle,
            "text",
            Some(&sender.push_name),
            &content,
        )
        .await
        .map_err(|e| SimError::Crypto(e.to_string()))?;
        if shared.hub.send(conn, Outbound::Node(message)) {
            reached += 1;
        }
    }
    if reached == 0 {
        return Err(SimError::NoReceivingDevice(recipient.phone.clone()));
    }
    Ok(reached)
}

/// How long a send waits for a just-connected device to upload its pre-keys (the
/// client reports `Connected` before its upload is through).
const PRE_KEY_WAIT: Duration = Duration::from_secs(5);

async fn wait_for_pre_keys(shared: &Shared, phone: &str) {
    let deadline = tokio::time::Instant::now() + PRE_KEY_WAIT;
    while tokio::time::Instant::now() < deadline
        && shared.hub.connected_devices(phone).iter().any(|(_, d)| shared.hub.unused_pre_keys(d) == 0)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

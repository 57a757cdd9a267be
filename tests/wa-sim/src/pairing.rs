//! Linking a new companion device, with the sim playing the account's primary phone:
//! QR codes (`pair-device` refs, `scan_qr`) and pair codes (`link_code_companion_reg`,
//! `enter_pair_code`). Both end in `pair-success`, the client's signature, and a 515.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use tokio::sync::oneshot;
use wacore::libsignal::crypto::aes_256_gcm_decrypt;
use wacore::libsignal::protocol::{KeyPair, PublicKey};
use wacore::pair::PairUtils;
use wacore::pair_code::PairCodeUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::error::SimError;
use crate::hub::{ConnId, DeviceAddr, Outbound};
use crate::node::{self, SERVER, child_bytes, iq_error, iq_result};
use crate::phone::Phone;
use crate::sim::Shared;
use crate::stanza::login;

/// How many QR refs one `<pair-device>` hands out (the client rotates through them).
const QR_REFS: usize = 6;
/// How long the sim waits for the client's answer to a pairing step.
const CLIENT_ANSWER: Duration = Duration::from_secs(10);
/// How long `enter_pair_code` waits for the whole pair-code exchange.
const PAIR_CODE_FLOW: Duration = Duration::from_secs(30);
const BUNDLE_KEY_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";

/// Per-connection pairing progress of an unpaired client.
#[derive(Default)]
pub struct PairingState {
    qr_refs: Vec<String>,
    code: Option<CodeRequest>,
}

/// A pair-code request (`companion_hello`) and, once the code was entered, the phone's half.
struct CodeRequest {
    phone: String,
    wrapped_companion_ephemeral: Vec<u8>,
    pairing_ref: Vec<u8>,
    hello: Option<PrimaryHello>,
}

struct PrimaryHello {
    ephemeral: KeyPair,
    companion_ephemeral: [u8; 32],
    outcome: oneshot::Sender<Result<(), SimError>>,
}

/// The `<pair-device>` IQ offering QR refs to a freshly connected unpaired client.
pub fn pair_device(shared: &Shared, conn: ConnId) -> Node {
    let refs: Vec<String> = (0..QR_REFS).map(|_| format!("2@{}", node::random_id())).collect();
    let ref_nodes = refs.iter().map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build());
    shared.hub.with_pairing(conn, |p| p.qr_refs = refs.clone());
    NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("xmlns", "md")
        .attr("id", node::random_id())
        .children([NodeBuilder::new("pair-device").children(ref_nodes).build()])
        .build()
}

/// The phone scans a QR code shown by a client and links it to the account.
pub async fn scan_qr(shared: &Arc<Shared>, qr: &str, phone: &str) -> Result<(), SimError> {
    let (pairing_ref, _noise, identity) = PairUtils::parse_qr_code(qr).map_err(|e| SimError::BadQr(e.to_string()))?;
    let adv_secret = qr
        .split(',')
        .nth(3)
        .and_then(|s| BASE64_STANDARD.decode(s).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| SimError::BadQr("bad ADV secret field".into()))?;
    let phone = account_phone(shared, phone)?;
    let conn = shared.hub.find_pairing(|p| p.qr_refs.contains(&pairing_ref)).ok_or(SimError::UnknownQr)?;
    link(shared, conn, &phone, identity, adv_secret).await
}

/// Handles `xmlns="md"` `<link_code_companion_reg>` from an unpaired client.
pub fn companion_reg(shared: &Arc<Shared>, conn: ConnId, req: &Node) -> Node {
    let Some(reg) = req.get_optional_child("link_code_companion_reg") else {
        return iq_error(req, 400, "bad-request");
    };
    match node::attr(reg, "stage").as_deref() {
        Some("companion_hello") => companion_hello(shared, conn, req, reg),
        Some("companion_finish") => companion_finish(shared, conn, req, reg),
        other => {
            tracing::warn!("unsupported link_code_companion_reg stage {other:?}");
            iq_error(req, 400, "bad-request")
        }
    }
}

fn companion_hello(shared: &Shared, conn: ConnId, req: &Node, reg: &Node) -> Node {
    let phone = node::jid_attr(reg, "jid").map(|j| j.user.to_string());
    let wrapped = child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub");
    let (Some(phone), Some(wrapped)) = (phone, wrapped) else {
        return iq_error(req, 400, "bad-request");
    };
    if shared.world.account_by_phone(&phone).is_none() {
        tracing::warn!("pair code requested for {phone}, which is not an account of the world");
        return iq_error(req, 404, "item-not-found");
    }
    let pairing_ref = node::random_id().into_bytes();
    let request = CodeRequest {
        phone,
        wrapped_companion_ephemeral: wrapped.to_vec(),
        pairing_ref: pairing_ref.clone(),
        hello: None,
    };
    shared.hub.with_pairing(conn, |p| p.code = Some(request));
    let answer = NodeBuilder::new("link_code_companion_reg")
        .children([NodeBuilder::new("link_code_pairing_ref").bytes(pairing_ref).build()]);
    iq_result(req, vec![answer.build()])
}

/// The phone side of "enter the code on your phone": answers the client's
/// `companion_hello` with `primary_hello`, then completes the link.
pub async fn enter_pair_code(shared: &Arc<Shared>, phone: &str, code: &str) -> Result<(), SimError> {
    let phone = account_phone(shared, phone)?;
    let code: String = code.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect::<String>().to_uppercase();
    if !PairCodeUtils::validate_code(&code) {
        return Err(SimError::WrongPairCode);
    }
    let waiting = |p: &PairingState| p.code.as_ref().is_some_and(|c| c.phone == phone && c.hello.is_none());
    let conn = shared.hub.find_pairing(waiting).ok_or_else(|| SimError::NoPairCodeRequest(phone.clone()))?;
    let (wrapped, pairing_ref) = shared
        .hub
        .with_pairing(conn, |p| p.code.as_ref().map(|c| (c.wrapped_companion_ephemeral.clone(), c.pairing_ref.clone())))
        .flatten()
        .ok_or(SimError::Disconnected("pair code entry"))?;

    let ephemeral = KeyPair::generate(&mut rand::rng());
    let mut ephemeral_pub = [0u8; 32];
    ephemeral_pub.copy_from_slice(ephemeral.public_key.public_key_bytes());
    let slow_code = code.clone();
    let (companion_ephemeral, wrapped_primary) = tokio::task::spawn_blocking(move || {
        let companion = PairCodeUtils::decrypt_primary_ephemeral_pub(&wrapped, &slow_code);
        (companion, PairCodeUtils::encrypt_ephemeral_pub(&ephemeral_pub, &slow_code))
    })
    .await
    .map_err(|e| SimError::Crypto(e.to_string()))?;
    let companion_ephemeral = companion_ephemeral.map_err(|e| SimError::Crypto(e.to_string()))?;

    let (tx, rx) = oneshot::channel();
    let hello = PrimaryHello { ephemeral, companion_ephemeral, outcome: tx };
    shared.hub.with_pairing(conn, |p| {
        if let Some(c) = p.code.as_mut() {
            c.hello = Some(hello);
        }
    });
    let account = shared.world.account_by_phone(&phone).ok_or_else(|| SimError::UnknownAccount(phone.clone()))?;
    let notification = NodeBuilder::new("notification")
        .attr("from", SERVER)
        .attr("type", "link_code_companion_reg")
        .attr("id", node::random_id())
        .attr("t", node::now().to_string())
        .children([NodeBuilder::new("link_code_companion_reg")
            .attr("stage", "primary_hello")
            .children([
                NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                    .bytes(wrapped_primary.to_vec())
                    .build(),
                NodeBuilder::new("primary_identity_pub").bytes(Phone::of(account).public().to_vec()).build(),
                NodeBuilder::new("link_code_pairing_ref").bytes(pairing_ref).build(),
            ])
            .build()])
        .build();
    if !shared.hub.send(conn, Outbound::Node(notification)) {
        return Err(SimError::Disconnected("pair code entry"));
    }
    match tokio::time::timeout(PAIR_CODE_FLOW, rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(SimError::Disconnected("pair code linking")),
        Err(_) => Err(SimError::Timeout("companion_finish")),
    }
}

fn companion_finish(shared: &Arc<Shared>, conn: ConnId, req: &Node, reg: &Node) -> Node {
    let request = shared.hub.with_pairing(conn, |p| p.code.take()).flatten();
    let Some(CodeRequest { phone, hello: Some(hello), .. }) = request else {
        return iq_error(req, 400, "bad-request");
    };
    let bundle = child_bytes(reg, "link_code_pairing_wrapped_key_bundle");
    let identity = child_bytes(reg, "companion_identity_public").and_then(|b| <[u8; 32]>::try_from(b).ok());
    let secrets = match (bundle, identity) {
        (Some(bundle), Some(identity)) => {
            open_key_bundle(shared, &phone, &hello, bundle, &identity).map(|adv| (identity, adv))
        }
        _ => Err(SimError::Rejected("companion_finish lacks the key bundle or identity".into())),
    };
    match secrets {
        Err(e) => {
            let answer = iq_error(req, 400, "bad-request");
            let _ = hello.outcome.send(Err(e));
            answer
        }
        Ok((identity, adv_secret)) => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let result = link(&shared, conn, &phone, identity, adv_secret).await;
                let _ = hello.outcome.send(result);
            });
            iq_result(req, vec![])
        }
    }
}

/// Decrypts the companion's key bundle and derives the ADV secret from it.
fn open_key_bundle(
    shared: &Shared,
    phone: &str,
    hello: &PrimaryHello,
    wrapped: &[u8],
    companion_identity: &[u8; 32],
) -> Result<[u8; 32], SimError> {
    let crypto = |e: &dyn std::fmt::Display| SimError::Crypto(e.to_string());
    if wrapped.len() < 32 + 12 + 16 {
        return Err(SimError::Rejected("key bundle too short".into()));
    }
    let account = shared.world.account_by_phone(phone).ok_or_else(|| SimError::UnknownAccount(phone.into()))?;
    let primary = Phone::of(account);
    let companion_eph = PublicKey::from_djb_public_key_bytes(&hello.companion_ephemeral).map_err(|e| crypto(&e))?;
    let ephemeral_shared = hello.ephemeral.calculate_agreement(&companion_eph).map_err(|e| crypto(&e))?;
    let identity_shared = primary.agree(companion_identity).map_err(|e| crypto(&e))?;

    let (salt, rest) = wrapped.split_at(32);
    let (iv, ciphertext) = rest.split_at(12);
    let mut key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&ephemeral_shared, Some(salt), BUNDLE_KEY_INFO, &mut key)
        .map_err(|e| crypto(&e))?;
    let iv: [u8; 12] = iv.try_into().map_err(|_| SimError::Crypto("iv".into()))?;
    let mut bundle = Vec::new();
    aes_256_gcm_decrypt(&key, &iv, b"", ciphertext, &mut bundle).map_err(|_| SimError::WrongPairCode)?;
    if bundle.len() != 96 || bundle[..32] != companion_identity[..] || bundle[32..64] != primary.public()[..] {
        return Err(SimError::WrongPairCode);
    }
    let secret_input = [&ephemeral_shared[..], &identity_shared[..], &bundle[64..]].concat();
    let mut adv_secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&secret_input, None, b"adv_secret", &mut adv_secret).map_err(|e| crypto(&e))?;
    Ok(adv_secret)
}

/// Sends `pair-success` for a new companion of the account, waits for the client's
/// signature, records the device and restarts the stream (515).
async fn link(
    shared: &Shared,
    conn: ConnId,
    phone: &str,
    identity: [u8; 32],
    adv_secret: [u8; 32],
) -> Result<(), SimError> {
    let account = shared.world.account_by_phone(phone).ok_or_else(|| SimError::UnknownAccount(phone.into()))?;
    let device = shared.hub.free_device_id(phone, &account.devices);
    let device_identity = Phone::of(account)
        .device_identity(device, &identity, &adv_secret)
        .map_err(|e| SimError::Crypto(e.to_string()))?;
    let success = NodeBuilder::new("pair-success").children([
        NodeBuilder::new("device-identity").bytes(device_identity).build(),
        NodeBuilder::new("device")
            .attr("jid", Jid::pn_device(account.phone.as_str(), device))
            .attr("lid", Jid::lid_device(account.lid.as_str(), device))
            .build(),
        NodeBuilder::new("biz").attr("name", account.push_name.as_str()).build(),
        NodeBuilder::new("platform").attr("name", "smbi").build(),
    ]);
    let iq = NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("xmlns", "md")
        .attr("id", node::random_id())
        .children([success.build()])
        .build();
    let answer = shared.hub.request(conn, iq, CLIENT_ANSWER).await.ok_or(SimError::Timeout("pair-device-sign"))?;
    if node::attr(&answer, "type").as_deref() != Some("result")
        || answer.get_optional_child("pair-device-sign").is_none()
    {
        let why = answer
            .get_optional_child("error")
            .and_then(|e| node::attr(e, "text"))
            .unwrap_or_else(|| "no signature".into());
        return Err(SimError::Rejected(why));
    }
    let addr = DeviceAddr { phone: account.phone.clone(), device };
    shared.hub.link(&addr);
    tracing::info!("linked {}:{} — restarting its stream", addr.phone, addr.device);
    shared.hub.send(conn, Outbound::Final(login::stream_error(515)));
    Ok(())
}

fn account_phone(shared: &Shared, phone: &str) -> Result<String, SimError> {
    shared
        .world
        .account_by_phone(phone)
        .map(|a| a.phone.clone())
        .ok_or_else(|| SimError::UnknownAccount(phone.to_owned()))
}

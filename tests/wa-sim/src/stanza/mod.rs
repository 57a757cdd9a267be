//! Dispatch of the client's stanzas to their handlers.

pub mod groups;
pub mod login;
pub mod prekeys;
pub mod profile;
pub mod usync;

use std::sync::Arc;

use wacore_binary::Node;

use crate::hub::{ConnId, DeviceAddr, Outbound};
use crate::mailbox::Acknowledgement;
use crate::node::{self, children, iq_result};
use crate::sim::Shared;
use crate::world::Account;
use crate::{keyshare, pairing, receiving, signal};

/// The connection a stanza arrived on.
pub struct Ctx {
    /// Sim state.
    pub shared: Arc<Shared>,
    /// The connection.
    pub conn: ConnId,
    /// The logged-in device, `None` for an unpaired client.
    pub device: Option<DeviceAddr>,
}

impl Ctx {
    /// The account of the logged-in device.
    pub fn account(&self) -> Option<&Account> {
        self.shared.world.account_by_phone(&self.device.as_ref()?.phone)
    }
}

/// Handles one stanza from the client and returns the nodes to send back.
pub async fn handle(ctx: &Ctx, stanza: &Node) -> Vec<Node> {
    match stanza.tag.as_ref() {
        "iq" => iq(ctx, stanza).await,
        "message" => receiving::receive(ctx, stanza).await,
        "receipt" => {
            receipt(ctx, stanza);
            Vec::new()
        }
        "ack" => {
            ack(ctx, stanza);
            Vec::new()
        }
        "ib" | "presence" | "chatstate" => Vec::new(),
        other => {
            tracing::debug!("ignoring <{other}> from the client");
            Vec::new()
        }
    }
}

async fn iq(ctx: &Ctx, req: &Node) -> Vec<Node> {
    let kind = node::attr(req, "type").unwrap_or_default();
    if kind == "result" || kind == "error" {
        if !ctx.shared.hub.deliver_answer(req.clone()) {
            tracing::debug!("unsolicited iq {kind} from the client");
        }
        return Vec::new();
    }
    let world = &ctx.shared.world;
    let xmlns = node::attr(req, "xmlns").unwrap_or_default();
    let answer = match xmlns.as_str() {
        "passive" => return passive(ctx, req),
        "w:p" => iq_result(req, vec![]),
        "encrypt" => encrypt(ctx, req).await,
        "abt" => login::props(req),
        "blocklist" => login::blocklist(req),
        "privacy" => login::privacy(req),
        "w:sync:app:state" => login::app_state(req),
        "usync" => usync::answer(req, world, &ctx.shared.hub, ctx.account()),
        "w:profile:picture" => profile::picture(req, world, ctx.account()),
        "w:biz" => profile::business(req, world),
        "w:g2" => groups::answer(req, world, ctx.account()),
        "md" => md(ctx, req),
        other => {
            tracing::debug!("answering unsupported iq xmlns={other:?} with an empty result");
            iq_result(req, vec![])
        }
    };
    vec![answer]
}

/// `xmlns="passive"`: going active starts the device's offline drain, which delivers what
/// it has not acknowledged yet.
fn passive(ctx: &Ctx, req: &Node) -> Vec<Node> {
    let queued = match &ctx.device {
        Some(device) if req.get_optional_child("active").is_some() => {
            ctx.shared.hub.mailboxes().go_live(device, ctx.conn)
        }
        _ => Vec::new(),
    };
    login::passive(req, queued)
}

/// A receipt other than a retry request acknowledges its message(s) (offline deliveries
/// are acknowledged in aggregate: `id` plus `<list><item id/>…</list>`).
fn receipt(ctx: &Ctx, stanza: &Node) {
    if node::attr(stanza, "type").is_some_and(|t| t.ends_with("retry")) {
        return;
    }
    let list = stanza.get_optional_child("list").map(children).unwrap_or_default();
    let ids: Vec<String> =
        node::attr(stanza, "id").into_iter().chain(list.iter().filter_map(|item| node::attr(item, "id"))).collect();
    if ids.iter().filter(|id| ctx.shared.hub.confirm_key_share(id)).count() > 0 {
        tracing::debug!("the client confirmed its app-state key share");
    }
    acknowledge(ctx, Acknowledgement::Messages(&ids));
}

/// The client's `<ack>` of a message, notification or receipt the sim sent.
fn ack(ctx: &Ctx, stanza: &Node) {
    let Some(id) = node::attr(stanza, "id") else {
        return;
    };
    match node::attr(stanza, "class").as_deref() {
        Some("message") => acknowledge(ctx, Acknowledgement::Messages(&[id])),
        Some("notification") => acknowledge(ctx, Acknowledgement::Notification(&id)),
        Some("receipt") => {
            let kind = node::attr(stanza, "type");
            acknowledge(ctx, Acknowledgement::Receipt { id: &id, kind: kind.as_deref() });
        }
        _ => {}
    }
}

/// The device acknowledged these stanzas: they are not delivered again.
fn acknowledge(ctx: &Ctx, ack: Acknowledgement<'_>) {
    if let Some(device) = &ctx.device {
        let settled = ctx.shared.hub.mailboxes().acknowledge(device, ack);
        tracing::debug!("{}:{} acknowledged {settled} held stanza(s)", device.phone, device.device);
    }
}

/// `xmlns="md"`: pair-code registration, and a device unlinking itself.
fn md(ctx: &Ctx, req: &Node) -> Node {
    if req.get_optional_child("link_code_companion_reg").is_some() {
        return pairing::companion_reg(&ctx.shared, ctx.conn, req);
    }
    if req.get_optional_child("remove-companion-device").is_some()
        && let Some(device) = &ctx.device
    {
        tracing::info!("{}:{} logged itself out", device.phone, device.device);
        ctx.shared.hub.remove_device(device);
    }
    iq_result(req, vec![])
}

/// `xmlns="encrypt"`: pre-key fetches are answered for the devices the sim plays;
/// uploads are kept (to encrypt to the device later), and a freshly linked device's
/// first upload earns it the phone's app-state key share (sent again on later logins
/// until the client's receipt confirms it).
async fn encrypt(ctx: &Ctx, req: &Node) -> Node {
    if let Some(key) = req.get_optional_child("key") {
        return prekeys::answer(&ctx.shared, req, key).await;
    }
    let Some(device) = &ctx.device else {
        return login::encrypt(req, 0);
    };
    if let Some(keys) = signal::DeviceKeys::parse(req) {
        ctx.shared.hub.add_keys(device, keys);
        share_keys_if_fresh(ctx, device);
    }
    login::encrypt(req, ctx.shared.hub.unused_pre_keys(device))
}

fn share_keys_if_fresh(ctx: &Ctx, device: &DeviceAddr) {
    let Some(account) = ctx.account() else {
        return;
    };
    if !ctx.shared.hub.owes_key_share(device) {
        return;
    }
    let Some(bundle) = ctx.shared.hub.take_bundle(device) else {
        return;
    };
    let (shared, conn, account, device) = (ctx.shared.clone(), ctx.conn, account.clone(), device.clone());
    tokio::spawn(async move {
        let message = match shared.devices.get(&account, 0) {
            Ok(phone) => keyshare::key_share_message(&mut *phone.lock().await, &account, device.device, &bundle).await,
            Err(e) => Err(e),
        };
        match message {
            Ok(message) => {
                tracing::info!("phone shares an app-state key with {}:{}", device.phone, device.device);
                shared.hub.store_key_share(&device, message.clone());
                shared.hub.send(conn, Outbound::Node(message));
            }
            Err(e) => tracing::warn!("cannot build the app-state key share: {e}"),
        }
    });
}

//! Linkings in progress, one per device, each followed by a task that keeps the latest state
//! in a `watch` channel: any number of viewers (the JSON endpoint, the PNG, server-sent
//! events, the pairing page, the CLI) see the same rotating QR code and the same outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use waedge_device::{DeviceManager, LinkEvent};

/// How long a linking may take in all before it is cancelled: WhatsApp rotates its QR codes
/// for about three minutes; this also ends a linking stuck before its first code.
const LINK_DEADLINE: Duration = Duration::from_secs(300);

/// Where a linking stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LinkState {
    /// Connecting to WhatsApp; no code yet.
    Starting,
    /// Show this QR code; WhatsApp replaces it when it expires.
    Qr {
        /// The text to render as a QR code.
        code: String,
        /// Seconds the code stays valid from when it was issued.
        expires_in_seconds: u64,
        /// The pair code, if linking was started by pair code.
        #[serde(skip_serializing_if = "Option::is_none")]
        pair_code: Option<String>,
    },
    /// The phone linked the device.
    Linked {
        /// The account's phone JID.
        jid: Option<String>,
        /// The account's LID.
        lid: Option<String>,
    },
    /// Linking ended without a link.
    Failed {
        /// Why.
        reason: String,
    },
}

impl LinkState {
    /// Whether the linking is over.
    pub fn is_final(&self) -> bool {
        matches!(self, LinkState::Linked { .. } | LinkState::Failed { .. })
    }

    /// The server-sent-events name of this state.
    pub fn event_name(&self) -> &'static str {
        match self {
            LinkState::Starting => "starting",
            LinkState::Qr { .. } => "qr",
            LinkState::Linked { .. } => "linked",
            LinkState::Failed { .. } => "failed",
        }
    }
}

/// The linkings in progress (and the last one of each device, finished or not).
#[derive(Default)]
pub struct Links {
    by_device: Mutex<HashMap<(String, String), watch::Receiver<LinkState>>>,
}

impl Links {
    /// The linking of `device` of `tenant` that is still going, if any.
    pub fn in_progress(&self, tenant: &str, device: &str) -> Option<watch::Receiver<LinkState>> {
        self.last(tenant, device).filter(|watch| !watch.borrow().is_final())
    }

    /// The last linking of `device` of `tenant`, finished or not.
    pub fn last(&self, tenant: &str, device: &str) -> Option<watch::Receiver<LinkState>> {
        let by_device = self.by_device.lock().unwrap_or_else(|p| p.into_inner());
        by_device.get(&(tenant.to_string(), device.to_string())).cloned()
    }

    /// Follows a new linking's `events`; `pair_code` is shown with every QR code. A linking
    /// still going after [`LINK_DEADLINE`] is cancelled through `devices`.
    pub fn follow(
        &self,
        tenant: &str,
        device: &str,
        mut events: mpsc::Receiver<LinkEvent>,
        pair_code: Option<String>,
        devices: Arc<dyn DeviceManager>,
    ) -> watch::Receiver<LinkState> {
        let (sender, receiver) = watch::channel(LinkState::Starting);
        let mut by_device = self.by_device.lock().unwrap_or_else(|p| p.into_inner());
        by_device.insert((tenant.to_string(), device.to_string()), receiver.clone());
        let (tenant, device) = (tenant.to_string(), device.to_string());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + LINK_DEADLINE;
            loop {
                let event = match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(_late) => {
                        let _ = devices.cancel_link(&tenant, &device).await;
                        sender.send_replace(LinkState::Failed { reason: "no phone linked the device in time".into() });
                        return;
                    }
                };
                let state = match event {
                    LinkEvent::Qr { code, timeout } => {
                        LinkState::Qr { code, expires_in_seconds: timeout.as_secs(), pair_code: pair_code.clone() }
                    }
                    LinkEvent::Linked { jid, lid } => LinkState::Linked { jid, lid },
                    LinkEvent::Failed { reason } => LinkState::Failed { reason },
                };
                let done = state.is_final();
                sender.send_replace(state);
                if done {
                    return;
                }
            }
            sender.send_replace(LinkState::Failed { reason: "the linking stopped".to_string() });
        });
        receiver
    }
}

/// Waits until `watch` is past [`LinkState::Starting`] (or `timeout`), and returns its state.
pub async fn first_news(watch: &mut watch::Receiver<LinkState>, timeout: Duration) -> LinkState {
    let until = Instant::now() + timeout;
    let _ = tokio::time::timeout_at(until.into(), watch.wait_for(|state| *state != LinkState::Starting)).await;
    watch.borrow().clone()
}

//! Linkings: where a device's linking stands, published to any number of viewers.
//!
//! The device layer owns every linking: a session starts one, drives it from its client's
//! events (QR codes, then linked or failed) and ends it — also when it is cancelled, when the
//! device is removed, or when no phone linked it within [`LINK_DEADLINE`]. Viewers (the admin
//! API's JSON, PNG and server-sent events, the pairing page, the CLI) hold a
//! `watch::Receiver<LinkState>` and all see the same rotating code and the same outcome.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How long a linking may take in all before it is cancelled: WhatsApp rotates its QR codes
/// for about three minutes; this also ends a linking stuck before its first code.
pub(crate) const LINK_DEADLINE: Duration = Duration::from_secs(300);

/// Where a linking stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The phone linked the device and its session is connected.
    Linked {
        /// The account's phone JID, e.g. `6281234567890@s.whatsapp.net`.
        jid: Option<String>,
        /// The account's LID, e.g. `1234567890987654321@lid`.
        lid: Option<String>,
    },
    /// Linking ended without a link; the device's state tells where it stands (mostly
    /// unlinked again).
    Failed {
        /// Why, for people.
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

/// One device's linkings: at most one in progress, and the last one, finished or not, for
/// viewers that come later.
#[derive(Debug, Default)]
pub(crate) struct Linkings {
    /// The linking in progress and its pair code, if it was started by one.
    in_progress: Option<(watch::Sender<LinkState>, Option<String>)>,
    last: Option<watch::Receiver<LinkState>>,
}

impl Linkings {
    /// Whether a linking is in progress.
    pub fn is_linking(&self) -> bool {
        self.in_progress.is_some()
    }

    /// Starts a linking (a linking in progress fails first, replaced) and returns its view.
    pub fn start(&mut self) -> watch::Receiver<LinkState> {
        self.finish(LinkState::Failed { reason: "another linking replaced it".to_string() });
        let (sender, receiver) = watch::channel(LinkState::Starting);
        self.in_progress = Some((sender, None));
        self.last = Some(receiver.clone());
        receiver
    }

    /// The last linking, finished or not.
    pub fn last(&self) -> Option<watch::Receiver<LinkState>> {
        self.last.clone()
    }

    /// Whether the last linking is still going (not linked or failed yet).
    pub fn going(&self) -> bool {
        self.last.as_ref().is_some_and(|last| !last.borrow().is_final())
    }

    /// Whether `view` is a view of the linking in progress.
    pub fn is_current(&self, view: &watch::Receiver<LinkState>) -> bool {
        self.in_progress.is_some() && self.last.as_ref().is_some_and(|last| last.same_channel(view))
    }

    /// Shows `code` with every QR code of the linking in progress, the current one too.
    pub fn set_pair_code(&mut self, code: &str) {
        if let Some((sender, pair_code)) = &mut self.in_progress {
            *pair_code = Some(code.to_string());
            sender.send_modify(|state| {
                if let LinkState::Qr { pair_code, .. } = state {
                    *pair_code = Some(code.to_string());
                }
            });
        }
    }

    /// A new QR code for the linking in progress, valid for `timeout`.
    pub fn qr(&self, code: &str, timeout: Duration) {
        if let Some((sender, pair_code)) = &self.in_progress {
            sender.send_replace(LinkState::Qr {
                code: code.to_string(),
                expires_in_seconds: timeout.as_secs(),
                pair_code: pair_code.clone(),
            });
        }
    }

    /// Ends the linking in progress, if any, in `state` (final).
    pub fn finish(&mut self, state: LinkState) {
        debug_assert!(state.is_final(), "a linking ends linked or failed");
        if let Some((sender, _)) = self.in_progress.take() {
            sender.send_replace(state);
        }
    }
}

impl Drop for Linkings {
    fn drop(&mut self) {
        self.finish(LinkState::Failed { reason: "the linking stopped".to_string() });
    }
}

/// Waits until `view` is past [`LinkState::Starting`] (or `timeout`), and returns its state.
pub async fn first_news(view: &mut watch::Receiver<LinkState>, timeout: Duration) -> LinkState {
    let _ = tokio::time::timeout(timeout, view.wait_for(|state| *state != LinkState::Starting)).await;
    view.borrow().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_viewer_sees_the_codes_and_the_outcome() {
        let mut linkings = Linkings::default();
        assert!(linkings.last().is_none() && !linkings.is_linking());
        let view = linkings.start();
        let later = linkings.last().unwrap();
        assert_eq!(*view.borrow(), LinkState::Starting);
        linkings.qr("2@abc", Duration::from_secs(60));
        linkings.set_pair_code("ABCD-EFGH");
        let shown = LinkState::Qr { code: "2@abc".into(), expires_in_seconds: 60, pair_code: Some("ABCD-EFGH".into()) };
        assert_eq!((&*view.borrow(), &*later.borrow()), (&shown, &shown));
        linkings.qr("2@def", Duration::from_secs(20));
        assert!(matches!(&*view.borrow(), LinkState::Qr { code, pair_code: Some(_), .. } if code == "2@def"));
        linkings.finish(LinkState::Linked { jid: Some("1@s.whatsapp.net".into()), lid: None });
        assert!(view.borrow().is_final() && !linkings.is_linking());
        // Finished, it stays readable; later codes of a finished linking change nothing.
        linkings.qr("2@ghi", Duration::from_secs(20));
        assert_eq!(linkings.last().unwrap().borrow().event_name(), "linked");
    }

    #[test]
    fn a_linking_that_stops_or_is_replaced_fails_for_its_viewers() {
        let mut linkings = Linkings::default();
        let first = linkings.start();
        let second = linkings.start();
        assert!(matches!(&*first.borrow(), LinkState::Failed { reason } if reason.contains("replaced")));
        assert!(linkings.is_current(&second) && !linkings.is_current(&first));
        drop(linkings);
        assert!(matches!(&*second.borrow(), LinkState::Failed { reason } if reason.contains("stopped")));
    }

    #[test]
    fn states_serialise_as_the_admin_api_documents_them() {
        let qr = LinkState::Qr { code: "2@abc".into(), expires_in_seconds: 60, pair_code: None };
        assert_eq!(
            serde_json::to_value(&qr).unwrap(),
            serde_json::json!({"state": "qr", "code": "2@abc", "expires_in_seconds": 60})
        );
        assert_eq!(serde_json::to_value(LinkState::Starting).unwrap(), serde_json::json!({"state": "starting"}));
    }
}

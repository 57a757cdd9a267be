//! waedge-device: device sessions, one live WhatsApp connection per linked phone.
//!
//! The [`DeviceSession`] trait is the whole surface the request path uses; the `whatsapp`
//! capability calls it and never sees a `whatsapp-rust` type. The [`DeviceManager`] trait is
//! the operator's side: open, link, log out and remove devices; a linking's progress is a
//! [`link::LinkState`] any number of viewers watch. [`cache::Cached`] puts a TTL
//! cache in front of any session; [`whatsapp::WhatsappDevice`] is the real implementation on
//! the `whatsapp-rust` client, with the contact names it learns in [`names::LearnedNames`];
//! [`recorder`] writes the statuses sessions report into the store. What WhatsApp delivers is
//! committed to a [`Mailbox`] ([`mailbox::store_mailbox`]: the store's event outbox) before
//! WhatsApp is told it arrived ([`received`]); what they send is recorded there first, and
//! followed as WhatsApp acknowledges it and the recipient's receipts come back ([`sending`]);
//! a [`verification`] sends a one-time code to link a phone number to the LID that answers.
//! A session keeps whatsapp-rust's state in a file of its own, or in PostgreSQL shared with
//! other nodes under the device's lease ([`storage`]).
//! Tests provide fixture-backed implementations.
//!
//! Arguments are already-validated [`Jid`]s; answers use the WIT types of
//! [`waedge_contract::types`], so what a session returns is exactly what a component sees.
//!
//! This is the only crate that depends on `whatsapp-rust`. Its `wa-sim` feature lets
//! sessions connect to another server (`whatsapp::WhatsappDevices::with_server`) and turns
//! off the server certificate check (whatsapp-rust's `danger-skip-cert-chain-verify`): test
//! builds only. It depends on `waedge-store` (the recorder), `waedge-contract` and
//! `waedge-device-pg` (shared state); `waedge`
//! (the host) opens its sessions and counts its cache's look-ups ([`cache::CacheMetrics`]).
#![deny(missing_docs)]

pub mod cache;
pub mod deadline;
pub mod link;
pub mod mailbox;
pub mod names;
pub mod received;
pub mod reconnect;
pub mod recorder;
pub mod sending;
pub mod storage;
pub mod verification;
pub mod whatsapp;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use waedge_jid::Jid;

use link::LinkState;

use waedge_contract::types::{
    BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, LidVerification, OnWhatsapp,
    ProfilePicture, SendOutcome, SentMessage, UserInfo, VerifiedLink,
};
use waedge_store::LeaseEpoch;
use waedge_store::events::NewEvent;
use waedge_store::links::{NewVerification, Started};
use waedge_store::sent::{Begun, NewSend, StatusChange};

pub use sending::TextMessage;
pub use verification::VerificationRequest;

/// One device's WhatsApp session.
#[async_trait]
pub trait DeviceSession: Send + Sync + 'static {
    /// The current state and identity of the device. Cheap; never waits on the network.
    fn status(&self) -> DeviceStatus;

    /// Shows the device's current status to `show` without copying it (what
    /// [`DeviceSession::status`] returns): a list of a thousand devices reads theirs so. `show`
    /// may run under the session's lock, which its status changes wait for: it must be short
    /// and must not call the session. A session that wraps another passes it on.
    fn with_status(&self, show: &mut dyn FnMut(&DeviceStatus)) {
        show(&self.status())
    }

    /// The device's current state, read through [`DeviceSession::with_status`] (nothing
    /// copied): what every device call on the request path checks.
    fn state(&self) -> DeviceState {
        let mut state = DeviceState::Unlinked;
        self.with_status(&mut |status| state = status.state);
        state
    }

    /// Whether this process runs the device's client: always, unless the device's state is
    /// shared with other nodes and another of them holds its lease (or none does yet).
    fn runs_here(&self) -> bool {
        true
    }

    /// User info for each of `jids` that WhatsApp knows; unknown users are left out.
    async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error>;

    /// The profile picture of a user or group (thumbnail when `preview`).
    async fn profile_picture(&self, jid: &Jid, preview: bool) -> Result<Option<ProfilePicture>, Error>;

    /// The business profile of `jid`, if it is a business account.
    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error>;

    /// The LID ↔ phone mapping WhatsApp gave this device for `jid`, if any.
    async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error>;

    /// Whether each of `jids` has a WhatsApp account.
    async fn is_on_whatsapp(&self, jids: &[Jid]) -> Result<Vec<OnWhatsapp>, Error>;

    /// Every group the device participates in.
    async fn joined_groups(&self) -> Result<Vec<Group>, Error>;

    /// One group; [`Error::Forbidden`] when the device is not a participant.
    async fn group_info(&self, jid: &Jid) -> Result<Group, Error>;

    /// The names this device has learned for a contact.
    async fn contact(&self, jid: &Jid) -> Result<Option<Contact>, Error>;

    /// Sends a text message, at most once per idempotency key ([`sending`]).
    async fn send_text(&self, message: &TextMessage) -> Result<SendOutcome, Error>;

    /// A message this device sent, by id.
    async fn sent_message(&self, id: &str) -> Result<Option<SentMessage>, Error>;

    /// Sends a one-time code to a phone number to link it to the LID that answers with it
    /// ([`verification`]).
    async fn start_lid_verification(&self, request: &VerificationRequest) -> Result<LidVerification, Error>;

    /// A LID verification this device started, by id.
    async fn lid_verification(&self, id: &str) -> Result<Option<LidVerification>, Error>;

    /// The tenant's verified link of `jid`, a LID or a phone JID.
    async fn verified_link(&self, jid: &Jid) -> Result<Option<VerifiedLink>, Error>;
}

/// Opens, links, logs out and removes the device sessions of the process.
#[async_trait]
pub trait DeviceManager: Send + Sync + 'static {
    /// Opens the session of `device` of `tenant`, last recorded in state `remembered`: a
    /// linked device reconnects in the background, unless it was logged out (it stays so until
    /// it is linked again) or replaced (until it is reconnected or linked again); a banned
    /// device tries once, and WhatsApp says whether the ban is over. Must be called inside a
    /// tokio runtime, once per device.
    fn open(&self, tenant: &str, device: &str, remembered: DeviceState) -> Arc<dyn DeviceSession>;

    /// Whether this process runs the client of `device` of `tenant`, and so may link, log
    /// out, reconnect or remove it: always, unless the device's state is shared with other
    /// nodes and another of them holds its lease (or none does yet).
    fn runs_here(&self, _tenant: &str, _device: &str) -> bool {
        true
    }

    /// Starts linking an unlinked, logged-out, replaced or banned device by QR code; the view
    /// shows which code to show and how it ended.
    async fn link_qr(&self, tenant: &str, device: &str) -> anyhow::Result<watch::Receiver<LinkState>>;

    /// Starts linking an unlinked, logged-out, replaced or banned device by pair code for the account
    /// of `phone_number` (digits with country code): returns the code to enter on the phone
    /// and the view of the linking.
    async fn link_pair_code(
        &self,
        tenant: &str,
        device: &str,
        phone_number: &str,
    ) -> anyhow::Result<(String, watch::Receiver<LinkState>)>;

    /// The last linking of `device` of `tenant`, in progress or finished, if it has had one
    /// since its session opened.
    fn linking(&self, tenant: &str, device: &str) -> Option<watch::Receiver<LinkState>>;

    /// The linking of `device` of `tenant` that is still going, if any. Answered through
    /// [`DeviceManager::linking`]: a manager that wraps another passes it on by that.
    fn linking_now(&self, tenant: &str, device: &str) -> Option<watch::Receiver<LinkState>> {
        self.linking(tenant, device).filter(|view| !view.borrow().is_final())
    }

    /// The devices of `tenant` whose linking is still going: those [`DeviceManager::linking_now`]
    /// answers for, found in one call (a list of a tenant's thousand devices asks once, not a
    /// thousand times). A manager that wraps another passes it on.
    fn devices_linking(&self, tenant: &str) -> HashSet<String>;

    /// How many WhatsApp clients run now, one per session that is connected, connecting or
    /// linking. A device without one neither reconnects nor links by itself.
    fn clients_running(&self) -> usize;

    /// Stops a linking in progress; the device is unlinked again.
    async fn cancel_link(&self, tenant: &str, device: &str) -> anyhow::Result<()>;

    /// Connects a replaced, banned or disconnected device again, on its own session: no new
    /// link, the keys are kept. For a replaced device this takes the session back from the
    /// other client ("use here").
    async fn reconnect(&self, tenant: &str, device: &str) -> anyhow::Result<()>;

    /// Unlinks a connected device from its WhatsApp account (as "log out" on the phone
    /// would); it stays, logged out, until it is linked again.
    async fn logout(&self, tenant: &str, device: &str) -> anyhow::Result<()>;

    /// Logs the device out if it is linked, closes its session and deletes its session data;
    /// a linking in progress fails. Waits for an operation on the device under way (a linking
    /// starting its client), finishes even if the caller goes away, and may be called again
    /// after a failure: once it returns `Ok`, no client and no store of the device are left.
    /// Refused for a shared device another node runs.
    async fn remove(&self, tenant: &str, device: &str) -> anyhow::Result<()>;

    /// [`remove`](Self::remove) for a shared device whose node is gone (or cannot be asked):
    /// its state and lease are deleted from here all the same — a node that still runs it
    /// after all is refused its next write and stops its client at its next turn — but nobody
    /// logs it out of WhatsApp. Where devices are not shared, `remove`.
    async fn forget(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.remove(tenant, device).await
    }

    /// Disconnects every session, flushing its state, and waits for them to stop.
    async fn shutdown(&self);
}

/// Is told every change of a device's status, with the device's tenant and the lease its
/// session runs under, and records it unless the device's status was recorded under a later
/// lease since (see [`Store::record_device_statuses`](waedge_store::Store::record_device_statuses)).
#[async_trait]
pub trait StatusObserver: Send + Sync + 'static {
    /// Notes a change, to be recorded soon after; never waits. Of the changes of one device
    /// not recorded yet, the latest under the latest lease wins.
    fn changed(&self, tenant: &str, status: &DeviceStatus, under: LeaseEpoch);

    /// Notes a change the device must not forget in a crash (a terminal state) and returns
    /// once it is recorded (or left out for a later lease's), with every change noted before
    /// it.
    async fn settled(&self, tenant: &str, status: &DeviceStatus, under: LeaseEpoch) -> anyhow::Result<()>;

    /// Returns once every change noted so far is recorded.
    async fn flushed(&self) -> anyhow::Result<()>;
}

/// Where device sessions keep their messages: what WhatsApp delivers, committed before
/// WhatsApp is told it arrived, and what they send, recorded before it is handed to WhatsApp,
/// with how far it got.
#[async_trait]
pub trait Mailbox: Send + Sync + 'static {
    /// Commits `events` of `tenant` durably, all or none, in order; an event committed
    /// before (the same deduplication key) is not committed again. On `Err` WhatsApp is not
    /// told the events arrived, and delivers them again.
    async fn commit(&self, tenant: &str, events: Vec<NewEvent>) -> anyhow::Result<()>;

    /// Records a message of `tenant` about to be sent, unless one with its id was recorded
    /// before (`waedge_store::Store::begin_send`).
    async fn begin_send(&self, tenant: &str, send: NewSend) -> anyhow::Result<Begun>;

    /// Forgets a message whose send failed before WhatsApp had it, if it is still pending.
    async fn forget_send(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<()>;

    /// The message `id` that `device` of `tenant` sent, if any.
    async fn sent_message(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<Option<SentMessage>>;

    /// Records the names `device` of `tenant` learned for `contacts`, each change with its
    /// event (`waedge_store::Store::remember_names`).
    async fn remember_names(&self, tenant: &str, device: &str, contacts: Vec<Contact>) -> anyhow::Result<()>;

    /// The names `device` of `tenant` recorded for `jid`, if any.
    async fn contact_names(&self, tenant: &str, device: &str, jid: &str) -> anyhow::Result<Option<Contact>>;

    /// The sender of the message `id` that `device` of `tenant` received in `chat`, if any.
    async fn received_from(&self, tenant: &str, device: &str, chat: &str, id: &str) -> anyhow::Result<Option<String>>;

    /// Moves sent messages of `device` of `tenant` forward to the statuses WhatsApp reported,
    /// each change with its event.
    async fn change_status(&self, tenant: &str, device: &str, changes: Vec<StatusChange>) -> anyhow::Result<()>;

    /// Records a LID verification of `tenant` with a new code, unless a limit says not now
    /// (`waedge_store::Store::start_lid_verification`).
    async fn start_lid_verification(&self, tenant: &str, new: NewVerification) -> anyhow::Result<Started>;

    /// Forgets a verification whose code was never sent.
    async fn forget_lid_verification(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<()>;

    /// The verification `id` that `device` of `tenant` started, if any.
    async fn lid_verification(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<Option<LidVerification>>;

    /// The verified link of `jid` (a LID or a phone JID) in `tenant`, if any.
    async fn verified_link(&self, tenant: &str, jid: &str) -> anyhow::Result<Option<VerifiedLink>>;
}

/// Whether a device in `state` has no client and gets none by itself: logged out, replaced,
/// or banned (until the ban is over).
pub fn is_terminal(state: DeviceState) -> bool {
    matches!(state, DeviceState::LoggedOut | DeviceState::Replaced | DeviceState::Banned)
}

/// The error for a query on a device whose session is not connected.
pub fn not_connected(state: DeviceState) -> Error {
    Error::DeviceNotConnected(state)
}

//! Device sessions: one live WhatsApp connection per linked phone.
//!
//! The [`DeviceSession`] trait is the whole surface the rest of the host uses; the `whatsapp`
//! capability calls it and never sees a `whatsapp-rust` type. [`cache::Cached`] puts a TTL
//! cache in front of any session; [`whatsapp::WhatsappDevice`] is the real implementation on
//! the `whatsapp-rust` client. Tests provide fixture-backed implementations.
//!
//! Arguments are already-validated [`Jid`]s; answers use the WIT types of
//! [`crate::bindings::types`], so what a session returns is exactly what a component sees.

pub mod cache;
pub mod whatsapp;

use async_trait::async_trait;
use waedge_jid::Jid;

use crate::bindings::types::{
    BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, OnWhatsapp,
    ProfilePicture, UserInfo,
};

/// One device's WhatsApp session.
#[async_trait]
pub trait DeviceSession: Send + Sync + 'static {
    /// The current state and identity of the device. Cheap; never waits on the network.
    fn status(&self) -> DeviceStatus;

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
}

/// The error for a query on a device whose session is not connected.
pub fn not_connected(state: DeviceState) -> Error {
    Error::DeviceNotConnected(state_name(state).to_string())
}

/// The WIT name of a device state, e.g. `"logged-out"`.
pub fn state_name(state: DeviceState) -> &'static str {
    match state {
        DeviceState::Unlinked => "unlinked",
        DeviceState::Connecting => "connecting",
        DeviceState::Connected => "connected",
        DeviceState::Disconnected => "disconnected",
        DeviceState::LoggedOut => "logged-out",
        DeviceState::Replaced => "replaced",
        DeviceState::Banned => "banned",
    }
}

//! `waedge:gateway/whatsapp`: WhatsApp queries, only on the calling tenant's devices.
//!
//! Every call names a device id; an id the tenant does not have is `device-not-found`,
//! whether or not another tenant has it. JID arguments are parsed strictly (components
//! normalise user input; the host only checks it). Queries need a connected device and are
//! bounded by the request's deadline.

use std::sync::Arc;

use waedge_jid::Jid;

use super::Capabilities;
use crate::bindings::types::{
    BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, OnWhatsapp, ProfilePicture, UserInfo,
};
use crate::bindings::whatsapp::Host;
use crate::device::{DeviceSession, not_connected};

/// The most JIDs one user-info or is-on-whatsapp call may carry.
pub const MAX_JIDS_PER_CALL: usize = 100;

impl Capabilities {
    /// The tenant's session for `device`, if it is connected.
    fn connected(&self, device: &str) -> Result<Arc<dyn DeviceSession>, Error> {
        let session = self.tenant.device(device).ok_or(Error::DeviceNotFound)?;
        match session.status().state {
            DeviceState::Connected => Ok(session.clone()),
            other => Err(not_connected(other)),
        }
    }

    async fn query<T>(&self, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        self.within_deadline(call, Err(Error::Timeout)).await
    }
}

fn parse(jid: &str) -> Result<Jid, Error> {
    Jid::parse(jid).map_err(|e| Error::InvalidJid(e.to_string()))
}

fn parse_contact(jid: &str) -> Result<Jid, Error> {
    let parsed = parse(jid)?;
    if parsed.is_group() {
        return Err(Error::InvalidJid(format!("{jid} is a group, not a contact")));
    }
    Ok(parsed)
}

fn parse_contacts(jids: &[String]) -> Result<Vec<Jid>, Error> {
    if jids.len() > MAX_JIDS_PER_CALL {
        return Err(Error::InvalidJid(format!("at most {MAX_JIDS_PER_CALL} JIDs per call, got {}", jids.len())));
    }
    jids.iter().map(|jid| parse_contact(jid)).collect()
}

impl Host for Capabilities {
    async fn list_devices(&mut self) -> Vec<DeviceStatus> {
        self.tenant.devices().map(|session| session.status()).collect()
    }

    async fn get_device(&mut self, device: String) -> Result<DeviceStatus, Error> {
        self.tenant.device(&device).map(|session| session.status()).ok_or(Error::DeviceNotFound)
    }

    async fn get_user_info(&mut self, device: String, jids: Vec<String>) -> Result<Vec<UserInfo>, Error> {
        let session = self.connected(&device)?;
        let jids = parse_contacts(&jids)?;
        self.query(session.user_info(&jids)).await
    }

    async fn get_profile_picture(
        &mut self,
        device: String,
        jid: String,
        preview: bool,
    ) -> Result<Option<ProfilePicture>, Error> {
        let session = self.connected(&device)?;
        let jid = parse(&jid)?;
        self.query(session.profile_picture(&jid, preview)).await
    }

    async fn get_business_profile(&mut self, device: String, jid: String) -> Result<Option<BusinessProfile>, Error> {
        let session = self.connected(&device)?;
        let jid = parse_contact(&jid)?;
        self.query(session.business_profile(&jid)).await
    }

    async fn get_lid_mapping(&mut self, device: String, jid: String) -> Result<Option<LidMapping>, Error> {
        let session = self.connected(&device)?;
        let jid = parse_contact(&jid)?;
        self.query(session.lid_mapping(&jid)).await
    }

    async fn is_on_whatsapp(&mut self, device: String, jids: Vec<String>) -> Result<Vec<OnWhatsapp>, Error> {
        let session = self.connected(&device)?;
        let jids = parse_contacts(&jids)?;
        self.query(session.is_on_whatsapp(&jids)).await
    }

    async fn list_joined_groups(&mut self, device: String) -> Result<Vec<Group>, Error> {
        let session = self.connected(&device)?;
        self.query(session.joined_groups()).await
    }

    async fn get_group_info(&mut self, device: String, jid: String) -> Result<Group, Error> {
        let session = self.connected(&device)?;
        let jid = parse(&jid)?;
        if !jid.is_group() {
            return Err(Error::InvalidJid(format!("{jid} is not a group JID (…@g.us)")));
        }
        self.query(session.group_info(&jid)).await
    }

    async fn get_contact(&mut self, device: String, jid: String) -> Result<Option<Contact>, Error> {
        let session = self.connected(&device)?;
        let jid = parse_contact(&jid)?;
        self.query(session.contact(&jid)).await
    }
}

//! Fixture-backed device sessions: what each test device "knows" about WhatsApp, read from a
//! TOML file a reader can open (`fixtures/world.toml`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::watch;
use waedge_contract::types::{
    BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, LidVerification, OnWhatsapp,
    ProfilePicture, SendOutcome, SentMessage, UserInfo, VerifiedLink,
};
use waedge_device::link::LinkState;
use waedge_device::{DeviceManager, DeviceSession, TextMessage, VerificationRequest, not_connected};
use waedge_jid::Jid;

/// Every fixture device, by `tenant/device` key.
#[derive(Debug, Clone, Deserialize)]
pub struct World {
    /// The devices.
    pub devices: BTreeMap<String, DeviceWorld>,
}

/// What one device sees.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceWorld {
    /// The session state.
    pub state: DeviceState,
    /// The linked account.
    pub jid: Option<String>,
    /// The linked account's LID.
    pub lid: Option<String>,
    /// The linked account's push name.
    pub push_name: Option<String>,
    /// User info WhatsApp returns, keyed by phone JID (found by phone JID or LID).
    #[serde(default)]
    pub users: Vec<UserInfo>,
    /// Profile pictures.
    #[serde(default)]
    pub pictures: Vec<Picture>,
    /// Business profiles.
    #[serde(default)]
    pub businesses: Vec<BusinessProfile>,
    /// LID ↔ phone mappings WhatsApp gave this device.
    #[serde(default)]
    pub mappings: Vec<LidMapping>,
    /// Names learned for contacts.
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Groups the device knows of.
    #[serde(default)]
    pub groups: Vec<FixtureGroup>,
}

/// A picture of a user or group.
#[derive(Debug, Clone, Deserialize)]
pub struct Picture {
    /// Whose picture.
    pub jid: String,
    /// Thumbnail (`true`) or full image.
    pub preview: bool,
    /// The picture.
    #[serde(flatten)]
    pub picture: ProfilePicture,
}

/// A group, and whether the device participates in it.
#[derive(Debug, Clone, Deserialize)]
pub struct FixtureGroup {
    /// The device is a participant.
    pub member: bool,
    /// The group.
    #[serde(flatten)]
    pub group: Group,
}

impl World {
    /// Loads a world file.
    pub fn load(path: &Path) -> anyhow::Result<World> {
        Ok(toml::from_str(&std::fs::read_to_string(path)?)?)
    }

    /// The fixture session for `tenant/device`; a device missing from the file is unlinked.
    pub fn session(&self, tenant: &str, device: &str) -> FixtureDevice {
        let world = self.devices.get(&format!("{tenant}/{device}")).cloned().unwrap_or(DeviceWorld {
            state: DeviceState::Unlinked,
            jid: None,
            lid: None,
            push_name: None,
            users: Vec::new(),
            pictures: Vec::new(),
            businesses: Vec::new(),
            mappings: Vec::new(),
            contacts: Vec::new(),
            groups: Vec::new(),
        });
        FixtureDevice { id: device.to_string(), world }
    }
}

/// Opens fixture sessions from a [`World`]. Fixture devices are linked (or not) by the world
/// file: linking, logging out and removing them are refused.
pub struct FixtureDevices(pub World);

#[async_trait]
impl DeviceManager for FixtureDevices {
    fn open(&self, tenant: &str, device: &str, _remembered: DeviceState) -> Arc<dyn DeviceSession> {
        Arc::new(self.0.session(tenant, device))
    }

    async fn link_qr(&self, _: &str, _: &str) -> anyhow::Result<watch::Receiver<LinkState>> {
        anyhow::bail!("fixture devices are linked by the world file")
    }

    async fn link_pair_code(&self, _: &str, _: &str, _: &str) -> anyhow::Result<(String, watch::Receiver<LinkState>)> {
        anyhow::bail!("fixture devices are linked by the world file")
    }

    fn linking(&self, _: &str, _: &str) -> Option<watch::Receiver<LinkState>> {
        None
    }

    fn devices_linking(&self, _: &str) -> HashSet<String> {
        HashSet::new()
    }

    fn clients_running(&self) -> usize {
        0
    }

    async fn cancel_link(&self, _: &str, _: &str) -> anyhow::Result<()> {
        anyhow::bail!("fixture devices are never being linked")
    }

    async fn reconnect(&self, _: &str, _: &str) -> anyhow::Result<()> {
        anyhow::bail!("fixture devices are connected by the world file")
    }

    async fn logout(&self, _: &str, _: &str) -> anyhow::Result<()> {
        anyhow::bail!("fixture devices are linked by the world file")
    }

    async fn remove(&self, _: &str, _: &str) -> anyhow::Result<()> {
        Ok(())
    }

    async fn shutdown(&self) {}
}

/// A device session answering from a [`DeviceWorld`].
pub struct FixtureDevice {
    id: String,
    world: DeviceWorld,
}

impl FixtureDevice {
    fn connected(&self) -> Result<&DeviceWorld, Error> {
        match self.world.state {
            DeviceState::Connected => Ok(&self.world),
            other => Err(not_connected(other)),
        }
    }

    fn user(&self, jid: &Jid) -> Option<UserInfo> {
        let text = jid.to_string();
        let found = self.world.users.iter().find(|u| u.jid == text || u.lid.as_deref() == Some(text.as_str()))?;
        Some(UserInfo { jid: text, ..found.clone() })
    }
}

#[async_trait]
impl DeviceSession for FixtureDevice {
    fn status(&self) -> DeviceStatus {
        DeviceStatus {
            id: self.id.clone(),
            state: self.world.state,
            jid: self.world.jid.clone(),
            lid: self.world.lid.clone(),
            push_name: self.world.push_name.clone(),
        }
    }

    async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error> {
        self.connected()?;
        Ok(jids.iter().filter_map(|jid| self.user(jid)).collect())
    }

    async fn profile_picture(&self, jid: &Jid, preview: bool) -> Result<Option<ProfilePicture>, Error> {
        let text = jid.to_string();
        Ok(self.connected()?.pictures.iter().find(|p| p.jid == text && p.preview == preview).map(|p| p.picture.clone()))
    }

    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error> {
        let text = jid.to_string();
        Ok(self.connected()?.businesses.iter().find(|b| b.jid == text).cloned())
    }

    async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error> {
        let text = jid.to_string();
        Ok(self.connected()?.mappings.iter().find(|m| m.lid == text || m.phone_jid == text).cloned())
    }

    async fn is_on_whatsapp(&self, jids: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
        self.connected()?;
        Ok(jids
            .iter()
            .map(|jid| {
                let user = self.user(jid);
                OnWhatsapp {
                    jid: jid.to_string(),
                    registered: user.is_some(),
                    lid: user.as_ref().and_then(|u| u.lid.clone()),
                    is_business: user.as_ref().and_then(|u| u.is_business).unwrap_or(false),
                    verified_name: user.and_then(|u| u.verified_name).filter(|n| !n.is_empty()),
                }
            })
            .collect())
    }

    async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
        Ok(self.connected()?.groups.iter().filter(|g| g.member).map(|g| g.group.clone()).collect())
    }

    async fn group_info(&self, jid: &Jid) -> Result<Group, Error> {
        let text = jid.to_string();
        match self.connected()?.groups.iter().find(|g| g.group.jid == text) {
            Some(g) if g.member => Ok(g.group.clone()),
            Some(_) => Err(Error::Forbidden("the device is not a participant of this group".into())),
            None => Err(Error::NotFound),
        }
    }

    async fn contact(&self, jid: &Jid) -> Result<Option<Contact>, Error> {
        let text = jid.to_string();
        Ok(self.connected()?.contacts.iter().find(|c| c.jid == text).cloned())
    }

    /// The fixture world answers look-ups only: messages (and verification codes) are sent to
    /// wa-sim by the tests of `host/tests` (`sending.rs`, `lid_links.rs`).
    async fn send_text(&self, _: &TextMessage) -> Result<SendOutcome, Error> {
        self.connected()?;
        Err(Error::Upstream("the fixture world sends no messages: send through wa-sim".into()))
    }

    async fn sent_message(&self, _: &str) -> Result<Option<SentMessage>, Error> {
        Ok(None)
    }

    async fn start_lid_verification(&self, _: &VerificationRequest) -> Result<LidVerification, Error> {
        self.connected()?;
        Err(Error::Upstream("the fixture world sends no messages: send through wa-sim".into()))
    }

    async fn lid_verification(&self, _: &str) -> Result<Option<LidVerification>, Error> {
        Ok(None)
    }

    async fn verified_link(&self, _: &Jid) -> Result<Option<VerifiedLink>, Error> {
        Ok(None)
    }
}

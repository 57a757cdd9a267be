//! Contract 0.1.0 for the components built against it: each of its calls is the current
//! contract's, with the arguments and answers converted.
//!
//! 0.1.0 named the device in every `whatsapp` call instead of opening it, carried the state
//! of a device that is not connected and the business hours as text, had its own `config`
//! and `logging` interfaces (now `wasi:config/store` and `wasi:logging`) and a `tenant` in
//! the principal. Everything else is the same shape under another package version.

use std::sync::Arc;

use waedge_contract::types as current;
use waedge_contract::v0_1::{auth, config, logging, types, whatsapp};
use waedge_device::DeviceSession;
use wasmtime::component::Linker;

use super::{Capabilities, CapabilitiesView, HasCapabilities};

/// Links contract 0.1.0's interfaces into `linker`.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> CapabilitiesView<'_>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HasCapabilities>(linker, view)?;
    whatsapp::add_to_linker::<_, HasCapabilities>(linker, view)?;
    auth::add_to_linker::<_, HasCapabilities>(linker, view)?;
    config::add_to_linker::<_, HasCapabilities>(linker, view)?;
    logging::add_to_linker::<_, HasCapabilities>(linker, view)
}

impl types::Host for CapabilitiesView<'_> {}

impl CapabilitiesView<'_> {
    /// The capabilities and the tenant's session for `device`, or 0.1.0's error.
    fn device(&self, device: &str) -> Result<(&Capabilities, Arc<dyn DeviceSession>), types::Error> {
        Ok((&*self.capabilities, self.capabilities.session(device).map_err(error)?))
    }
}

impl whatsapp::Host for CapabilitiesView<'_> {
    async fn list_devices(&mut self) -> Vec<types::DeviceStatus> {
        self.capabilities.scope.devices().map(|session| status(session.status())).collect()
    }

    async fn get_device(&mut self, device: String) -> Result<types::DeviceStatus, types::Error> {
        Ok(status(self.capabilities.session(&device).map_err(error)?.status()))
    }

    async fn get_user_info(&mut self, device: String, jids: Vec<String>) -> Result<Vec<types::UserInfo>, types::Error> {
        let (caps, session) = self.device(&device)?;
        let infos = caps.user_info(&*session, &jids).await.map_err(error)?;
        Ok(infos.into_iter().map(user_info).collect())
    }

    async fn get_profile_picture(
        &mut self,
        device: String,
        jid: String,
        preview: bool,
    ) -> Result<Option<types::ProfilePicture>, types::Error> {
        let (caps, session) = self.device(&device)?;
        let picture = caps.profile_picture(&*session, &jid, preview).await.map_err(error)?;
        Ok(picture.map(|p| types::ProfilePicture { id: p.id, url: p.url, direct_path: p.direct_path }))
    }

    async fn get_business_profile(
        &mut self,
        device: String,
        jid: String,
    ) -> Result<Option<types::BusinessProfile>, types::Error> {
        let (caps, session) = self.device(&device)?;
        Ok(caps.business_profile(&*session, &jid).await.map_err(error)?.map(business_profile))
    }

    async fn get_lid_mapping(
        &mut self,
        device: String,
        jid: String,
    ) -> Result<Option<types::LidMapping>, types::Error> {
        let (caps, session) = self.device(&device)?;
        let mapping = caps.lid_mapping(&*session, &jid).await.map_err(error)?;
        Ok(mapping.map(|m| types::LidMapping { lid: m.lid, phone_jid: m.phone_jid }))
    }

    async fn is_on_whatsapp(
        &mut self,
        device: String,
        jids: Vec<String>,
    ) -> Result<Vec<types::OnWhatsapp>, types::Error> {
        let (caps, session) = self.device(&device)?;
        let answers = caps.is_on_whatsapp(&*session, &jids).await.map_err(error)?;
        Ok(answers
            .into_iter()
            .map(|a| types::OnWhatsapp {
                jid: a.jid,
                registered: a.registered,
                lid: a.lid,
                is_business: a.is_business,
                verified_name: a.verified_name,
            })
            .collect())
    }

    async fn list_joined_groups(&mut self, device: String) -> Result<Vec<types::Group>, types::Error> {
        let (caps, session) = self.device(&device)?;
        Ok(caps.joined_groups(&*session).await.map_err(error)?.into_iter().map(group).collect())
    }

    async fn get_group_info(&mut self, device: String, jid: String) -> Result<types::Group, types::Error> {
        let (caps, session) = self.device(&device)?;
        caps.group_info(&*session, &jid).await.map(group).map_err(error)
    }

    async fn get_contact(&mut self, device: String, jid: String) -> Result<Option<types::Contact>, types::Error> {
        let (caps, session) = self.device(&device)?;
        let contact = caps.contact(&*session, &jid).await.map_err(error)?;
        Ok(contact.map(|c| types::Contact {
            jid: c.jid,
            push_name: c.push_name,
            business_name: c.business_name,
            full_name: c.full_name,
        }))
    }
}

impl auth::Host for CapabilitiesView<'_> {
    async fn verify_token(&mut self, token: String) -> Option<auth::Principal> {
        let principal = self.capabilities.principal(&token)?;
        Some(auth::Principal {
            tenant: self.capabilities.scope.tenant().to_string(),
            user: principal.user,
            devices: principal.devices,
            scopes: principal.scopes,
        })
    }
}

impl config::Host for CapabilitiesView<'_> {
    async fn get(&mut self, key: String) -> Option<String> {
        waedge_contract::config::Host::get(self, key).await.unwrap_or_default()
    }

    async fn get_all(&mut self) -> Vec<(String, String)> {
        waedge_contract::config::Host::get_all(self).await.unwrap_or_default()
    }
}

impl logging::Host for CapabilitiesView<'_> {
    async fn log(&mut self, level: logging::Level, message: String) {
        use waedge_contract::logging::Level;
        let level = match level {
            logging::Level::Trace => Level::Trace,
            logging::Level::Debug => Level::Debug,
            logging::Level::Info => Level::Info,
            logging::Level::Warn => Level::Warn,
            logging::Level::Error => Level::Error,
        };
        self.capabilities.log.write(level, "", &message);
    }
}

fn error(error: current::Error) -> types::Error {
    match error {
        current::Error::DeviceNotFound => types::Error::DeviceNotFound,
        current::Error::DeviceNotConnected(state) => types::Error::DeviceNotConnected(state.to_string()),
        current::Error::InvalidJid(reason) => types::Error::InvalidJid(reason),
        current::Error::NotFound => types::Error::NotFound,
        current::Error::Forbidden(reason) => types::Error::Forbidden(reason),
        current::Error::RateLimited(seconds) => types::Error::RateLimited(seconds),
        current::Error::Timeout => types::Error::Timeout,
        current::Error::Upstream(reason) => types::Error::Upstream(reason),
    }
}

fn status(status: current::DeviceStatus) -> types::DeviceStatus {
    types::DeviceStatus {
        id: status.id,
        state: match status.state {
            current::DeviceState::Unlinked => types::DeviceState::Unlinked,
            current::DeviceState::Connecting => types::DeviceState::Connecting,
            current::DeviceState::Connected => types::DeviceState::Connected,
            current::DeviceState::Disconnected => types::DeviceState::Disconnected,
            current::DeviceState::LoggedOut => types::DeviceState::LoggedOut,
            current::DeviceState::Replaced => types::DeviceState::Replaced,
            current::DeviceState::Banned => types::DeviceState::Banned,
        },
        jid: status.jid,
        lid: status.lid,
        push_name: status.push_name,
    }
}

fn user_info(info: current::UserInfo) -> types::UserInfo {
    types::UserInfo {
        jid: info.jid,
        lid: info.lid,
        status: info.status,
        picture_id: info.picture_id,
        devices: info.devices,
        verified_name: info.verified_name,
        is_business: info.is_business,
    }
}

/// 0.1.0 spelt the days and modes as WhatsApp does.
fn business_profile(profile: current::BusinessProfile) -> types::BusinessProfile {
    types::BusinessProfile {
        jid: profile.jid,
        description: profile.description,
        email: profile.email,
        websites: profile.websites,
        categories: profile
            .categories
            .into_iter()
            .map(|c| types::BusinessCategory { id: c.id, name: c.name })
            .collect(),
        address: profile.address,
        time_zone: profile.time_zone,
        hours: profile
            .hours
            .into_iter()
            .map(|h| types::BusinessHours {
                day_of_week: h.day_of_week.to_string(),
                mode: h.mode.to_string(),
                open_time: h.open_time,
                close_time: h.close_time,
            })
            .collect(),
    }
}

fn group(group: current::Group) -> types::Group {
    types::Group {
        jid: group.jid,
        subject: group.subject,
        description: group.description,
        participants: group.participants,
        participant_count: group.participant_count,
        is_announce: group.is_announce,
        is_locked: group.is_locked,
        is_ephemeral: group.is_ephemeral,
        is_join_approval_required: group.is_join_approval_required,
    }
}

//! `waedge:gateway/whatsapp`: WhatsApp queries, only on the calling tenant's devices.
//!
//! A component opens a device by id; an id the tenant does not have is `device-not-found`,
//! whether or not another tenant has it. The opened device is an [`OpenDevice`] in the
//! store's resource table, so every further call is on a device the tenant owns. JID
//! arguments are parsed strictly (components normalise user input; the host only checks it).
//! Queries need a connected device and are bounded by the request's deadline; sends also by
//! the device's send rate (the tenant's `sends_per_minute`).

use std::sync::Arc;

use waedge_contract::OpenDevice;
use waedge_contract::types::{
    BusinessProfile, Contact, ContactProfile, DeviceState, DeviceStatus, Error, Group, LidMapping, LidVerification,
    LidVerificationRequest, OnWhatsapp, OutgoingText, ProfileExtras, ProfilePicture, SendOutcome, SentMessage,
    UserInfo, VerifiedLink,
};
use waedge_contract::whatsapp::{Host, HostDevice};
use waedge_device::{DeviceSession, TextMessage, VerificationRequest, is_terminal, not_connected, verification};
use waedge_jid::Jid;
use wasmtime::component::Resource;

use super::{Capabilities, CapabilitiesView};

/// The most JIDs one user-info or is-on-whatsapp call may carry.
pub const MAX_JIDS_PER_CALL: usize = 100;

impl Capabilities {
    /// The tenant's session for `device`.
    pub fn session(&self, device: &str) -> Result<Arc<dyn DeviceSession>, Error> {
        self.scope.device(device).cloned().ok_or(Error::DeviceNotFound)
    }

    async fn query<T>(&self, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        self.within_deadline(call, Err(Error::Timeout)).await
    }

    /// User info for `jids` from `session`.
    pub async fn user_info(&self, session: &dyn DeviceSession, jids: &[String]) -> Result<Vec<UserInfo>, Error> {
        connected(session)?;
        let jids = parse_contacts(jids)?;
        self.query(session.user_info(&jids)).await
    }

    /// The profile picture of `jid` from `session`.
    pub async fn profile_picture(
        &self,
        session: &dyn DeviceSession,
        jid: &str,
        preview: bool,
    ) -> Result<Option<ProfilePicture>, Error> {
        connected(session)?;
        let jid = parse(jid)?;
        self.query(session.profile_picture(&jid, preview)).await
    }

    /// The business profile of `jid` from `session`.
    pub async fn business_profile(
        &self,
        session: &dyn DeviceSession,
        jid: &str,
    ) -> Result<Option<BusinessProfile>, Error> {
        connected(session)?;
        let jid = parse_contact(jid)?;
        self.query(session.business_profile(&jid)).await
    }

    /// The LID ↔ phone mapping of `jid` that `session` knows.
    pub async fn lid_mapping(&self, session: &dyn DeviceSession, jid: &str) -> Result<Option<LidMapping>, Error> {
        connected(session)?;
        let jid = parse_contact(jid)?;
        self.query(session.lid_mapping(&jid)).await
    }

    /// Whether each of `jids` is on WhatsApp, asked through `session`.
    pub async fn is_on_whatsapp(&self, session: &dyn DeviceSession, jids: &[String]) -> Result<Vec<OnWhatsapp>, Error> {
        connected(session)?;
        let jids = parse_contacts(jids)?;
        self.query(session.is_on_whatsapp(&jids)).await
    }

    /// Every group `session`'s account participates in.
    pub async fn joined_groups(&self, session: &dyn DeviceSession) -> Result<Vec<Group>, Error> {
        connected(session)?;
        self.query(session.joined_groups()).await
    }

    /// The group `jid`, as `session` sees it.
    pub async fn group_info(&self, session: &dyn DeviceSession, jid: &str) -> Result<Group, Error> {
        connected(session)?;
        let jid = parse(jid)?;
        if !jid.is_group() {
            return Err(Error::InvalidJid(format!("{jid} is not a group JID (…@g.us)")));
        }
        self.query(session.group_info(&jid)).await
    }

    /// The names `session` learned for `jid`.
    pub async fn contact(&self, session: &dyn DeviceSession, jid: &str) -> Result<Option<Contact>, Error> {
        connected(session)?;
        let jid = parse_contact(jid)?;
        self.query(session.contact(&jid)).await
    }

    /// Everything a profile shows of the contact `jid`, in one call (see the contract's
    /// `get-contact-profile`): the user info first; then the LID mapping, the picture and the
    /// business profile at once; then the names, which may need the mapping.
    pub async fn contact_profile(
        &self,
        session: &dyn DeviceSession,
        jid: &str,
        extras: ProfileExtras,
    ) -> Result<ContactProfile, Error> {
        connected(session)?;
        let jid = parse_contact(jid)?;
        self.query(async {
            let info =
                session.user_info(std::slice::from_ref(&jid)).await?.into_iter().next().ok_or(Error::NotFound)?;
            let picture = async {
                let shown = info.picture_id.as_deref().is_some_and(|id| !id.is_empty());
                if extras.contains(ProfileExtras::PICTURE) && shown {
                    session.profile_picture(&jid, extras.contains(ProfileExtras::PREVIEW)).await
                } else {
                    Ok(None)
                }
            };
            let business_profile = async {
                if extras.contains(ProfileExtras::BUSINESS_PROFILE) && info.is_business == Some(true) {
                    session.business_profile(&jid).await
                } else {
                    Ok(None)
                }
            };
            let (lid_mapping, picture, business_profile) =
                tokio::try_join!(session.lid_mapping(&jid), picture, business_profile)?;
            // Names may have been learned under the other identity of the same account; only
            // the mapping WhatsApp gave links the two.
            let alias = if jid.is_lid() {
                lid_mapping.as_ref().map(|m| m.phone_jid.clone())
            } else {
                info.lid.clone().or_else(|| lid_mapping.as_ref().map(|m| m.lid.clone()))
            };
            let names = match session.contact(&jid).await? {
                Some(names) => Some(names),
                None => match alias.as_deref().map(Jid::parse) {
                    Some(Ok(alias)) => session.contact(&alias).await?,
                    _ => None,
                },
            };
            Ok(ContactProfile { info, lid_mapping, picture, business_profile, names })
        })
        .await
    }
}

impl Capabilities {
    /// Sends `message` from the tenant's device `device` (whose session is `session`), if the
    /// device's send rate allows it. When the request's deadline passes first, the caller gets
    /// `timeout` and finds the message by its idempotency key.
    pub async fn send_text(
        &self,
        device: &str,
        session: Arc<dyn DeviceSession>,
        message: OutgoingText,
    ) -> Result<SendOutcome, Error> {
        connected(&*session)?;
        let to = parse(&message.to)?;
        if to.device().is_some() || !(to.is_phone() || to.is_lid() || to.is_group()) {
            return Err(Error::InvalidJid(format!(
                "{to} is not a user's phone JID or LID without a device part, nor a group"
            )));
        }
        let OutgoingText { text, reply_to, idempotency_key, .. } = message;
        let message = TextMessage { to, text, reply_to, idempotency_key };
        message.check().map_err(Error::Forbidden)?;
        let sending = session.clone();
        self.send(device, &*session, async move { sending.send_text(&message).await }).await
    }

    /// The message `id` that `session` sent, if any.
    pub async fn sent_message(&self, session: &dyn DeviceSession, id: &str) -> Result<Option<SentMessage>, Error> {
        self.query(session.sent_message(id)).await
    }

    /// Sends a one-time code from the tenant's device `device` (whose session is `session`) to
    /// link a phone number to the LID that answers (see the contract's
    /// `start-lid-verification`); the code's message is a send like any other, under the
    /// device's send rate.
    pub async fn start_lid_verification(
        &self,
        device: &str,
        session: Arc<dyn DeviceSession>,
        request: LidVerificationRequest,
    ) -> Result<LidVerification, Error> {
        connected(&*session)?;
        let phone_jid = parse(&request.phone_jid)?;
        if !phone_jid.is_phone() || phone_jid.device().is_some() {
            return Err(Error::InvalidJid(format!(
                "{phone_jid} is not a phone JID without a device part: a code goes to a phone number"
            )));
        }
        let ttl_seconds = request.ttl_seconds.unwrap_or(verification::DEFAULT_TTL_SECONDS);
        let request = VerificationRequest { phone_jid, text: request.text, ttl_seconds };
        request.check().map_err(Error::Forbidden)?;
        let sending = session.clone();
        self.send(device, &*session, async move { sending.start_lid_verification(&request).await }).await
    }

    /// The verification `id` that `session` started, if any.
    pub async fn lid_verification(
        &self,
        session: &dyn DeviceSession,
        id: &str,
    ) -> Result<Option<LidVerification>, Error> {
        self.query(session.lid_verification(id)).await
    }

    /// The tenant's verified link of `jid`, a LID or a phone JID, if any.
    pub async fn verified_link(&self, session: &dyn DeviceSession, jid: &str) -> Result<Option<VerifiedLink>, Error> {
        let jid = parse_contact(jid)?;
        if jid.device().is_some() {
            return Err(Error::InvalidJid(format!("{jid} names a device: name the user's LID or phone JID")));
        }
        self.query(session.verified_link(&jid)).await
    }

    /// Runs `send` on `session` if the send rate of `device` allows it: counted here when this
    /// node runs the device, else by the node that does (every send of the device passes
    /// there, whichever node took its request). The send runs to its end even when the
    /// request's deadline passes first: what it recorded is finished, never left half-done.
    async fn send<T: Send + 'static>(
        &self,
        device: &str,
        session: &dyn DeviceSession,
        send: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        if session.runs_here()
            && let Err(wait) = self.scope.take_send(device)
        {
            return Err(rate_limited(wait));
        }
        let send = tokio::spawn(send);
        self.query(async { send.await.unwrap_or_else(|e| Err(Error::Upstream(format!("the send failed: {e}")))) }).await
    }
}

/// The error of a send the device's send rate refuses for `wait`.
pub fn rate_limited(wait: std::time::Duration) -> Error {
    Error::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u32)
}

/// `Ok` when `session` is connected, else the error that says in which state it is. A device
/// another node runs passes unless it stopped for good: what is recorded of it may lag behind
/// it (the node that took it over has not written its status yet), so its calls are made
/// there, where the session answers for itself, or answer `connecting` when no node runs it.
pub(crate) fn connected(session: &dyn DeviceSession) -> Result<(), Error> {
    match session.state() {
        DeviceState::Connected => Ok(()),
        state if !session.runs_here() && !is_terminal(state) => Ok(()),
        other => Err(not_connected(other)),
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

impl CapabilitiesView<'_> {
    /// The session behind a device the component opened. The component model only hands the
    /// host handles of this table, and the tenant's devices do not change during a request,
    /// so a miss cannot happen; it would read as an unknown device.
    fn opened(&self, device: &Resource<OpenDevice>) -> Result<Arc<dyn DeviceSession>, Error> {
        let open = self.table.get(device).map_err(|_| Error::DeviceNotFound)?;
        self.capabilities.session(&open.id)
    }
}

impl Host for CapabilitiesView<'_> {
    async fn list_devices(&mut self) -> Vec<DeviceStatus> {
        self.capabilities.scope.devices().map(|session| session.status()).collect()
    }

    async fn open_device(&mut self, id: String) -> wasmtime::Result<Result<Resource<OpenDevice>, Error>> {
        if let Err(unknown) = self.capabilities.session(&id) {
            return Ok(Err(unknown));
        }
        // A full table is the component holding too many handles: it traps, and the runtime
        // reports the limit like any other.
        Ok(Ok(self.table.push(OpenDevice { id })?))
    }
}

impl HostDevice for CapabilitiesView<'_> {
    async fn status(&mut self, device: Resource<OpenDevice>) -> wasmtime::Result<DeviceStatus> {
        let id = &self.table.get(&device)?.id;
        Ok(self.capabilities.session(id).map_err(|_| wasmtime::format_err!("device `{id}` vanished"))?.status())
    }

    async fn get_user_info(&mut self, device: Resource<OpenDevice>, jids: Vec<String>) -> Result<Vec<UserInfo>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.user_info(&*session, &jids).await
    }

    async fn get_profile_picture(
        &mut self,
        device: Resource<OpenDevice>,
        jid: String,
        preview: bool,
    ) -> Result<Option<ProfilePicture>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.profile_picture(&*session, &jid, preview).await
    }

    async fn get_business_profile(
        &mut self,
        device: Resource<OpenDevice>,
        jid: String,
    ) -> Result<Option<BusinessProfile>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.business_profile(&*session, &jid).await
    }

    async fn get_lid_mapping(
        &mut self,
        device: Resource<OpenDevice>,
        jid: String,
    ) -> Result<Option<LidMapping>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.lid_mapping(&*session, &jid).await
    }

    async fn is_on_whatsapp(
        &mut self,
        device: Resource<OpenDevice>,
        jids: Vec<String>,
    ) -> Result<Vec<OnWhatsapp>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.is_on_whatsapp(&*session, &jids).await
    }

    async fn list_joined_groups(&mut self, device: Resource<OpenDevice>) -> Result<Vec<Group>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.joined_groups(&*session).await
    }

    async fn get_group_info(&mut self, device: Resource<OpenDevice>, jid: String) -> Result<Group, Error> {
        let session = self.opened(&device)?;
        self.capabilities.group_info(&*session, &jid).await
    }

    async fn get_contact(&mut self, device: Resource<OpenDevice>, jid: String) -> Result<Option<Contact>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.contact(&*session, &jid).await
    }

    async fn get_contact_profile(
        &mut self,
        device: Resource<OpenDevice>,
        jid: String,
        extras: ProfileExtras,
    ) -> Result<ContactProfile, Error> {
        let session = self.opened(&device)?;
        self.capabilities.contact_profile(&*session, &jid, extras).await
    }

    async fn send_text(&mut self, device: Resource<OpenDevice>, message: OutgoingText) -> Result<SendOutcome, Error> {
        let session = self.opened(&device)?;
        let id = self.table.get(&device).map_err(|_| Error::DeviceNotFound)?.id.clone();
        self.capabilities.send_text(&id, session, message).await
    }

    async fn get_sent_message(
        &mut self,
        device: Resource<OpenDevice>,
        id: String,
    ) -> Result<Option<SentMessage>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.sent_message(&*session, &id).await
    }

    async fn start_lid_verification(
        &mut self,
        device: Resource<OpenDevice>,
        request: LidVerificationRequest,
    ) -> Result<LidVerification, Error> {
        let session = self.opened(&device)?;
        let id = self.table.get(&device).map_err(|_| Error::DeviceNotFound)?.id.clone();
        self.capabilities.start_lid_verification(&id, session, request).await
    }

    async fn get_lid_verification(
        &mut self,
        device: Resource<OpenDevice>,
        id: String,
    ) -> Result<Option<LidVerification>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.lid_verification(&*session, &id).await
    }

    async fn get_verified_link(
        &mut self,
        device: Resource<OpenDevice>,
        jid: String,
    ) -> Result<Option<VerifiedLink>, Error> {
        let session = self.opened(&device)?;
        self.capabilities.verified_link(&*session, &jid).await
    }

    async fn drop(&mut self, device: Resource<OpenDevice>) -> wasmtime::Result<()> {
        self.table.delete(device)?;
        Ok(())
    }
}

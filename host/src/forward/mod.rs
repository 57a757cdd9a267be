//! Device calls that land on a node not running the device, forwarded to the node that does.
//!
//! Requests land on any node of a cluster, and every node runs the tenant's components for
//! them; but only the node holding a device's lease runs its WhatsApp client. So a node wraps
//! each session it opens in a [`Routed`] session: a call the node can make itself it makes
//! (it runs the device, or the call only reads the shared store), any other it forwards to
//! the owner over the cluster's own channel — HTTP/2 between the nodes' cluster listeners,
//! authenticated by the cluster's secret, carrying the request's deadline — and hands back
//! the owner's answer as it came ([`wire`]). Where the owner is and how the device is comes
//! from the [`directory`]. While a device has no owner (its node died, the next has not
//! taken it yet) its calls answer `device-not-connected` (`connecting`), never another error.
//!
//! - [`wire`]: the call and its answer as they travel;
//! - [`peers`]: the forwarding side, one HTTP/2 connection per node;
//! - [`listener`]: the owner's side, the node's cluster listener;
//! - [`directory`]: which node runs each device, and where it listens.

pub mod directory;
pub mod listener;
pub mod peers;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use waedge_contract::types::{
    BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, LidVerification, OnWhatsapp,
    ProfilePicture, SendOutcome, SentMessage, UserInfo, VerifiedLink,
};
use waedge_device::link::LinkState;
use waedge_device::{DeviceManager, DeviceSession, TextMessage, VerificationRequest, deadline, not_connected};
use waedge_jid::Jid;

use crate::telemetry::metrics::Metrics;
use directory::Directory;
use listener::Locals;
use peers::{Failed, Peers};
use wire::{Call, Manage, texts};

/// How long a forwarded call may take when its caller set no deadline (a send, which runs to
/// its end).
const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// How long a call on a device itself (a linking, a removal …) may take at its node: linking
/// by pair code alone may wait 30 s for WhatsApp.
const MANAGE_DEADLINE: Duration = Duration::from_secs(60);

/// The forwarding of one node: where devices run, and the connections to their nodes.
pub struct Forwarder {
    directory: Arc<Directory>,
    peers: Peers,
    locals: Arc<Locals>,
    metrics: OnceLock<Arc<Metrics>>,
}

impl Forwarder {
    /// Forwards to the nodes `directory` names, authenticating with `secret`.
    pub fn new(directory: Arc<Directory>, secret: &str) -> Forwarder {
        Forwarder { directory, peers: Peers::new(secret), locals: Arc::default(), metrics: OnceLock::new() }
    }

    /// Counts the forwarded calls in `metrics` (the gateway's) from now on.
    pub fn count_in(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The sessions this node opened, for its [`listener::Listener`].
    pub fn locals(&self) -> Arc<Locals> {
        self.locals.clone()
    }

    /// Makes `call` on `device` of `tenant` at the node running it, until the request's
    /// deadline or [`DEFAULT_DEADLINE`] for a send (which runs to its end, whatever its
    /// request's), and reads its answer.
    async fn forward<T: DeserializeOwned>(&self, device: (&str, &str), call: Call) -> Result<T, Error> {
        let deadline = deadline::current().unwrap_or_else(|| Instant::now() + DEFAULT_DEADLINE);
        let started = Instant::now();
        let (answer, outcome) = self.make(device, &call, call.sends(), deadline).await;
        if let Some(metrics) = self.metrics.get() {
            metrics.forwarded(outcome, started.elapsed());
        }
        let answer = answer?;
        serde_json::from_slice(&answer).unwrap_or_else(|e| {
            tracing::error!(
                tenant = device.0,
                device = device.1,
                "the device's node answered what this node cannot read: {e}"
            );
            Err(Error::Upstream("the node running the device answered what this one cannot read".into()))
        })
    }

    /// Makes `manage` on `device` of `tenant` at the node running it, within
    /// [`MANAGE_DEADLINE`]; an error says what to do. After a change, the directory is read
    /// again: the device's status as its node recorded it is this node's from then on. (Not
    /// counted in the metrics of forwarded calls, which are the sessions' calls.)
    async fn manage<T: DeserializeOwned>(&self, (tenant, device): (&str, &str), manage: Manage) -> anyhow::Result<T> {
        let changes = manage.changes();
        let call = Call::Manage(manage);
        let (answer, outcome) = self.make((tenant, device), &call, changes, Instant::now() + MANAGE_DEADLINE).await;
        if changes && let Err(e) = self.directory.refresh(Instant::now()).await {
            tracing::warn!(tenant, device, "reading which node runs each device: {e:#}");
        }
        let answer = answer.map_err(|e| match e {
            // Nobody holds the device, or its node cannot be reached (a node that answered,
            // even "not here", is not gone).
            _ if matches!(outcome, "no_owner" | "unreachable") => {
                anyhow::Error::new(NoNode { tenant: tenant.into(), device: device.into() })
            }
            Error::DeviceNotConnected(_) => anyhow::anyhow!(
                "the node running device {tenant}/{device} did not take the call (the nodes disagree on which runs \
                 it for a moment): try again in a few seconds"
            ),
            Error::Timeout => anyhow::anyhow!(
                "the call on device {tenant}/{device} got no answer from the node running it (timed out, or the \
                 connection failed): it may have been made; look at the device before trying again"
            ),
            e => anyhow::anyhow!("asking the node that runs device {tenant}/{device}: {e}"),
        })?;
        let answer: Result<T, String> = serde_json::from_slice(&answer)
            .with_context(|| format!("the node running device {tenant}/{device} answered what this one cannot read"))?;
        answer.map_err(anyhow::Error::msg)
    }

    /// Sends `call` on `device` of `tenant` to the node running it and returns its answer as
    /// it came, and how the call ended: asked again once when that node no longer runs it
    /// (the directory is read again first), until `deadline`. A call that `changes` the
    /// device and lost its connection once it left may have been made: a timeout.
    async fn make(
        &self,
        (tenant, device): (&str, &str),
        call: &Call,
        changes: bool,
        deadline: Instant,
    ) -> (Result<Bytes, Error>, &'static str) {
        for _ in 0..2 {
            let Some(owner) = self.directory.owner(tenant, device) else {
                return (Err(not_connected(DeviceState::Connecting)), "no_owner");
            };
            let asked = Instant::now();
            let failed = match self.peers.call(&owner, (tenant, device), call, deadline).await {
                Ok(answer) => return (Ok(answer), "answered"),
                Err(failed) => failed,
            };
            match failed {
                Failed::NotHere => {
                    let reread = tokio::time::timeout_at(deadline.into(), self.directory.refresh(asked)).await;
                    match reread {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(tenant, device, "reading which node runs the device: {e:#}"),
                        Err(_) => return (Err(Error::Timeout), "timed_out"),
                    }
                }
                Failed::TimedOut => return (Err(Error::Timeout), "timed_out"),
                // The owner went away: the device waits for its next node.
                Failed::Unreachable(reason) => {
                    tracing::warn!(tenant, device, "forwarding a call to the device's node: {reason}");
                    return (Err(not_connected(DeviceState::Connecting)), "unreachable");
                }
                // The owner may have made it (a send, a log-out …): as for a send whose request
                // ran out of time, the caller looks before trying again.
                Failed::Lost(reason) if changes => {
                    tracing::warn!(tenant, device, "forwarding a change to the device's node: {reason}");
                    return (Err(Error::Timeout), "lost");
                }
                Failed::Lost(reason) => {
                    tracing::warn!(tenant, device, "forwarding a call to the device's node: {reason}");
                    return (Err(not_connected(DeviceState::Connecting)), "lost");
                }
                // The nodes disagree on the secret or the calls: the operator's to mend.
                Failed::Refused(reason) => {
                    tracing::error!(
                        tenant,
                        device,
                        "{reason}; check that every node has the same cluster secret and version"
                    );
                    let refused = "the node running the device refused the call; the gateway's log says why";
                    return (Err(Error::Upstream(refused.into())), "refused");
                }
            }
        }
        (Err(not_connected(DeviceState::Connecting)), "not_here")
    }
}

/// Why a call on a device was not made: no node runs it (it is new, or its node left or
/// cannot be reached).
#[derive(Debug, thiserror::Error)]
#[error(
    "no node runs device {tenant}/{device} at the moment (it is new, or its node left): a node takes it within \
     seconds; try again then"
)]
pub struct NoNode {
    /// The device's tenant.
    pub tenant: String,
    /// The device.
    pub device: String,
}

/// A device session on a node of a cluster: this node's own session when it runs the device,
/// else the owner's, through the [`Forwarder`].
pub struct Routed {
    tenant: String,
    device: String,
    local: Arc<dyn DeviceSession>,
    forwarder: Arc<Forwarder>,
}

impl Routed {
    /// `here`, this node's own call, when it runs the device; else `call` at the owner.
    async fn route<T: DeserializeOwned>(
        &self,
        here: impl Future<Output = Result<T, Error>>,
        call: impl FnOnce() -> Call,
    ) -> Result<T, Error> {
        if self.local.runs_here() {
            return here.await;
        }
        self.forwarder.forward((&self.tenant, &self.device), call()).await
    }
}

#[async_trait]
impl DeviceSession for Routed {
    fn status(&self) -> DeviceStatus {
        let mut copy = None;
        self.with_status(&mut |status| copy = Some(status.clone()));
        copy.expect("a session always shows a status")
    }

    /// This node's own status of a device it runs; else the directory's, as the device's node
    /// recorded it, or this node's own when the directory does not know the device.
    fn with_status(&self, show: &mut dyn FnMut(&DeviceStatus)) {
        if self.local.runs_here() {
            return self.local.with_status(show);
        }
        match self.forwarder.directory.status(&self.tenant, &self.device) {
            Some(status) => show(&status),
            None => self.local.with_status(show),
        }
    }

    fn runs_here(&self) -> bool {
        self.local.runs_here()
    }

    async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error> {
        self.route(self.local.user_info(jids), || Call::UserInfo { jids: texts(jids) }).await
    }

    async fn profile_picture(&self, jid: &Jid, preview: bool) -> Result<Option<ProfilePicture>, Error> {
        self.route(self.local.profile_picture(jid, preview), || Call::ProfilePicture { jid: jid.to_string(), preview })
            .await
    }

    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error> {
        self.route(self.local.business_profile(jid), || Call::BusinessProfile { jid: jid.to_string() }).await
    }

    async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error> {
        self.route(self.local.lid_mapping(jid), || Call::LidMapping { jid: jid.to_string() }).await
    }

    async fn is_on_whatsapp(&self, jids: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
        self.route(self.local.is_on_whatsapp(jids), || Call::IsOnWhatsapp { jids: texts(jids) }).await
    }

    async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
        self.route(self.local.joined_groups(), || Call::JoinedGroups).await
    }

    async fn group_info(&self, jid: &Jid) -> Result<Group, Error> {
        self.route(self.local.group_info(jid), || Call::GroupInfo { jid: jid.to_string() }).await
    }

    async fn contact(&self, jid: &Jid) -> Result<Option<Contact>, Error> {
        self.route(self.local.contact(jid), || Call::Contact { jid: jid.to_string() }).await
    }

    async fn send_text(&self, message: &TextMessage) -> Result<SendOutcome, Error> {
        self.route(self.local.send_text(message), || Call::send_text(message)).await
    }

    async fn sent_message(&self, id: &str) -> Result<Option<SentMessage>, Error> {
        self.local.sent_message(id).await
    }

    async fn start_lid_verification(&self, request: &VerificationRequest) -> Result<LidVerification, Error> {
        self.route(self.local.start_lid_verification(request), || Call::start_lid_verification(request)).await
    }

    async fn lid_verification(&self, id: &str) -> Result<Option<LidVerification>, Error> {
        self.local.lid_verification(id).await
    }

    async fn verified_link(&self, jid: &Jid) -> Result<Option<VerifiedLink>, Error> {
        self.local.verified_link(jid).await
    }
}

/// The device sessions of a node of a cluster: `inner`'s, each [`Routed`] through the
/// forwarder, and known to the node's [`listener::Listener`]. A call on a device another
/// node runs (a linking, a log-out, a removal …) is made there; a linking started so is
/// mirrored here, as the owner sees it, until it ends.
pub struct Forwarding {
    inner: Arc<dyn DeviceManager>,
    forwarder: Arc<Forwarder>,
    /// The linkings this node started on other nodes, by tenant and device: the latest of
    /// each, kept once it ended as the owner keeps its own.
    mirrors: Mutex<HashMap<(String, String), watch::Receiver<LinkState>>>,
}

/// How often a mirrored linking asks the owner where it stands: a new QR code shows here
/// within this.
const MIRROR_INTERVAL: Duration = Duration::from_millis(500);

/// How many times in a row a mirrored linking may fail to ask the owner before it is taken
/// for failed.
const MIRROR_MISSES: u32 = 10;

impl Forwarding {
    /// `inner`'s sessions, forwarded by `forwarder` where another node runs them.
    pub fn new(inner: Arc<dyn DeviceManager>, forwarder: Arc<Forwarder>) -> Forwarding {
        Forwarding { inner, forwarder, mirrors: Mutex::default() }
    }

    /// `here` when this node runs `device` of `tenant`; else `manage`, made by the node that does.
    async fn at_owner<T: DeserializeOwned>(
        &self,
        (tenant, device): (&str, &str),
        here: impl Future<Output = anyhow::Result<T>>,
        manage: Manage,
    ) -> anyhow::Result<T> {
        if self.inner.runs_here(tenant, device) {
            return here.await;
        }
        self.forwarder.manage((tenant, device), manage).await
    }

    /// A view of the linking of `device` of `tenant` at its owner, which stood at `first`:
    /// kept as the owner sees it until it ends, or until no view of it is left (the map's
    /// went with a newer linking or the device's removal, and no event stream holds one).
    fn mirror(&self, (tenant, device): (&str, &str), first: LinkState) -> watch::Receiver<LinkState> {
        let key = (tenant.to_owned(), device.to_owned());
        let (view, mirrored) = watch::channel(first);
        self.mirrors.lock().expect("mirrors lock").insert(key.clone(), mirrored.clone());
        let forwarder = self.forwarder.clone();
        tokio::spawn(async move {
            let mut misses = 0;
            while !view.borrow().is_final() && !view.is_closed() {
                tokio::time::sleep(MIRROR_INTERVAL).await;
                let asked: anyhow::Result<Option<LinkState>> =
                    forwarder.manage((&key.0, &key.1), Manage::Linking).await;
                let now = match asked {
                    Ok(Some(state)) => state,
                    Ok(None) => LinkState::Failed { reason: "the node that ran the linking no longer has it".into() },
                    Err(e) if misses + 1 < MIRROR_MISSES => {
                        misses += 1;
                        tracing::debug!(tenant = key.0, device = key.1, "asking where a linking stands: {e:#}");
                        continue;
                    }
                    Err(e) => LinkState::Failed { reason: format!("lost sight of the linking: {e:#}") },
                };
                misses = 0;
                view.send_if_modified(|shown| std::mem::replace(shown, now.clone()) != now);
            }
        });
        mirrored
    }
}

#[async_trait]
impl DeviceManager for Forwarding {
    fn runs_here(&self, tenant: &str, device: &str) -> bool {
        self.inner.runs_here(tenant, device)
    }

    fn open(&self, tenant: &str, device: &str, remembered: DeviceState) -> Arc<dyn DeviceSession> {
        let local = self.inner.open(tenant, device, remembered);
        let mut locals = self.forwarder.locals.lock().expect("locals lock");
        locals.retain(|_, session| session.strong_count() > 0);
        locals.insert((tenant.to_owned(), device.to_owned()), Arc::downgrade(&local) as Weak<dyn DeviceSession>);
        Arc::new(Routed {
            tenant: tenant.to_owned(),
            device: device.to_owned(),
            local,
            forwarder: self.forwarder.clone(),
        })
    }

    async fn link_qr(&self, tenant: &str, device: &str) -> anyhow::Result<watch::Receiver<LinkState>> {
        if self.inner.runs_here(tenant, device) {
            return self.inner.link_qr(tenant, device).await;
        }
        let first = self.forwarder.manage((tenant, device), Manage::LinkQr).await?;
        Ok(self.mirror((tenant, device), first))
    }

    async fn link_pair_code(
        &self,
        tenant: &str,
        device: &str,
        phone_number: &str,
    ) -> anyhow::Result<(String, watch::Receiver<LinkState>)> {
        if self.inner.runs_here(tenant, device) {
            return self.inner.link_pair_code(tenant, device, phone_number).await;
        }
        let call = Manage::LinkPairCode { phone_number: phone_number.to_owned() };
        let (code, first) = self.forwarder.manage((tenant, device), call).await?;
        Ok((code, self.mirror((tenant, device), first)))
    }

    fn linking(&self, tenant: &str, device: &str) -> Option<watch::Receiver<LinkState>> {
        if self.inner.runs_here(tenant, device) {
            return self.inner.linking(tenant, device);
        }
        self.mirrors.lock().expect("mirrors lock").get(&(tenant.to_owned(), device.to_owned())).cloned()
    }

    fn devices_linking(&self, tenant: &str) -> HashSet<String> {
        let mut linking = self.inner.devices_linking(tenant);
        linking.retain(|device| self.inner.runs_here(tenant, device));
        // The mirrors' lock is let go before `runs_here` takes the sessions' lock.
        let mirrors = self.mirrors.lock().expect("mirrors lock");
        let going = mirrors.iter().filter(|((of, _), view)| of == tenant && !view.borrow().is_final());
        let mirrored: Vec<String> = going.map(|((_, device), _)| device.clone()).collect();
        drop(mirrors);
        linking.extend(mirrored.into_iter().filter(|device| !self.inner.runs_here(tenant, device)));
        linking
    }

    fn clients_running(&self) -> usize {
        self.inner.clients_running()
    }

    async fn cancel_link(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.at_owner((tenant, device), self.inner.cancel_link(tenant, device), Manage::CancelLink).await
    }

    async fn reconnect(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.at_owner((tenant, device), self.inner.reconnect(tenant, device), Manage::Reconnect).await
    }

    async fn logout(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.at_owner((tenant, device), self.inner.logout(tenant, device), Manage::Logout).await
    }

    /// Removed by the node running the device, which logs it out of WhatsApp; by this one
    /// when no node runs it or its node cannot be reached ([`NoNode`]): its state and lease
    /// are deleted all the same, but nobody logs it out (`inner` says so in the log). Any
    /// other failure (the node refused, or answered an error) is the answer.
    async fn remove(&self, tenant: &str, device: &str) -> anyhow::Result<()> {
        self.mirrors.lock().expect("mirrors lock").remove(&(tenant.to_owned(), device.to_owned()));
        if self.inner.runs_here(tenant, device) {
            return self.inner.remove(tenant, device).await;
        }
        match self.forwarder.manage((tenant, device), Manage::Remove).await {
            Err(e) if e.is::<NoNode>() => self.inner.forget(tenant, device).await,
            answer => answer,
        }
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}

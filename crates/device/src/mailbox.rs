//! The [`Mailbox`] of the store: events committed to its outbox (`waedge_store::events`), sent
//! messages recorded in its `sent` table (`waedge_store::sent`), LID verifications and links
//! in its `links` tables (`waedge_store::links`), contact names in `names`
//! (`waedge_store::names`). Whoever delivers the events
//! waits for those of a tenant, or of one of its devices, on [`Appended`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;
use waedge_contract::types::{Contact, LidVerification, SentMessage, VerifiedLink};
use waedge_store::events::{EventRecord, NewEvent};
use waedge_store::links::{NewVerification, Started};
use waedge_store::sent::{Begun, NewSend, StatusChange};
use waedge_store::{Store, StoreError};

use super::Mailbox;

/// A mailbox in `store`, and the [`Appended`] it tells of every commit that appended events
/// (delivery wakes up on it). The store is synchronous: its calls run on tokio's blocking
/// threads.
pub fn store_mailbox(store: &Store) -> (Arc<dyn Mailbox>, Appended) {
    let appended = Appended::default();
    (Arc::new(StoreMailbox { store: store.clone(), appended: appended.clone() }), appended)
}

/// Tells who waits for the new events of a tenant, or of one of its devices, that a commit
/// appended some: a subscriber wakes only for the tenant (and device) it subscribed to. Clones
/// share their subscribers; one made with `default` that no mailbox holds never tells anything.
#[derive(Clone, Default)]
pub struct Appended {
    /// A channel for each tenant or device someone subscribed to.
    channels: Arc<Mutex<HashMap<Whose, watch::Sender<()>>>>,
}

/// Whose events a channel of [`Appended`] tells of: a tenant's (with `None`: of any of its
/// devices) or those of one of its devices.
type Whose = (String, Option<String>);

/// The new events of one tenant, or of one of its devices (see [`Appended::subscribe`]).
pub struct Subscription {
    receiver: watch::Receiver<()>,
    /// Keeps the channel open, so that [`Subscription::changed`] never fails.
    _sender: watch::Sender<()>,
}

impl Appended {
    /// Subscribes to the commits that append events of `tenant` from now on — only of its
    /// `device`, when given.
    pub fn subscribe(&self, tenant: &str, device: Option<&str>) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The channels of subscriptions dropped since (a stopped worker's) go.
        channels.retain(|_, sender| sender.receiver_count() > 0);
        let key = (tenant.to_string(), device.map(str::to_string));
        let sender = channels.entry(key).or_insert_with(|| watch::Sender::new(())).clone();
        Subscription { receiver: sender.subscribe(), _sender: sender }
    }

    /// Wakes the subscribers of the tenants and devices of `events`, just committed.
    pub(crate) fn notify(&self, events: &[EventRecord]) {
        let appended: BTreeSet<(&str, &str)> =
            events.iter().map(|event| (event.tenant.as_str(), event.device.as_str())).collect();
        appended.into_iter().for_each(|(tenant, device)| self.wake(tenant, device));
    }

    /// Wakes the subscribers of `tenant` and of its `device`: events of the device were
    /// committed (by another node, say).
    pub fn wake(&self, tenant: &str, device: &str) {
        let channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in [(tenant.to_string(), None), (tenant.to_string(), Some(device.to_string()))] {
            if let Some(sender) = channels.get(&key) {
                sender.send_replace(());
            }
        }
    }
}

impl Subscription {
    /// Waits until events were appended since the subscription was made or this last returned;
    /// one wake-up may stand for many commits.
    pub async fn changed(&mut self) {
        // Never fails: the subscription holds a sender.
        let _ = self.receiver.changed().await;
    }
}

/// [`store_mailbox`].
struct StoreMailbox {
    store: Store,
    /// Told of every commit that appended events.
    appended: Appended,
}

impl StoreMailbox {
    /// Runs `call` on the store on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> anyhow::Result<T> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || call(&store)).await??)
    }

    /// Logs `appended` events and wakes up those waiting for them.
    fn appended(&self, appended: &[EventRecord]) {
        for event in appended {
            tracing::debug!(id = event.id, kind = event.kind, device = event.device, seq = event.seq, "event recorded");
        }
        self.appended.notify(appended);
    }
}

#[async_trait]
impl Mailbox for StoreMailbox {
    async fn commit(&self, tenant: &str, events: Vec<NewEvent>) -> anyhow::Result<()> {
        let tenant = tenant.to_string();
        let appended = self.run(move |store| store.append_events(&tenant, &events)).await?;
        self.appended(&appended);
        Ok(())
    }

    async fn begin_send(&self, tenant: &str, send: NewSend) -> anyhow::Result<Begun> {
        let tenant = tenant.to_string();
        self.run(move |store| store.begin_send(&tenant, &send)).await
    }

    async fn forget_send(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<()> {
        let (tenant, device, id) = (tenant.to_string(), device.to_string(), id.to_string());
        self.run(move |store| store.forget_send(&tenant, &device, &id)).await
    }

    async fn sent_message(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<Option<SentMessage>> {
        let (tenant, device, id) = (tenant.to_string(), device.to_string(), id.to_string());
        self.run(move |store| store.sent_message(&tenant, &device, &id)).await
    }

    async fn remember_names(&self, tenant: &str, device: &str, contacts: Vec<Contact>) -> anyhow::Result<()> {
        let (tenant, device) = (tenant.to_string(), device.to_string());
        let appended = self.run(move |store| store.remember_names(&tenant, &device, &contacts)).await?;
        self.appended(&appended);
        Ok(())
    }

    async fn contact_names(&self, tenant: &str, device: &str, jid: &str) -> anyhow::Result<Option<Contact>> {
        let (tenant, device, jid) = (tenant.to_string(), device.to_string(), jid.to_string());
        self.run(move |store| store.contact_names(&tenant, &device, &jid)).await
    }

    async fn received_from(&self, tenant: &str, device: &str, chat: &str, id: &str) -> anyhow::Result<Option<String>> {
        let (tenant, device, chat, id) = (tenant.to_string(), device.to_string(), chat.to_string(), id.to_string());
        self.run(move |store| store.received_from(&tenant, &device, &chat, &id)).await
    }

    async fn change_status(&self, tenant: &str, device: &str, changes: Vec<StatusChange>) -> anyhow::Result<()> {
        let (tenant, device) = (tenant.to_string(), device.to_string());
        let appended = self.run(move |store| store.change_status(&tenant, &device, &changes)).await?;
        self.appended(&appended);
        Ok(())
    }

    async fn start_lid_verification(&self, tenant: &str, new: NewVerification) -> anyhow::Result<Started> {
        let tenant = tenant.to_string();
        self.run(move |store| store.start_lid_verification(&tenant, &new)).await
    }

    async fn forget_lid_verification(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<()> {
        let (tenant, device, id) = (tenant.to_string(), device.to_string(), id.to_string());
        self.run(move |store| store.forget_lid_verification(&tenant, &device, &id)).await
    }

    async fn lid_verification(&self, tenant: &str, device: &str, id: &str) -> anyhow::Result<Option<LidVerification>> {
        let (tenant, device, id) = (tenant.to_string(), device.to_string(), id.to_string());
        self.run(move |store| store.lid_verification(&tenant, &device, &id)).await
    }

    async fn verified_link(&self, tenant: &str, jid: &str) -> anyhow::Result<Option<VerifiedLink>> {
        // Asked on every profile lookup: answered in place once the tenant's links are read.
        if let Some(known) = self.store.known_verified_link(tenant, jid) {
            return Ok(known);
        }
        let (tenant, jid) = (tenant.to_string(), jid.to_string());
        self.run(move |store| store.verified_link(&tenant, &jid)).await
    }
}

#[cfg(test)]
mod tests {
    use waedge_store::tenants::NewTenant;

    use super::*;

    /// A message of `device` received from John Doe, `id` its message id.
    fn message(device: &str, id: &str) -> NewEvent {
        NewEvent {
            device: device.into(),
            kind: waedge_store::events::MESSAGE_RECEIVED.into(),
            chat: "6281234567890@s.whatsapp.net".into(),
            dedup: Some(id.into()),
            at: "2026-12-05T15:00:00Z".into(),
            data: serde_json::json!({ "message_id": id }),
        }
    }

    #[tokio::test]
    async fn a_commit_wakes_the_subscribers_of_its_tenant_and_device_only() {
        let store = Store::open_in_memory().unwrap();
        for tenant in ["acme", "globex"] {
            store.create_tenant(NewTenant { id: tenant.into(), ..Default::default() }).unwrap();
            store.create_device(tenant, "main").unwrap();
        }
        store.create_device("globex", "backup").unwrap();
        let (mailbox, appended) = store_mailbox(&store);
        let globex = appended.subscribe("globex", None);
        let mut main = appended.subscribe("globex", Some("main"));
        let backup = appended.subscribe("globex", Some("backup"));
        let woken = |subscriptions: [&Subscription; 3]| subscriptions.map(|s| s.receiver.has_changed().unwrap());

        mailbox.commit("acme", vec![message("main", "A")]).await.unwrap();
        assert_eq!(woken([&globex, &main, &backup]), [false; 3], "another tenant's events");
        mailbox.commit("globex", vec![message("main", "A")]).await.unwrap();
        assert_eq!(woken([&globex, &main, &backup]), [true, true, false], "the tenant's and the device's");
        main.changed().await;
        mailbox.commit("globex", vec![message("main", "A")]).await.unwrap();
        assert!(!main.receiver.has_changed().unwrap(), "a commit that appends nothing (a repeat) wakes no one");
        mailbox.commit("globex", vec![message("backup", "B")]).await.unwrap();
        assert_eq!(woken([&globex, &main, &backup]), [true, false, true]);
    }

    #[test]
    fn the_channels_of_dropped_subscriptions_go() {
        let appended = Appended::default();
        drop(appended.subscribe("acme", None));
        let _kept = appended.subscribe("acme", Some("main"));
        let channels = appended.channels.lock().unwrap();
        assert_eq!(channels.keys().collect::<Vec<_>>(), [&("acme".to_string(), Some("main".to_string()))]);
    }
}

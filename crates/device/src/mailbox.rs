//! The [`Mailbox`] of the store: events committed to its outbox (`waedge_store::events`), sent
//! messages recorded in its `sent` table (`waedge_store::sent`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use waedge_contract::types::SentMessage;
use waedge_store::events::{EventRecord, NewEvent};
use waedge_store::sent::{Begun, NewSend, StatusChange};
use waedge_store::{Store, StoreError};

use super::Mailbox;

/// A mailbox in `store`, and the receiver that changes whenever it appended events (delivery
/// wakes up on it). The store is synchronous: its calls run on tokio's blocking threads.
pub fn store_mailbox(store: &Store) -> (Arc<dyn Mailbox>, watch::Receiver<u64>) {
    let (appended, receiver) = watch::channel(0);
    (Arc::new(StoreMailbox { store: store.clone(), appended }), receiver)
}

/// [`store_mailbox`].
struct StoreMailbox {
    store: Store,
    /// How many commits appended events.
    appended: watch::Sender<u64>,
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

    /// Logs `appended` events and wakes delivery up if there are any.
    fn appended(&self, appended: &[EventRecord]) {
        for event in appended {
            tracing::debug!(id = event.id, kind = event.kind, device = event.device, seq = event.seq, "event recorded");
        }
        if !appended.is_empty() {
            self.appended.send_modify(|count| *count += 1);
        }
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

    async fn change_status(&self, tenant: &str, device: &str, changes: Vec<StatusChange>) -> anyhow::Result<()> {
        let (tenant, device) = (tenant.to_string(), device.to_string());
        let appended = self.run(move |store| store.change_status(&tenant, &device, &changes)).await?;
        self.appended(&appended);
        Ok(())
    }
}

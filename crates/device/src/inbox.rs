//! The [`Inbox`] of the store: events committed to its outbox (`waedge_store::events`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use waedge_store::Store;
use waedge_store::events::NewEvent;

use super::Inbox;

/// An inbox that appends to `store`'s event outbox, on a blocking thread (the store is
/// synchronous), and the receiver that changes whenever it appended events (delivery wakes
/// up on it). Its commits run on tokio's blocking threads.
pub fn store_inbox(store: &Store) -> (Arc<dyn Inbox>, watch::Receiver<u64>) {
    let (appended, receiver) = watch::channel(0);
    (Arc::new(StoreInbox { store: store.clone(), appended }), receiver)
}

/// [`store_inbox`].
struct StoreInbox {
    store: Store,
    /// How many commits appended events.
    appended: watch::Sender<u64>,
}

#[async_trait]
impl Inbox for StoreInbox {
    async fn commit(&self, tenant: &str, events: Vec<NewEvent>) -> anyhow::Result<()> {
        let (store, tenant) = (self.store.clone(), tenant.to_string());
        let appended = tokio::task::spawn_blocking(move || store.append_events(&tenant, &events)).await??;
        for event in &appended {
            tracing::debug!(id = event.id, kind = event.kind, device = event.device, seq = event.seq, "event recorded");
        }
        if !appended.is_empty() {
            self.appended.send_modify(|count| *count += 1);
        }
        Ok(())
    }
}

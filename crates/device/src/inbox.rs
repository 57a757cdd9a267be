//! The [`Inbox`] of the store: events committed to its outbox (`waedge_store::events`).

use std::sync::Arc;

use async_trait::async_trait;
use waedge_store::Store;
use waedge_store::events::NewEvent;

use super::Inbox;

/// An inbox that appends to `store`'s event outbox, on a blocking thread (the store is
/// synchronous). Must be called inside a tokio runtime.
pub fn store_inbox(store: &Store) -> Arc<dyn Inbox> {
    Arc::new(StoreInbox { store: store.clone() })
}

/// [`store_inbox`].
struct StoreInbox {
    store: Store,
}

#[async_trait]
impl Inbox for StoreInbox {
    async fn commit(&self, tenant: &str, events: Vec<NewEvent>) -> anyhow::Result<()> {
        let (store, tenant) = (self.store.clone(), tenant.to_string());
        let appended = tokio::task::spawn_blocking(move || store.append_events(&tenant, &events)).await??;
        for event in &appended {
            tracing::debug!(id = event.id, kind = event.kind, device = event.device, seq = event.seq, "event recorded");
        }
        Ok(())
    }
}

//! Webhooks: a tenant's events delivered to its HTTP endpoints from the outbox — signed, in
//! order, at least once, through crashes.
//!
//! One worker per webhook takes the next event the webhook wants after its position in the
//! outbox (`waedge_store::webhooks`), POSTs it ([`deliver`]) and moves past it only once the
//! endpoint answered 2xx or the event became a dead letter. So every event is delivered at
//! least once — a crash between the answer and the move sends it again, with the same
//! `webhook-id` (the event's id) to deduplicate on — and the events of a chat arrive in their
//! order — but for an event given up as a dead letter, which a replay sends out of that
//! order. An attempt that may fare better later (no answer, 5xx, 408, 429) is retried with
//! exponential backoff and full jitter ([`backoff`]) up to [`MAX_ATTEMPTS`]; any other answer
//! (a 4xx, a redirect, an address the tenant's outbound rules refuse) makes the event a dead
//! letter at once. Dead letters are listed and replayed through the admin API; every attempt
//! is in the webhook's delivery log.
//!
//! A webhook whose `url` names a deployed component (`component:NAME`) is an event
//! handler: the same worker hands each event to the component's `waedge:gateway/events`
//! export ([`Gateway::handle_event`]) instead of POSTing it, and its answer takes the place of
//! the endpoint's: done, or — when it asks for the event again, fails or hits a sandbox limit
//! — retried with the same backoff, then a dead letter. When the host cannot try at all (the
//! handler is not loaded yet, the tenant's instance slots are in use) the worker waits a
//! moment and tries again, counting nothing. Order, at-least-once delivery, the
//! delivery log, dead letters and replays are the same for both.
//!
//! Requests obey the same address rules as components' outbound HTTP: public addresses only,
//! unless the webhook's host is on the tenant's `outbound_private_hosts`; they are signed as
//! [`sign`] says.
//!
//! An idle worker sleeps until a commit appends events of its tenant — of its device, for a
//! webhook of one device ([`Appended`]) — or a while has passed. Its look at the outbox only
//! reads, so idle workers do not queue write transactions in front of the commits of incoming
//! messages, which WhatsApp waits for.

mod deliver;
pub mod sign;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use waedge_device::mailbox::{Appended, Subscription};
use waedge_store::webhooks::{Attempt, Next, Outcome, Pending, WebhookRecord};
use waedge_store::{Store, StoreError};

use crate::Gateway;
use crate::capability::outbound;
use crate::gateway::Unhandled;
use crate::telemetry::violation::Reporter;
use deliver::{Target, Verdict};

/// How many attempts an event gets before it becomes a dead letter.
pub const MAX_ATTEMPTS: u32 = 10;
/// The first retry waits up to this long; each next one up to twice as long …
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// … but never more than this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long an idle worker waits for news before it looks at the outbox anyway (a wake-up
/// that never came, events from elsewhere).
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How long a worker waits before reading the store again after it failed.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How long a worker waits when the host could not attempt an event (see [`Tried::NotNow`]).
const NOT_NOW_WAIT: Duration = Duration::from_millis(200);

/// What became of a try at an event.
enum Tried {
    /// It was attempted: the delivery log's entry, and what the answer means.
    Attempted(Attempt, Verdict),
    /// The host could not attempt it now ([`Unhandled::NotNow`]): nothing is counted.
    NotNow(String),
}

/// Delivers every tenant's events to its webhooks: one worker per webhook.
pub struct Webhooks {
    store: Store,
    /// Its outbound HTTP (resolver, address rules) and metrics deliver to URLs; its tenants'
    /// event handlers handle the events of webhooks that name a component.
    gateway: Arc<Gateway>,
    /// Tells of commits that appended events, by tenant and device.
    appended: Appended,
    workers: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Whether this process delivers: of several nodes sharing a store, one does at a time.
    delivering: AtomicBool,
    /// Set by [`Webhooks::shutdown`]: no worker starts again.
    closed: AtomicBool,
    /// Reloads take turns: each reads the webhooks and applies what it read before the next
    /// reads, so an older list is never applied after a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// How each worker waited for news so far, by webhook (tests only).
    #[cfg(test)]
    idle: Mutex<HashMap<String, tests::Idle>>,
}

impl Webhooks {
    /// Delivery from `store`'s outbox through `gateway`'s outbound HTTP (its resolver and
    /// address rules), counting refusals in its metrics, or to its tenants' event handlers,
    /// each worker woken by the commits `appended` tells of for its tenant. No worker runs
    /// before [`Webhooks::reload`].
    pub fn new(store: Store, gateway: Arc<Gateway>, appended: Appended) -> Self {
        Webhooks {
            store,
            gateway,
            appended,
            workers: Mutex::default(),
            delivering: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            reloading: Default::default(),
            #[cfg(test)]
            idle: Mutex::default(),
        }
    }

    /// The same, delivering nothing until told to ([`Webhooks::set_delivering`]): for a node of
    /// several sharing a store.
    pub fn standing_by(self) -> Self {
        self.delivering.store(false, Ordering::SeqCst);
        self
    }

    /// Starts delivering (runs a worker per webhook) or stops (none), as this node takes the
    /// delivery over or gives it up.
    pub async fn set_delivering(self: &Arc<Self>, deliver: bool) -> Result<(), StoreError> {
        if self.delivering.swap(deliver, Ordering::SeqCst) != deliver {
            tracing::info!("{} the webhooks' deliveries", if deliver { "taking over" } else { "giving up" });
        }
        self.reload().await
    }

    /// What tells of the events appended, by tenant and device; event streams wait on it too.
    pub fn appended(&self) -> &Appended {
        &self.appended
    }

    /// Starts a worker for each stored webhook that has none, and stops the workers of
    /// webhooks that are gone (all of them while this process does not deliver). Events
    /// appended once it returned wake the new workers. Must be called inside a tokio runtime.
    pub async fn reload(self: &Arc<Self>) -> Result<(), StoreError> {
        let _turn = self.reloading.lock().await;
        if !self.delivering.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst) {
            self.stop_workers();
            return Ok(());
        }
        let webhooks = self.blocking(|store| store.all_webhooks()).await?;
        let mut workers = self.workers.lock().expect("workers lock");
        // Under the workers' lock, which a shutdown takes after closing: its stop comes
        // after this reload's starts, or this reload sees it.
        if self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        workers.retain(|id, worker| {
            let kept = webhooks.iter().any(|webhook| &webhook.id == id) && !worker.is_finished();
            if !kept {
                worker.abort();
            }
            kept
        });
        for webhook in webhooks {
            if !workers.contains_key(&webhook.id) {
                let appended = self.appended.subscribe(&webhook.tenant, webhook.device.as_deref());
                let id = webhook.id.clone();
                workers.insert(id, tokio::spawn(self.clone().run(webhook, appended)));
            }
        }
        Ok(())
    }

    /// Stops every worker, for good: a reload under way or asked for later starts none (a
    /// node shutting down hands the delivery over, and must not deliver beside the next).
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.stop_workers();
    }

    fn stop_workers(&self) {
        self.workers.lock().expect("workers lock").drain().for_each(|(_, worker)| worker.abort());
    }

    /// Sends a dead letter of webhook `webhook` of `tenant` once more, now; on a 2xx it is
    /// removed. Returns the attempt, which the delivery log has too, and whether it delivered
    /// the event.
    pub async fn replay(&self, tenant: &str, webhook: &str, event_id: &str) -> Result<(Attempt, bool), StoreError> {
        let (t, w, e) = (tenant.to_string(), webhook.to_string(), event_id.to_string());
        let (record, letter) =
            self.blocking(move |store| Ok((store.webhook(&t, &w)?, store.dead_letter_of(&t, &w, &e)?))).await?;
        let (log, delivered) = match self.attempt(&record, &letter.event, letter.attempts + 1).await? {
            Tried::Attempted(log, verdict) => (log, verdict == Verdict::Delivered),
            Tried::NotNow(why) => {
                let verdict = Verdict::Retry(format!("not attempted: {why}; replay it again shortly"));
                (
                    deliver::log(
                        &letter.event,
                        letter.attempts + 1,
                        None,
                        &verdict,
                        chrono::Utc::now(),
                        Instant::now(),
                    ),
                    false,
                )
            }
        };
        let (t, w, e, entry) = (tenant.to_string(), webhook.to_string(), event_id.to_string(), log.clone());
        self.blocking(move |store| {
            store.record_attempt(&w, &entry)?;
            if !delivered {
                return Ok(());
            }
            match store.remove_dead_letter(&t, &w, &e) {
                // A replay at the same time delivered and removed it first.
                Err(StoreError::NotFound(_)) | Ok(()) => Ok(()),
                Err(other) => Err(other),
            }
        })
        .await?;
        Ok((log, delivered))
    }

    /// Delivers the webhook's events for as long as it exists, woken by `appended` (of its
    /// tenant, or of its device).
    async fn run(self: Arc<Self>, webhook: WebhookRecord, mut appended: Subscription) {
        // The end of the outbox the last look reached finding nothing: the next starts there.
        let mut seen = 0;
        loop {
            let id = webhook.id.clone();
            match self.blocking(move |store| store.next_delivery_after(&id, seen)).await {
                Ok(Next::Pending(pending)) => self.deliver(&webhook, *pending).await,
                Ok(Next::Idle(end)) => {
                    seen = end;
                    self.wait(&webhook, &mut appended).await;
                }
                Err(StoreError::NotFound(_)) => return,
                Err(e) => self.store_failed(&webhook, e).await,
            }
        }
    }

    /// Waits until a commit appended events the webhook may take, or [`IDLE_CHECK`] passed. A
    /// look at the outbox follows either way, so a wake-up missed loses no event; it only
    /// reads, so a wake-up for nothing costs no write.
    async fn wait(&self, webhook: &WebhookRecord, appended: &mut Subscription) {
        #[cfg(test)]
        self.count_idle(&webhook.id, |idle| idle.waits += 1);
        let woken = tokio::time::timeout(IDLE_CHECK, appended.changed()).await.is_ok();
        tracing::trace!(webhook = webhook.id, woken, "looking at the outbox again");
        #[cfg(test)]
        self.count_idle(&webhook.id, |idle| idle.woken += usize::from(woken));
    }

    /// Counts how the worker of `webhook` waits (tests only).
    #[cfg(test)]
    fn count_idle(&self, webhook: &str, count: impl FnOnce(&mut tests::Idle)) {
        count(self.idle.lock().expect("idle lock").entry(webhook.to_string()).or_default());
    }

    /// Attempts `pending` until it is delivered or given up; either way the webhook's position
    /// moves past it. If the store fails meanwhile, the worker starts over from the outbox
    /// (the event may be sent again: at least once).
    async fn deliver(&self, webhook: &WebhookRecord, pending: Pending) {
        let mut attempt = 1;
        loop {
            let (log, verdict) = match self.attempt(webhook, &pending.event, attempt).await {
                Ok(Tried::Attempted(log, verdict)) => (log, verdict),
                Ok(Tried::NotNow(why)) => {
                    tracing::debug!(webhook = webhook.id, "not attempted now: {why}");
                    tokio::time::sleep(NOT_NOW_WAIT).await;
                    continue;
                }
                Err(e) => return self.store_failed(webhook, e).await,
            };
            let retry = matches!(verdict, Verdict::Retry(_)) && attempt < MAX_ATTEMPTS;
            let (id, position) = (webhook.id.clone(), pending.position);
            let recorded = self
                .blocking(move |store| {
                    let outcome = match &verdict {
                        Verdict::Delivered => Outcome::Delivered,
                        Verdict::Retry(_) if retry => Outcome::Retry,
                        Verdict::Retry(error) | Verdict::GiveUp(error) => Outcome::GaveUp(error),
                    };
                    store.record_delivery(&id, position, &log, outcome)
                })
                .await;
            if let Err(e) = recorded {
                return self.store_failed(webhook, e).await;
            }
            if !retry {
                return;
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// Logs a failure of the store and waits a little before the worker starts over — unless
    /// the webhook is gone (deleted, or with its device or tenant): then the worker's next
    /// look at the outbox ends it.
    async fn store_failed(&self, webhook: &WebhookRecord, error: StoreError) {
        if let StoreError::NotFound(gone) = error {
            tracing::debug!(webhook = webhook.id, "the webhook is gone: {gone}");
            return;
        }
        tracing::error!(webhook = webhook.id, tenant = webhook.tenant, "the store failed (starting over): {error}");
        tokio::time::sleep(STORE_RETRY).await;
    }

    /// Attempt number `attempt` at `event` for `webhook`: handed to its event handler, or sent
    /// under its tenant's outbound rules.
    async fn attempt(
        &self,
        webhook: &WebhookRecord,
        event: &waedge_store::events::EventRecord,
        attempt: u32,
    ) -> Result<Tried, StoreError> {
        if webhook.handler().is_some() {
            let started = Instant::now();
            let at = chrono::Utc::now();
            let verdict = match self.gateway.handle_event(&webhook.tenant, &webhook.id, event).await {
                Ok(()) => Verdict::Delivered,
                Err(Unhandled::Failed(why)) => Verdict::Retry(why),
                Err(Unhandled::NotNow(why)) => return Ok(Tried::NotNow(why)),
            };
            return Ok(Tried::Attempted(deliver::log(event, attempt, None, &verdict, at, started), verdict));
        }
        let tenant = webhook.tenant.clone();
        let record = self.blocking(move |store| store.tenant(&tenant)).await?;
        let host = http::Uri::try_from(webhook.url.as_str()).ok().and_then(|uri| uri.host().map(str::to_string));
        let may_be_internal = host.is_some_and(|host| outbound::names(&record.outbound_private_hosts, &host));
        let component: Arc<str> = format!("webhook:{}", webhook.id).into();
        let reporter = Reporter::new(&webhook.tenant, component, self.gateway.metrics().clone());
        let target = Target { webhook, may_be_internal, reporter: &reporter };
        let (log, verdict) = deliver::attempt(self.gateway.outbound(), &target, event, attempt).await;
        Ok(Tried::Attempted(log, verdict))
    }

    /// Runs `work` on the store on a blocking thread.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store)).await.expect("store task panicked")
    }
}

/// How long to wait before attempt `attempt + 1`: a random time up to
/// `FIRST_BACKOFF × 2^(attempt − 1)`, at most [`MAX_BACKOFF`] ("full jitter": retries of many
/// events that failed together spread out instead of coming back together).
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF.saturating_mul(1 << (attempt.saturating_sub(1)).min(20)).min(MAX_BACKOFF);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use waedge_device::DeviceManager;
    use waedge_e2e::fixture::{FixtureDevices, World};
    use waedge_e2e::server::fixtures;
    use waedge_store::events::{MESSAGE_RECEIVED, NewEvent};
    use waedge_store::tenants::NewTenant;
    use waedge_store::webhooks::NewWebhook;

    use super::*;
    use crate::limits::Limits;
    use crate::runtime::Runtime;

    /// How a worker waited for news so far.
    #[derive(Debug, Default, Clone, Copy, PartialEq)]
    pub(super) struct Idle {
        /// How often it began to wait.
        pub(super) waits: usize,
        /// How often new events woke it.
        pub(super) woken: usize,
    }

    /// A gateway with no tenant, for its outbound HTTP and metrics.
    fn gateway() -> Gateway {
        let world = World::load(&fixtures().join("world.toml")).expect("the fixture world");
        let devices: Arc<dyn DeviceManager> = Arc::new(FixtureDevices(world));
        Gateway::new(Runtime::with_slots(2).expect("a runtime"), devices, Limits::default(), None)
    }

    /// A message of `device` received from John Doe, `id` its message id.
    fn message(device: &str, id: &str) -> Vec<NewEvent> {
        vec![NewEvent {
            device: device.into(),
            kind: MESSAGE_RECEIVED.into(),
            chat: "6281234567890@s.whatsapp.net".into(),
            dedup: Some(id.into()),
            at: "2026-12-05T15:00:00Z".into(),
            data: serde_json::json!({ "message_id": id }),
        }]
    }

    /// Waits (up to a minute: builds share the machine) until `webhook`'s worker has waited as
    /// `done` says; returns how it has.
    async fn idle_until(webhooks: &Webhooks, webhook: &str, done: impl Fn(Idle) -> bool) -> Idle {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let idle = webhooks.idle.lock().unwrap().get(webhook).copied().unwrap_or_default();
            if done(idle) || Instant::now() > deadline {
                assert!(done(idle), "webhook {webhook}: {idle:?}");
                return idle;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // One thread: a worker woken by a commit runs at the test's next yield, before it goes on.
    #[tokio::test]
    async fn a_worker_is_woken_by_the_events_of_its_tenant_and_of_its_device_only() {
        let store = Store::open_in_memory().unwrap();
        for tenant in ["acme", "globex"] {
            store.create_tenant(NewTenant { id: tenant.into(), ..Default::default() }).unwrap();
            store.create_device(tenant, "main").unwrap();
        }
        store.create_device("globex", "backup").unwrap();
        // globex's webhooks take a type no commit here appends: they look, and deliver nothing.
        let status = |device: Option<&str>| NewWebhook {
            url: "https://globex.example/in".into(),
            device: device.map(str::to_string),
            events: vec!["message.status".into()],
            secret: sign::new_secret(),
        };
        let every = store.create_webhook("globex", status(None)).unwrap().id;
        let backup = store.create_webhook("globex", status(Some("backup"))).unwrap().id;
        let (mailbox, appended) = waedge_device::mailbox::store_mailbox(&store);
        let webhooks = Arc::new(Webhooks::new(store.clone(), Arc::new(gateway()), appended));
        webhooks.reload().await.unwrap();
        idle_until(&webhooks, &every, |idle| idle.waits >= 1).await;
        idle_until(&webhooks, &backup, |idle| idle.waits >= 1).await;

        for id in ["A", "B", "C"] {
            mailbox.commit("acme", message("main", id)).await.unwrap();
            tokio::task::yield_now().await;
        }
        let woken = |webhook: &str| webhooks.idle.lock().unwrap()[webhook].woken;
        assert_eq!((woken(&every), woken(&backup)), (0, 0), "acme's events wake no worker of globex");

        mailbox.commit("globex", message("main", "D")).await.unwrap();
        let idle = idle_until(&webhooks, &every, |idle| idle.woken >= 1 && idle.waits >= 2).await;
        assert_eq!(idle.woken, 1, "woken, it looked, found nothing it takes and waits again");
        tokio::task::yield_now().await;
        assert_eq!(woken(&backup), 0, "the events of another device of its tenant");
        mailbox.commit("globex", message("backup", "E")).await.unwrap();
        idle_until(&webhooks, &backup, |idle| idle.woken == 1 && idle.waits >= 2).await;
        idle_until(&webhooks, &every, |idle| idle.woken == 2).await;
        assert_eq!(store.next_delivery(&every).unwrap(), None);
        webhooks.shutdown();
    }

    #[test]
    fn a_backoff_is_random_below_a_ceiling_that_doubles_up_to_a_cap() {
        for attempt in 1..=30 {
            let ceiling = (FIRST_BACKOFF * 2u32.pow((attempt - 1).min(20))).min(MAX_BACKOFF);
            let waits: Vec<Duration> = (0..200).map(|_| backoff(attempt)).collect();
            assert!(waits.iter().all(|wait| *wait <= ceiling), "attempt {attempt}: {waits:?}");
            assert!(waits.iter().any(|wait| *wait < ceiling / 2), "full jitter goes low too: {attempt}");
        }
        assert_eq!(MAX_BACKOFF, Duration::from_secs(300));
    }
}

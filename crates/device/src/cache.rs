//! A TTL cache in front of a [`DeviceSession`], so a burst of API calls about the same
//! contact or group becomes one WhatsApp query: concurrent misses on one key wait for one
//! fetch, and each map holds a bounded number of entries.
//!
//! Only successful answers are cached; errors (a dropped connection, a timeout) are retried
//! by the next request. Local look-ups that never touch the network (LID mappings, contact
//! names, status) pass straight through, and so does every look-up while the session does not
//! show its device connected (see [`Cached`]). Hits and misses of the look-ups made through the
//! cache are counted by whoever makes it ([`CacheMetrics`]: the host's metrics).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use waedge_contract::types::{
    BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, LidVerification, OnWhatsapp,
    ProfilePicture, SendOutcome, SentMessage, UserInfo, VerifiedLink,
};
use waedge_jid::Jid;

use super::{DeviceSession, TextMessage, VerificationRequest};

/// Counts the look-ups of a [`Cached`] session: the host's metrics implement it.
pub trait CacheMetrics: Send + Sync + 'static {
    /// Counts WhatsApp look-ups answered from the cache (`hits`) and from WhatsApp (`misses`).
    fn cache_lookups(&self, hits: u64, misses: u64);
}

/// Entries one map keeps at most: distinct contacts one device is asked about within a TTL.
const CAPACITY: usize = 10_000;

/// A map whose entries expire `ttl` after insertion, of at most [`CAPACITY`] entries, where
/// concurrent misses on one key make one fetch.
struct TtlMap<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
    /// A turn per key being fetched: the first miss fetches, the others wait for it.
    fetching: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, CAPACITY)
    }

    fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        TtlMap { ttl, capacity, entries: Mutex::default(), fetching: Mutex::default() }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            // Full: drop what has expired and, if that is not an eighth, an eighth more, so
            // the next sweep is an eighth of the capacity away (constant work per insert).
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            let excess = (entries.len() + (self.capacity / 8).max(1)).saturating_sub(self.capacity);
            let evicted: Vec<K> = entries.keys().take(excess).cloned().collect();
            evicted.iter().for_each(|key| drop(entries.remove(key)));
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// The cached value for `key`, or the result of `fetch`, cached when it succeeds. While a
    /// fetch of `key` is under way, other callers wait for it instead of fetching again.
    async fn get_or_fetch<F>(&self, metrics: &dyn CacheMetrics, key: K, fetch: F) -> Result<V, Error>
    where
        F: Future<Output = Result<V, Error>>,
    {
        if let Some(hit) = self.get(&key) {
            metrics.cache_lookups(1, 0);
            return Ok(hit);
        }
        let turn = self.fetching.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default().clone();
        let answer = {
            let _turn = turn.lock().await;
            match self.get(&key) {
                Some(hit) => {
                    metrics.cache_lookups(1, 0);
                    Ok(hit)
                }
                None => {
                    metrics.cache_lookups(0, 1);
                    fetch.await.inspect(|value| self.insert(key.clone(), value.clone()))
                }
            }
        };
        let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and this one: nobody else waits for this key.
        if Arc::strong_count(&turn) == 2 {
            fetching.remove(&key);
        }
        answer
    }

    /// Entries held now, expired ones included.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// A [`DeviceSession`] that caches the network look-ups of another, while that one shows its
/// device connected: a device another node runs whose recorded status says otherwise (it may
/// lag) is asked there each time, so that every node answers alike.
pub struct Cached {
    inner: Arc<dyn DeviceSession>,
    metrics: Arc<dyn CacheMetrics>,
    users: TtlMap<Jid, Option<UserInfo>>,
    pictures: TtlMap<(Jid, bool), Option<ProfilePicture>>,
    businesses: TtlMap<Jid, Option<BusinessProfile>>,
    groups: TtlMap<(), Vec<Group>>,
    group_info: TtlMap<Jid, Group>,
}

impl Cached {
    /// Wraps `inner`, keeping answers for `ttl` and counting hits and misses in `metrics`.
    pub fn new(inner: Arc<dyn DeviceSession>, ttl: Duration, metrics: Arc<dyn CacheMetrics>) -> Self {
        Cached {
            inner,
            metrics,
            users: TtlMap::new(ttl),
            pictures: TtlMap::new(ttl),
            businesses: TtlMap::new(ttl),
            groups: TtlMap::new(ttl),
            group_info: TtlMap::new(ttl),
        }
    }

    /// Whether `inner` shows its device connected: only then are answers cached or taken
    /// from the cache.
    fn shows_connected(&self) -> bool {
        self.inner.state() == DeviceState::Connected
    }

    /// `map`'s answer for `key`, or `fetch`'s, as [`TtlMap::get_or_fetch`] gives it while the
    /// device shows connected; `fetch`'s alone, uncounted, otherwise.
    async fn get_or_fetch<K, V, F>(&self, map: &TtlMap<K, V>, key: K, fetch: F) -> Result<V, Error>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: Future<Output = Result<V, Error>>,
    {
        if self.shows_connected() { map.get_or_fetch(&*self.metrics, key, fetch).await } else { fetch.await }
    }
}

#[async_trait]
impl DeviceSession for Cached {
    fn status(&self) -> DeviceStatus {
        self.inner.status()
    }

    fn with_status(&self, show: &mut dyn FnMut(&DeviceStatus)) {
        self.inner.with_status(show)
    }

    fn runs_here(&self) -> bool {
        self.inner.runs_here()
    }

    async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error> {
        if !self.shows_connected() {
            return self.inner.user_info(jids).await;
        }
        // What the cache knows of each JID now (`Some(None)`: a user WhatsApp does not know);
        // the answer is made of these and what is fetched, not read from the cache again, so
        // an entry that expires during the fetch is not lost from it.
        let mut known: Vec<Option<Option<UserInfo>>> = jids.iter().map(|jid| self.users.get(jid)).collect();
        let missing: Vec<Jid> = jids.iter().zip(&known).filter(|(_, k)| k.is_none()).map(|(j, _)| j.clone()).collect();
        self.metrics.cache_lookups((jids.len() - missing.len()) as u64, missing.len() as u64);
        if !missing.is_empty() {
            let fetched = self.inner.user_info(&missing).await?;
            for (jid, slot) in jids.iter().zip(&mut known).filter(|(_, k)| k.is_none()) {
                let info = fetched.iter().find(|i| i.jid == jid.to_string()).cloned();
                self.users.insert(jid.clone(), info.clone());
                *slot = Some(info);
            }
        }
        Ok(known.into_iter().flatten().flatten().collect())
    }

    async fn profile_picture(&self, jid: &Jid, preview: bool) -> Result<Option<ProfilePicture>, Error> {
        self.get_or_fetch(&self.pictures, (jid.clone(), preview), self.inner.profile_picture(jid, preview)).await
    }

    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error> {
        self.get_or_fetch(&self.businesses, jid.clone(), self.inner.business_profile(jid)).await
    }

    async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error> {
        self.inner.lid_mapping(jid).await
    }

    async fn is_on_whatsapp(&self, jids: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
        self.inner.is_on_whatsapp(jids).await
    }

    async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
        self.get_or_fetch(&self.groups, (), self.inner.joined_groups()).await
    }

    async fn group_info(&self, jid: &Jid) -> Result<Group, Error> {
        self.get_or_fetch(&self.group_info, jid.clone(), self.inner.group_info(jid)).await
    }

    async fn contact(&self, jid: &Jid) -> Result<Option<Contact>, Error> {
        self.inner.contact(jid).await
    }

    async fn send_text(&self, message: &TextMessage) -> Result<SendOutcome, Error> {
        self.inner.send_text(message).await
    }

    async fn sent_message(&self, id: &str) -> Result<Option<SentMessage>, Error> {
        self.inner.sent_message(id).await
    }

    async fn start_lid_verification(&self, request: &VerificationRequest) -> Result<LidVerification, Error> {
        self.inner.start_lid_verification(request).await
    }

    async fn lid_verification(&self, id: &str) -> Result<Option<LidVerification>, Error> {
        self.inner.lid_verification(id).await
    }

    async fn verified_link(&self, jid: &Jid) -> Result<Option<VerifiedLink>, Error> {
        self.inner.verified_link(jid).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use super::*;

    /// Hits and misses, as the host's metrics count them.
    #[derive(Default)]
    struct Lookups {
        hits: AtomicU64,
        misses: AtomicU64,
    }

    impl CacheMetrics for Lookups {
        fn cache_lookups(&self, hits: u64, misses: u64) {
            self.hits.fetch_add(hits, Ordering::Relaxed);
            self.misses.fetch_add(misses, Ordering::Relaxed);
        }
    }

    impl Lookups {
        fn counted(&self) -> (u64, u64) {
            (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_on_one_key_make_one_fetch() {
        let map = Arc::new(TtlMap::<u32, u32>::new(Duration::from_secs(60)));
        let metrics = Arc::new(Lookups::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (map, metrics, fetches) = (map.clone(), metrics.clone(), fetches.clone());
                tokio::spawn(async move {
                    let fetch = async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(7)
                    };
                    map.get_or_fetch(&*metrics, 1, fetch).await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 7);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one WhatsApp query for 50 concurrent misses");
        assert!(map.fetching.lock().unwrap().is_empty(), "no turn is left behind");
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached_and_the_next_caller_fetches_again() {
        let map = TtlMap::<u32, u32>::new(Duration::from_secs(60));
        let metrics = Lookups::default();
        assert!(map.get_or_fetch(&metrics, 1, async { Err(Error::Timeout) }).await.is_err());
        assert_eq!(map.get_or_fetch(&metrics, 1, async { Ok(2) }).await.unwrap(), 2);
    }

    #[test]
    fn the_map_stays_within_its_capacity() {
        let map = TtlMap::<u32, u32>::with_capacity(Duration::from_secs(3600), 1000);
        for key in 0..100_000 {
            map.insert(key, key);
            assert!(map.len() <= 1000, "{} entries", map.len());
        }
        assert_eq!(map.get(&99_999), Some(99_999), "the newest entry is kept");
    }

    /// A phone whose WhatsApp knows the users in `known`, answering user-info queries after
    /// `delay`, or failing them while `failing`; it remembers what it was asked.
    struct Phone {
        known: Vec<&'static str>,
        delay: Duration,
        failing: std::sync::atomic::AtomicBool,
        /// What its status shows: connected unless set otherwise.
        state: Mutex<DeviceState>,
        asked: Mutex<Vec<Vec<String>>>,
        /// How many times it was asked for its groups.
        groups_asked: AtomicUsize,
    }

    impl Phone {
        fn new(known: &[&'static str], delay: Duration) -> Arc<Phone> {
            let (state, known) = (Mutex::new(DeviceState::Connected), known.to_vec());
            Arc::new(Phone {
                known,
                delay,
                state,
                failing: Default::default(),
                asked: Default::default(),
                groups_asked: Default::default(),
            })
        }

        fn knowing(known: &[&'static str]) -> Arc<Phone> {
            Phone::new(known, Duration::ZERO)
        }

        fn asked(&self) -> Vec<Vec<String>> {
            std::mem::take(&mut self.asked.lock().unwrap())
        }
    }

    #[async_trait]
    impl DeviceSession for Phone {
        fn status(&self) -> DeviceStatus {
            let state = *self.state.lock().unwrap();
            DeviceStatus { id: "main".into(), state, jid: None, lid: None, push_name: None }
        }

        async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error> {
            self.asked.lock().unwrap().push(jids.iter().map(Jid::to_string).collect());
            tokio::time::sleep(self.delay).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(Error::Timeout);
            }
            Ok(jids.iter().map(Jid::to_string).filter(|jid| self.known.contains(&jid.as_str())).map(user).collect())
        }

        async fn profile_picture(&self, _: &Jid, _: bool) -> Result<Option<ProfilePicture>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn business_profile(&self, _: &Jid) -> Result<Option<BusinessProfile>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn lid_mapping(&self, _: &Jid) -> Result<Option<LidMapping>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn is_on_whatsapp(&self, _: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
            self.groups_asked.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }

        async fn group_info(&self, _: &Jid) -> Result<Group, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn contact(&self, _: &Jid) -> Result<Option<Contact>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn send_text(&self, _: &TextMessage) -> Result<SendOutcome, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn sent_message(&self, _: &str) -> Result<Option<SentMessage>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn start_lid_verification(&self, _: &VerificationRequest) -> Result<LidVerification, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn lid_verification(&self, _: &str) -> Result<Option<LidVerification>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }

        async fn verified_link(&self, _: &Jid) -> Result<Option<VerifiedLink>, Error> {
            unreachable!("the cache tests ask for user info and groups only")
        }
    }

    const ANN: &str = "6281111111111@s.whatsapp.net";
    const BOB: &str = "6282222222222@s.whatsapp.net";
    const CAT: &str = "6283333333333@s.whatsapp.net";
    const NOBODY: &str = "6289999999999@s.whatsapp.net";

    fn user(jid: String) -> UserInfo {
        UserInfo {
            jid,
            lid: None,
            status: Some(String::new()),
            picture_id: None,
            devices: None,
            verified_name: None,
            is_business: None,
        }
    }

    fn jids(texts: &[&str]) -> Vec<Jid> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn answered(infos: Vec<UserInfo>) -> Vec<String> {
        infos.into_iter().map(|info| info.jid).collect()
    }

    #[tokio::test]
    async fn a_partial_hit_asks_whatsapp_only_for_the_users_it_lacks_and_answers_all_in_order() {
        let phone = Phone::knowing(&[ANN, BOB, CAT]);
        let lookups = Arc::new(Lookups::default());
        let cached = Cached::new(phone.clone(), Duration::from_secs(60), lookups.clone());
        assert_eq!(answered(cached.user_info(&jids(&[ANN, BOB])).await.unwrap()), [ANN, BOB]);
        assert_eq!(phone.asked(), [[ANN, BOB]]);
        assert_eq!(lookups.counted(), (0, 2));

        assert_eq!(answered(cached.user_info(&jids(&[CAT, ANN, BOB])).await.unwrap()), [CAT, ANN, BOB]);
        assert_eq!(phone.asked(), [[CAT]], "only the user not cached");
        assert_eq!(lookups.counted(), (2, 3));

        assert_eq!(answered(cached.user_info(&jids(&[BOB, CAT])).await.unwrap()), [BOB, CAT]);
        assert!(phone.asked().is_empty(), "a full hit asks nothing");
        assert_eq!(lookups.counted(), (4, 3));
    }

    #[tokio::test]
    async fn a_device_not_shown_connected_is_asked_each_time_and_nothing_it_answers_is_cached() {
        let phone = Phone::knowing(&[ANN, BOB]);
        let lookups = Arc::new(Lookups::default());
        let cached = Cached::new(phone.clone(), Duration::from_secs(60), lookups.clone());
        cached.user_info(&jids(&[ANN])).await.unwrap();
        // Run by another node whose recorded status lags: asked there, cache or not.
        *phone.state.lock().unwrap() = DeviceState::Disconnected;
        for _ in 0..2 {
            assert_eq!(answered(cached.user_info(&jids(&[ANN, BOB])).await.unwrap()), [ANN, BOB]);
        }
        assert_eq!(phone.asked(), [vec![ANN], vec![ANN, BOB], vec![ANN, BOB]]);
        *phone.state.lock().unwrap() = DeviceState::Connected;
        assert_eq!(answered(cached.user_info(&jids(&[ANN, BOB])).await.unwrap()), [ANN, BOB]);
        assert_eq!(phone.asked(), [[BOB]], "what was cached while connected, and nothing since");
        assert_eq!(lookups.counted(), (1, 2), "the calls made past the cache are not counted");
        // The other cached look-ups alike (groups for all of them).
        let groups = || async { cached.joined_groups().await.unwrap() };
        groups().await;
        *phone.state.lock().unwrap() = DeviceState::Disconnected;
        groups().await;
        groups().await;
        *phone.state.lock().unwrap() = DeviceState::Connected;
        groups().await;
        assert_eq!(phone.groups_asked.load(Ordering::SeqCst), 3, "once while connected, twice while not");
    }

    #[tokio::test]
    async fn a_user_whatsapp_does_not_know_is_left_out_and_not_asked_again() {
        let phone = Phone::knowing(&[ANN]);
        let cached = Cached::new(phone.clone(), Duration::from_secs(60), Arc::new(Lookups::default()));
        assert_eq!(answered(cached.user_info(&jids(&[NOBODY, ANN])).await.unwrap()), [ANN]);
        assert_eq!(answered(cached.user_info(&jids(&[ANN, NOBODY])).await.unwrap()), [ANN]);
        assert_eq!(phone.asked(), [[NOBODY, ANN]], "the unknown user's answer is cached too");
    }

    #[tokio::test]
    async fn a_failed_fetch_fails_the_call_and_caches_nothing() {
        let phone = Phone::knowing(&[ANN, BOB]);
        let cached = Cached::new(phone.clone(), Duration::from_secs(60), Arc::new(Lookups::default()));
        cached.user_info(&jids(&[ANN])).await.unwrap();
        phone.failing.store(true, Ordering::SeqCst);
        assert_eq!(cached.user_info(&jids(&[ANN, BOB])).await, Err(Error::Timeout), "no partial answer");
        phone.failing.store(false, Ordering::SeqCst);
        assert_eq!(answered(cached.user_info(&jids(&[ANN, BOB])).await.unwrap()), [ANN, BOB]);
        assert_eq!(phone.asked(), [vec![ANN], vec![BOB], vec![BOB]], "BOB is asked again after the failure");
    }

    #[tokio::test]
    async fn a_hit_that_expires_while_the_rest_is_fetched_stays_in_the_answer() {
        let phone = Phone::new(&[ANN, BOB], Duration::from_millis(300));
        let cached = Cached::new(phone.clone(), Duration::from_millis(400), Arc::new(Lookups::default()));
        cached.user_info(&jids(&[ANN])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ANN is a hit now, and expires while BOB is fetched.
        assert_eq!(answered(cached.user_info(&jids(&[ANN, BOB])).await.unwrap()), [ANN, BOB]);
        assert_eq!(phone.asked(), [[ANN], [BOB]]);
    }
}

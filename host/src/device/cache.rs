//! A TTL cache in front of a [`DeviceSession`], so a burst of API calls about the same
//! contact or group becomes one WhatsApp query.
//!
//! Only successful answers are cached; errors (a dropped connection, a timeout) are retried
//! by the next request. Local look-ups that never touch the network (LID mappings, contact
//! names, status) pass straight through.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use waedge_jid::Jid;

use super::DeviceSession;
use crate::bindings::types::{
    BusinessProfile, Contact, DeviceStatus, Error, Group, LidMapping, OnWhatsapp, ProfilePicture, UserInfo,
};
use crate::metrics::Metrics;

/// Entries kept per map before expired ones are swept.
const SWEEP_THRESHOLD: usize = 4096;

/// A map whose entries expire `ttl` after insertion.
struct TtlMap<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration) -> Self {
        TtlMap { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= SWEEP_THRESHOLD {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// The cached value for `key`, or the result of `fetch`, cached when it succeeds.
    async fn get_or_fetch<F>(&self, metrics: &Metrics, key: K, fetch: F) -> Result<V, Error>
    where
        F: Future<Output = Result<V, Error>>,
    {
        let hit = self.get(&key);
        metrics.cache_lookups(u64::from(hit.is_some()), u64::from(hit.is_none()));
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let value = fetch.await?;
        self.insert(key, value.clone());
        Ok(value)
    }
}

/// A [`DeviceSession`] that caches the network look-ups of another.
pub struct Cached {
    inner: Arc<dyn DeviceSession>,
    metrics: Arc<Metrics>,
    users: TtlMap<Jid, Option<UserInfo>>,
    pictures: TtlMap<(Jid, bool), Option<ProfilePicture>>,
    businesses: TtlMap<Jid, Option<BusinessProfile>>,
    groups: TtlMap<(), Vec<Group>>,
    group_info: TtlMap<Jid, Group>,
}

impl Cached {
    /// Wraps `inner`, keeping answers for `ttl` and counting hits and misses in `metrics`.
    pub fn new(inner: Arc<dyn DeviceSession>, ttl: Duration, metrics: Arc<Metrics>) -> Self {
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
}

#[async_trait]
impl DeviceSession for Cached {
    fn status(&self) -> DeviceStatus {
        self.inner.status()
    }

    async fn user_info(&self, jids: &[Jid]) -> Result<Vec<UserInfo>, Error> {
        let missing: Vec<Jid> = jids.iter().filter(|j| self.users.get(j).is_none()).cloned().collect();
        self.metrics.cache_lookups((jids.len() - missing.len()) as u64, missing.len() as u64);
        if !missing.is_empty() {
            let fetched = self.inner.user_info(&missing).await?;
            for jid in missing {
                let info = fetched.iter().find(|i| i.jid == jid.to_string()).cloned();
                self.users.insert(jid, info);
            }
        }
        Ok(jids.iter().filter_map(|j| self.users.get(j).flatten()).collect())
    }

    async fn profile_picture(&self, jid: &Jid, preview: bool) -> Result<Option<ProfilePicture>, Error> {
        self.pictures
            .get_or_fetch(&self.metrics, (jid.clone(), preview), self.inner.profile_picture(jid, preview))
            .await
    }

    async fn business_profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error> {
        self.businesses.get_or_fetch(&self.metrics, jid.clone(), self.inner.business_profile(jid)).await
    }

    async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error> {
        self.inner.lid_mapping(jid).await
    }

    async fn is_on_whatsapp(&self, jids: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
        self.inner.is_on_whatsapp(jids).await
    }

    async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
        self.groups.get_or_fetch(&self.metrics, (), self.inner.joined_groups()).await
    }

    async fn group_info(&self, jid: &Jid) -> Result<Group, Error> {
        self.group_info.get_or_fetch(&self.metrics, jid.clone(), self.inner.group_info(jid)).await
    }

    async fn contact(&self, jid: &Jid) -> Result<Option<Contact>, Error> {
        self.inner.contact(jid).await
    }
}

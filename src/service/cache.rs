//! A read-through cache for the registry's hottest lookups: repository by name, manifest
//! by tag or digest, blob links, and each registry's scanning configuration (read by
//! every push).
//!
//! Only positive answers are cached, so rows added by another process (e.g. `berth
//! admin create-repository`) are seen at once. When several nodes share the metadata
//! on PostgreSQL, their changes arrive by notification (meta/notify.rs), within
//! milliseconds; and since a node that dies between a commit and its notification
//! leaves the others uninformed, the whole cache is also dropped every
//! [`SHARED_TTL`], which bounds how long such a change can go unseen. A `sqlite:` file
//! several processes share brings no notifications: there the cache is off.
//!
//! Consistency: the metadata store announces every change (meta/changes.rs); a change to
//! a repository bumps its generation and drops its entries. A reader notes the
//! generation before it queries the database and installs its answer only if the
//! generation is unchanged, so a read that raced a write is never cached. No service
//! code invalidates by hand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::pull_through::CacheRule;
use super::replication::ReplicationConfig;
use super::signing::SigningConfig;
use super::RegistryScanning;
use crate::blobs::BlobLocation;
use crate::meta::{Change, Listener, RegistryKey, Repository, StoredManifest};

/// A blob as a repository's link sees it: its size and where its bytes are (stable for
/// as long as the link exists: a linked blob's row is never removed or moved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedBlob {
    pub size: u64,
    pub location: BlobLocation,
}

/// With several nodes, how long anything stays cached (see the module comment).
pub const SHARED_TTL: Duration = Duration::from_secs(5);

/// Cached manifest bytes are bounded; past this the cache starts over.
const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
struct RepoEntries {
    generation: u64,
    /// Keyed by tag or digest string (they cannot collide: tags contain no ':').
    manifests: HashMap<String, Arc<StoredManifest>>,
    /// The blob, and when this process last refreshed the link's `linked_at` (0: never).
    links: HashMap<String, (LinkedBlob, i64)>,
}

#[derive(Default)]
struct Inner {
    /// Bumped when another process changed the metadata: every older read is suspect.
    epoch: u64,
    repositories: HashMap<(RegistryKey, String), Repository>,
    /// The key of each cached repository row, by id (changes name repositories by id).
    repository_keys: HashMap<i64, (RegistryKey, String)>,
    repos: HashMap<i64, RepoEntries>,
    scanning: HashMap<RegistryKey, RegistryScanning>,
    /// Each registry's pull-through cache rules (consulted by every manifest pull).
    cache_rules: HashMap<RegistryKey, Arc<Vec<CacheRule>>>,
    /// Each registry's replication configuration (consulted by every outbox event).
    replication: HashMap<RegistryKey, Arc<ReplicationConfig>>,
    /// Each registry's signing configuration (consulted by every push).
    signing: HashMap<RegistryKey, Arc<SigningConfig>>,
    manifest_bytes: usize,
    entries: usize,
    /// When the cache last started empty (for [`SHARED_TTL`]).
    since: Option<Instant>,
}

pub struct ReadCache {
    sharing: Sharing,
    inner: Mutex<Inner>,
}

/// Who else writes the metadata, as far as the cache is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Nobody: entries stay until a change drops them.
    Alone,
    /// Other nodes, whose changes this process hears: entries also expire.
    Notified,
    /// Other processes it does not hear from: nothing is cached.
    Unheard,
}

/// A repository's generation (and the cache's epoch), noted before a database read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64, u64);

/// Count a lookup's result in the metrics (the cache hit ratio).
fn counted<T>(cache: &'static str, found: Option<T>) -> Option<T> {
    use crate::observe::metrics::{metrics, CacheResult};
    let result = if found.is_some() {
        CacheResult::Hit
    } else {
        CacheResult::Miss
    };
    metrics().cache_lookup(cache, result);
    found
}

impl ReadCache {
    pub fn new(sharing: Sharing) -> ReadCache {
        ReadCache {
            sharing,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> Option<MutexGuard<'_, Inner>> {
        if self.sharing == Sharing::Unheard {
            return None;
        }
        // A poisoned lock only means a panic elsewhere; the cache is then bypassed.
        let mut inner = self.inner.lock().ok()?;
        if self.sharing == Sharing::Notified {
            match inner.since {
                Some(t) if t.elapsed() < SHARED_TTL => {}
                Some(_) => Self::start_over(&mut inner),
                None => inner.since = Some(Instant::now()),
            }
        }
        Some(inner)
    }

    /// Empty the cache; reads begun before cannot install their answers.
    fn start_over(inner: &mut Inner) {
        *inner = Inner {
            epoch: inner.epoch + 1,
            since: Some(Instant::now()),
            ..Inner::default()
        };
    }

    fn make_room(inner: &mut Inner, bytes: usize) {
        if inner.entries >= MAX_ENTRIES || inner.manifest_bytes + bytes > MAX_MANIFEST_BYTES {
            for r in inner.repos.values_mut() {
                r.manifests.clear();
                r.links.clear();
            }
            inner.repositories.clear();
            inner.repository_keys.clear();
            inner.entries = 0;
            inner.manifest_bytes = 0;
        }
    }

    pub fn repository(&self, reg: &RegistryKey, name: &str) -> Option<Repository> {
        let found = self.lock().and_then(|inner| {
            inner
                .repositories
                .get(&(reg.clone(), name.to_owned()))
                .cloned()
        });
        counted("repository", found)
    }

    pub fn put_repository(&self, reg: &RegistryKey, repo: &Repository) {
        if let Some(mut inner) = self.lock() {
            Self::make_room(&mut inner, 0);
            inner.entries += 1;
            let key = (reg.clone(), repo.name.to_string());
            inner.repository_keys.insert(repo.id, key.clone());
            inner.repositories.insert(key, repo.clone());
        }
    }

    /// Drop a cached repository row (its settings changed or it was deleted).
    fn forget_repository(&self, repository_id: i64) {
        if let Some(mut inner) = self.lock() {
            let Some(key) = inner.repository_keys.remove(&repository_id) else {
                return;
            };
            if inner.repositories.remove(&key).is_some() {
                inner.entries = inner.entries.saturating_sub(1);
            }
        }
    }

    pub fn generation(&self, repository_id: i64) -> Generation {
        self.lock()
            .map(|i| Self::current(&i, repository_id))
            .unwrap_or(Generation(0, 0))
    }

    fn current(inner: &Inner, repository_id: i64) -> Generation {
        Generation(
            inner.repos.get(&repository_id).map_or(0, |r| r.generation),
            inner.epoch,
        )
    }

    /// The epoch, noted before reading a scanning configuration from the database.
    pub fn epoch(&self) -> u64 {
        self.lock().map_or(0, |i| i.epoch)
    }

    pub fn registry_scanning(&self, reg: &RegistryKey) -> Option<RegistryScanning> {
        self.lock()?.scanning.get(reg).cloned()
    }

    /// Install a configuration read since `seen` (see [`ReadCache::epoch`]) unless it
    /// changed meanwhile. One small entry per registry, not counted against the limit.
    pub fn put_registry_scanning(&self, seen: u64, reg: &RegistryKey, config: &RegistryScanning) {
        if let Some(mut inner) = self.lock() {
            if inner.epoch == seen {
                inner.scanning.insert(reg.clone(), config.clone());
            }
        }
    }

    pub fn cache_rules(&self, reg: &RegistryKey) -> Option<Arc<Vec<CacheRule>>> {
        self.lock()?.cache_rules.get(reg).cloned()
    }

    /// Install a registry's rules read since `seen`, as [`ReadCache::put_registry_scanning`].
    pub fn put_cache_rules(&self, seen: u64, reg: &RegistryKey, rules: Arc<Vec<CacheRule>>) {
        if let Some(mut inner) = self.lock() {
            if inner.epoch == seen {
                inner.cache_rules.insert(reg.clone(), rules);
            }
        }
    }

    pub fn replication(&self, reg: &RegistryKey) -> Option<Arc<ReplicationConfig>> {
        self.lock()?.replication.get(reg).cloned()
    }

    /// Install a registry's replication configuration read since `seen`, as
    /// [`ReadCache::put_registry_scanning`].
    pub fn put_replication(&self, seen: u64, reg: &RegistryKey, config: Arc<ReplicationConfig>) {
        if let Some(mut inner) = self.lock() {
            if inner.epoch == seen {
                inner.replication.insert(reg.clone(), config);
            }
        }
    }

    pub fn signing(&self, reg: &RegistryKey) -> Option<Arc<SigningConfig>> {
        self.lock()?.signing.get(reg).cloned()
    }

    /// Install a registry's signing configuration read since `seen`.
    pub fn put_signing(&self, seen: u64, reg: &RegistryKey, config: Arc<SigningConfig>) {
        if let Some(mut inner) = self.lock() {
            if inner.epoch == seen {
                inner.signing.insert(reg.clone(), config);
            }
        }
    }

    /// A registry's configuration (scanning, cache rules, replication, signing) changed: drop it, and refuse
    /// any read that started before (by moving the epoch; the other entries stay valid).
    fn forget_registry_scanning(&self, reg: &RegistryKey) {
        if let Some(mut inner) = self.lock() {
            inner.scanning.remove(reg);
            inner.cache_rules.remove(reg);
            inner.replication.remove(reg);
            inner.signing.remove(reg);
            inner.epoch += 1;
        }
    }

    /// Forget everything: another process (`berth admin ...`) changed the metadata.
    fn clear_all(&self) {
        if let Some(mut inner) = self.lock() {
            Self::start_over(&mut inner);
        }
    }

    pub fn manifest(&self, repository_id: i64, key: &str) -> Option<Arc<StoredManifest>> {
        let found = self
            .lock()
            .and_then(|inner| inner.repos.get(&repository_id)?.manifests.get(key).cloned());
        counted("manifest", found)
    }

    pub fn put_manifest(
        &self,
        repository_id: i64,
        seen: Generation,
        key: String,
        m: Arc<StoredManifest>,
    ) {
        let Some(mut inner) = self.lock() else { return };
        if Self::current(&inner, repository_id) != seen {
            return;
        }
        let bytes = m.body.len();
        if bytes > MAX_MANIFEST_BYTES / 8 {
            return;
        }
        Self::make_room(&mut inner, bytes);
        inner.manifest_bytes += bytes;
        inner.entries += 1;
        inner
            .repos
            .entry(repository_id)
            .or_default()
            .manifests
            .insert(key, m);
    }

    pub fn link(&self, repository_id: i64, digest: &str) -> Option<LinkedBlob> {
        let inner = self.lock()?;
        inner
            .repos
            .get(&repository_id)?
            .links
            .get(digest)
            .map(|(blob, _)| blob.clone())
    }

    /// The blob of a link refreshed at or after `since` (ms).
    pub fn link_touched_since(
        &self,
        repository_id: i64,
        digest: &str,
        since: i64,
    ) -> Option<LinkedBlob> {
        let inner = self.lock()?;
        let (blob, touched) = inner.repos.get(&repository_id)?.links.get(digest)?;
        (*touched >= since).then(|| blob.clone())
    }

    pub fn put_link(&self, repository_id: i64, seen: Generation, digest: String, blob: LinkedBlob) {
        self.put_link_touched(repository_id, seen, digest, blob, 0);
    }

    pub fn put_link_touched(
        &self,
        repository_id: i64,
        seen: Generation,
        digest: String,
        blob: LinkedBlob,
        touched: i64,
    ) {
        let Some(mut inner) = self.lock() else { return };
        if Self::current(&inner, repository_id) != seen {
            return;
        }
        Self::make_room(&mut inner, 0);
        inner.entries += 1;
        inner
            .repos
            .entry(repository_id)
            .or_default()
            .links
            .insert(digest, (blob, touched));
    }

    /// A repository's contents changed: drop them, refuse reads that started before.
    fn invalidate(&self, repository_id: i64) {
        if let Some(mut inner) = self.lock() {
            let r = inner.repos.entry(repository_id).or_default();
            r.generation += 1;
            let freed: usize = r.manifests.values().map(|m| m.body.len()).sum();
            let count = r.manifests.len() + r.links.len();
            r.manifests.clear();
            r.links.clear();
            inner.manifest_bytes = inner.manifest_bytes.saturating_sub(freed);
            inner.entries = inner.entries.saturating_sub(count);
        }
    }
}

impl Listener for ReadCache {
    fn changed(&self, change: &Change) {
        match change {
            Change::Content { repository_id } => self.invalidate(*repository_id),
            Change::Repository { repository_id } => {
                self.forget_repository(*repository_id);
                self.invalidate(*repository_id);
            }
            Change::Registry(reg) => self.forget_registry_scanning(reg),
            Change::Identities | Change::Events => {}
            Change::Everything => self.clear_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Arc<StoredManifest> {
        Arc::new(StoredManifest {
            digest: "sha256:x".into(),
            media_type: "t".into(),
            body: bytes::Bytes::from_static(b"{}"),
            archived: false,
        })
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let c = ReadCache::new(Sharing::Alone);
        let seen = c.generation(1);
        c.invalidate(1); // a write lands while the reader queried the database
        c.put_manifest(1, seen, "latest".into(), m());
        assert!(c.manifest(1, "latest").is_none());
        let seen = c.generation(1);
        c.put_manifest(1, seen, "latest".into(), m());
        assert!(c.manifest(1, "latest").is_some());
        c.invalidate(1);
        assert!(c.manifest(1, "latest").is_none());
    }

    #[test]
    fn unheard_writers_turn_it_off() {
        let c = ReadCache::new(Sharing::Unheard);
        let seen = c.generation(1);
        c.put_manifest(1, seen, "latest".into(), m());
        assert!(c.manifest(1, "latest").is_none());
    }

    #[test]
    fn with_several_nodes_everything_expires() {
        let c = ReadCache::new(Sharing::Notified);
        let seen = c.generation(1);
        c.put_manifest(1, seen, "latest".into(), m());
        assert!(c.manifest(1, "latest").is_some());
        // A read begun before the expiry cannot install its answer after it.
        let before = c.generation(1);
        c.inner.lock().expect("lock").since = Some(Instant::now() - SHARED_TTL);
        assert!(c.manifest(1, "latest").is_none());
        c.put_manifest(1, before, "latest".into(), m());
        assert!(c.manifest(1, "latest").is_none());
        // Alone, nothing expires.
        let alone = ReadCache::new(Sharing::Alone);
        let seen = alone.generation(1);
        alone.put_manifest(1, seen, "latest".into(), m());
        alone.inner.lock().expect("lock").since = Some(Instant::now() - 10 * SHARED_TTL);
        assert!(alone.manifest(1, "latest").is_some());
    }
}

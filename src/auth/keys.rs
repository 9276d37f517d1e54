//! Long-term access keys: the store they are looked up in (an interface `auth` owns and
//! the service implements over the metadata), and the cache in front of it. Every
//! signed API request needs its key, so lookups are cached; the cache hears of key and
//! identity changes from the metadata store (meta/changes.rs), and where other processes
//! may change keys (a shared database) entries also expire after a few seconds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{KeyOwner, Principal};
use crate::meta::{Change, Listener};

/// How long a cached key may be used when other processes may change it.
const SHARED_TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 10_000;

/// Who a stored key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwnerIdentity {
    Root {
        account_id: String,
    },
    User {
        account_id: String,
        name: String,
        id: String,
        arn: String,
    },
}

/// A key as stored: its secret, whether it is active, its owner.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub secret_access_key: String,
    pub active: bool,
    pub owner: KeyOwnerIdentity,
}

/// Where access keys are looked up.
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync {
    /// The key with this id, if it (and its owner) exists.
    async fn find_key(&self, access_key_id: &str) -> Result<Option<StoredKey>, String>;

    /// An IAM user's console password hash, if the user exists and has one.
    async fn find_login(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<super::console::StoredLogin>, String>;
}

/// A key store, and whether other processes may change it.
pub struct KeySource {
    pub store: Arc<dyn KeyStore>,
    pub shared: bool,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<String, (Arc<KeyOwner>, Instant)>,
    /// Counts clearings: a key read before one is not stored after it.
    generation: u64,
}

pub(super) struct KeyCache {
    source: KeySource,
    inner: RwLock<Inner>,
}

impl KeyCache {
    pub(super) fn new(source: KeySource) -> KeyCache {
        KeyCache {
            source,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// The store keys (and console passwords) are looked up in.
    pub(super) fn store(&self) -> &std::sync::Arc<dyn KeyStore> {
        &self.source.store
    }

    /// The owner of a key, from the cache or the store.
    pub(super) async fn owner(&self, access_key_id: &str) -> Result<Option<Arc<KeyOwner>>, String> {
        let seen = match self.inner.read() {
            Ok(i) => {
                if let Some((k, at)) = i.keys.get(access_key_id) {
                    if !self.source.shared || at.elapsed() < SHARED_TTL {
                        return Ok(Some(k.clone()));
                    }
                }
                i.generation
            }
            Err(_) => u64::MAX,
        };
        let Some(key) = self.source.store.find_key(access_key_id).await? else {
            return Ok(None);
        };
        let principal = match key.owner {
            KeyOwnerIdentity::Root { account_id } => Principal::root(&account_id),
            KeyOwnerIdentity::User {
                account_id,
                name,
                id,
                arn,
            } => Principal::user(account_id, name, id, arn),
        };
        let owner = Arc::new(KeyOwner::new(key.secret_access_key, key.active, principal));
        if let Ok(mut i) = self.inner.write() {
            if i.generation == seen {
                if i.keys.len() >= MAX_ENTRIES {
                    i.keys.clear();
                }
                i.keys
                    .insert(access_key_id.to_owned(), (owner.clone(), Instant::now()));
            }
        }
        Ok(Some(owner))
    }
}

impl Listener for KeyCache {
    fn changed(&self, change: &Change) {
        if matches!(change, Change::Identities | Change::Everything) {
            if let Ok(mut i) = self.inner.write() {
                i.keys.clear();
                i.generation = i.generation.wrapping_add(1);
            }
        }
    }
}

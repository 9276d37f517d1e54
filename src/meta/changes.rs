//! What changed in the metadata, announced by the store itself so that caches above it
//! cannot miss a change: every write method takes an [`Announcement`] before it writes,
//! and the announcement reaches the listeners when the method returns — after the
//! commit, or after the failure, or when the caller's future was dropped mid-write.
//!
//! Why after and not before: a cache notes its generation before it reads the database
//! and installs what it read only if no announcement came in between (see the caches
//! in `service`). A reader that saw the old rows either installs them before the
//! announcement (which then drops them) or is refused.
//!
//! Writes that only add rows a cache has never seen (a new repository, a new blob link,
//! a pull time) announce nothing: the caches hold positive answers only. Another
//! process's writes arrive as [`Change::Everything`] (today through the external-writes
//! signal; with several nodes, through the database's notifications).

use std::sync::{Arc, RwLock};

use super::RegistryKey;

/// One change, as coarse as the caches need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// What a repository holds: images, tags, blob links, scan and storage state.
    Content { repository_id: i64 },
    /// A repository itself: deleted, its settings, policy or resource tags.
    Repository { repository_id: i64 },
    /// A registry's own configuration: its policy, scanning configuration, settings.
    Registry(RegistryKey),
    /// IAM identities, their policies, groups and access keys.
    Identities,
    /// New outbox events a job is waiting for (a requested scan): its consumer wakes
    /// at once instead of at its next poll.
    Events,
    /// Anything at all: another process changed the metadata.
    Everything,
}

/// Something that keeps copies of metadata and must hear about changes.
pub trait Listener: Send + Sync {
    fn changed(&self, change: &Change);
}

/// The store's listeners.
#[derive(Default)]
pub struct Feed {
    listeners: RwLock<Vec<Arc<dyn Listener>>>,
}

impl Feed {
    pub fn subscribe(&self, listener: Arc<dyn Listener>) {
        if let Ok(mut l) = self.listeners.write() {
            l.push(listener);
        }
    }

    pub fn publish(&self, change: &Change) {
        // Every write publishes: no copy of the list. A poisoned lock means a listener
        // panicked; the others still hear it. (Listeners never subscribe from `changed`.)
        let listeners = self.listeners.read().unwrap_or_else(|p| p.into_inner());
        for l in listeners.iter() {
            l.changed(change);
        }
    }

    /// A change published when the returned value is dropped.
    pub fn announce(&self, change: Change) -> Announcement<'_> {
        Announcement {
            feed: self,
            change: Some(change),
        }
    }
}

/// Publishes its change when dropped (see the module comment).
#[must_use = "the change is published when this is dropped"]
pub struct Announcement<'a> {
    feed: &'a Feed,
    change: Option<Change>,
}

impl Drop for Announcement<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.change.take() {
            self.feed.publish(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Change>>);

    impl Listener for Recorder {
        fn changed(&self, change: &Change) {
            self.0.lock().expect("lock").push(change.clone());
        }
    }

    #[test]
    fn an_announcement_is_published_when_dropped() {
        let feed = Feed::default();
        let r = Arc::new(Recorder::default());
        feed.subscribe(r.clone());
        {
            let _a = feed.announce(Change::Identities);
            assert!(r.0.lock().expect("lock").is_empty());
        }
        assert_eq!(*r.0.lock().expect("lock"), vec![Change::Identities]);
    }
}

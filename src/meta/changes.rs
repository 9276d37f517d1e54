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
//! a pull time) announce nothing: the caches hold positive answers only.
//!
//! Other processes' writes arrive too. On PostgreSQL every change is relayed to the
//! other nodes (meta/notify.rs: NOTIFY after the commit, LISTEN on every node), which
//! publish it as if it were their own; a node that lost its listening connection
//! publishes [`Change::Everything`] once it is back. `berth admin` on SQLite announces
//! its writes through the external-writes signal (service/signals.rs).

use std::sync::{Arc, OnceLock, RwLock};

use super::RegistryKey;
use crate::aws::{AccountId, Region};

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

impl Change {
    /// The change as one line of a notification.
    pub fn to_wire(&self) -> String {
        match self {
            Change::Content { repository_id } => format!("content {repository_id}"),
            Change::Repository { repository_id } => format!("repository {repository_id}"),
            Change::Registry(r) => format!("registry {} {}", r.account_id, r.region),
            Change::Identities => "identities".into(),
            Change::Events => "events".into(),
            Change::Everything => "everything".into(),
        }
    }

    /// A line of a notification; anything unreadable (a newer node's change) is
    /// [`Change::Everything`], which is always safe.
    pub fn from_wire(line: &str) -> Change {
        let words: Vec<&str> = line.split(' ').collect();
        let id = |w: &str| w.parse::<i64>().ok();
        match words.as_slice() {
            ["content", n] => id(n).map(|repository_id| Change::Content { repository_id }),
            ["repository", n] => id(n).map(|repository_id| Change::Repository { repository_id }),
            ["registry", a, r] => AccountId::parse(a)
                .zip(Region::parse(r))
                .map(|(account_id, region)| Change::Registry(RegistryKey { account_id, region })),
            ["identities"] => Some(Change::Identities),
            ["events"] => Some(Change::Events),
            _ => None,
        }
        .unwrap_or(Change::Everything)
    }
}

/// Something that keeps copies of metadata and must hear about changes.
pub trait Listener: Send + Sync {
    fn changed(&self, change: &Change);
}

/// The store's listeners, and where this process's changes go to reach other nodes.
#[derive(Default)]
pub struct Feed {
    listeners: RwLock<Vec<Arc<dyn Listener>>>,
    relay: OnceLock<tokio::sync::mpsc::UnboundedSender<Change>>,
}

impl Feed {
    pub fn subscribe(&self, listener: Arc<dyn Listener>) {
        if let Ok(mut l) = self.listeners.write() {
            l.push(listener);
        }
    }

    /// Send this process's changes to `relay` too (once; see meta/notify.rs).
    pub(super) fn relay_to(&self, relay: tokio::sync::mpsc::UnboundedSender<Change>) {
        let _ = self.relay.set(relay);
    }

    /// A change made here: to the listeners, and to the other nodes.
    pub fn publish(&self, change: &Change) {
        self.publish_here(change);
        if let Some(relay) = self.relay.get() {
            let _ = relay.send(change.clone());
        }
    }

    /// A change to tell this process's listeners only (one made elsewhere).
    pub fn publish_here(&self, change: &Change) {
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

    #[test]
    fn changes_cross_the_wire_and_unknown_lines_mean_everything() {
        let reg = RegistryKey {
            account_id: AccountId::parse("123456789012").expect("id"),
            region: Region::parse("eu-west-1").expect("region"),
        };
        for c in [
            Change::Content { repository_id: 7 },
            Change::Repository { repository_id: 8 },
            Change::Registry(reg),
            Change::Identities,
            Change::Events,
            Change::Everything,
        ] {
            assert_eq!(Change::from_wire(&c.to_wire()), c);
        }
        for odd in ["", "content x", "registry 1 2", "tags 5"] {
            assert_eq!(Change::from_wire(odd), Change::Everything, "{odd}");
        }
    }
}

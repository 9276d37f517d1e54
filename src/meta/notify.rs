//! Changes between nodes sharing one PostgreSQL: every node NOTIFYs the changes its
//! writes announce (after their commit) and LISTENs for the others', which it publishes
//! to its own caches (see changes.rs). A cache on another node is dropped within the
//! notification's delivery time — milliseconds — instead of waiting out an expiry.
//!
//! Lost notifications: while the listening connection is down, nothing arrives; once
//! it is back the node publishes [`Change::Everything`], so what it missed cannot
//! linger. A node that dies between a commit and its NOTIFY leaves the others to their
//! caches' expiry (the policy and key caches keep entries seconds, not longer).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;

use super::changes::{Change, Feed};

/// The notification channel.
const CHANNEL: &str = "berth_changes";
/// PostgreSQL refuses payloads of 8000 bytes or more: a longer batch is sent as
/// "everything".
const MAX_PAYLOAD: usize = 7000;

/// Start relaying this node's changes and listening for the others'.
pub(super) fn start(pool: PgPool, feed: Arc<Feed>) {
    let node = format!("{:016x}", rand_u64());
    let (tx, rx) = mpsc::unbounded_channel();
    feed.relay_to(tx);
    tokio::spawn(send(pool.clone(), node.clone(), rx));
    tokio::spawn(listen(pool, node, Arc::downgrade(&feed)));
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    // A collision only makes two nodes ignore each other's notifications: the entropy
    // source failing is not worth stopping for.
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b)
}

/// The payload of one notification: the sender, then one change per line.
fn payload(node: &str, changes: &[Change]) -> String {
    let mut lines = vec![node.to_owned()];
    lines.extend(changes.iter().map(Change::to_wire));
    let text = lines.join("\n");
    if text.len() <= MAX_PAYLOAD {
        text
    } else {
        format!("{node}\n{}", Change::Everything.to_wire())
    }
}

/// Changes in a payload from another node; `None` for this node's own.
fn parse(node: &str, payload: &str) -> Option<Vec<Change>> {
    let mut lines = payload.lines();
    if lines.next()? == node {
        return None;
    }
    Some(lines.map(Change::from_wire).collect())
}

async fn send(pool: PgPool, node: String, mut rx: mpsc::UnboundedReceiver<Change>) {
    let mut batch = Vec::new();
    let mut lost = false;
    // Everything that accumulated while the last NOTIFY was being sent goes in one.
    while rx.recv_many(&mut batch, 256).await > 0 {
        if lost {
            // Changes were dropped after a failed NOTIFY: the others drop everything.
            batch.push(Change::Everything);
        }
        let text = payload(&node, &batch);
        batch.clear();
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&text)
            .execute(&pool)
            .await;
        lost = sent.is_err();
        if let Err(e) = sent {
            // Until a NOTIFY gets through (then saying "everything"), the other nodes'
            // entries expire on their own.
            tracing::warn!(error = %e, "notifying other nodes of a change");
        }
    }
}

async fn listen(pool: PgPool, node: String, feed: std::sync::Weak<Feed>) {
    let mut listener: Option<PgListener> = None;
    loop {
        let Some(l) = listener.as_mut() else {
            match subscribe(&pool).await {
                Ok(l) => {
                    listener = Some(l);
                    // Whatever happened while not listening is unknown.
                    publish(&feed, &[Change::Everything]);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other nodes' changes; retrying");
                    if feed.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            continue;
        };
        match l.try_recv().await {
            Ok(Some(n)) => {
                if let Some(changes) = parse(&node, n.payload()) {
                    if !publish(&feed, &changes) {
                        return;
                    }
                }
            }
            // The connection dropped and was made again: notifications were lost.
            Ok(None) => {
                if !publish(&feed, &[Change::Everything]) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection that listens for changes");
                listener = None;
            }
        }
    }
}

async fn subscribe(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(CHANNEL).await?;
    Ok(l)
}

/// False once the store is gone (the task then ends).
fn publish(feed: &std::sync::Weak<Feed>, changes: &[Change]) -> bool {
    let Some(feed) = feed.upgrade() else {
        return false;
    };
    for c in changes {
        feed.publish_here(c);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_sender_and_stay_under_the_limit() {
        let changes = vec![Change::Identities, Change::Content { repository_id: 3 }];
        let text = payload("me", &changes);
        assert_eq!(parse("me", &text), None, "a node ignores its own");
        assert_eq!(parse("other", &text), Some(changes));
        let many: Vec<Change> = (0..2000)
            .map(|repository_id| Change::Content { repository_id })
            .collect();
        let text = payload("me", &many);
        assert!(text.len() <= MAX_PAYLOAD);
        assert_eq!(parse("other", &text), Some(vec![Change::Everything]));
    }
}

//! The outbox: events written in the same transaction as the change they describe,
//! read by background jobs after their cursor (migrations/*/0006_jobs.sql says why no
//! event can be skipped). Delivery is at least once: a consumer that dies before it
//! moves its cursor sees the same events again, so handlers are idempotent.

use super::{Db, MetaStore, RegistryKey, Result};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A manifest was stored that the repository did not hold (or held archived).
    ImagePushed,
    /// An existing image was given a tag, or a tag moved to it.
    TagMoved,
    TagDeleted,
    ImageDeleted,
    /// A scan was recorded IN_PROGRESS (by StartImageScan, or by a push scanned on push).
    ScanRequested,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ImagePushed => "image_pushed",
            EventKind::TagMoved => "tag_moved",
            EventKind::TagDeleted => "tag_deleted",
            EventKind::ImageDeleted => "image_deleted",
            EventKind::ScanRequested => "scan_requested",
        }
    }

    fn parse(s: &str) -> Option<EventKind> {
        [
            EventKind::ImagePushed,
            EventKind::TagMoved,
            EventKind::TagDeleted,
            EventKind::ImageDeleted,
            EventKind::ScanRequested,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The repository an event is about, as the writer knows it.
#[derive(Debug, Clone, Copy)]
pub struct EventSource<'a> {
    pub registry: &'a RegistryKey,
    pub repository_id: i64,
    pub repository_name: &'a str,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub kind: EventKind,
    pub registry: RegistryKey,
    pub repository_id: i64,
    pub repository_name: String,
    pub digest: String,
    pub tag: Option<String>,
    pub created_at: i64,
}

type EventRow = (
    i64,
    String,
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    i64,
);

/// Append an event inside the open transaction `$tx`; the last write before the commit
/// (it locks the sequence counter until then).
macro_rules! record_event {
    ($tx:ident, $kind:expr, $src:expr, $digest:expr, $tag:expr, $now:expr) => {{
        let (seq,): (i64,) = sqlx::query_as(
            "UPDATE change_signals SET value = value + 1 WHERE name = 'outbox_seq' RETURNING value",
        )
        .fetch_one(&mut *$tx)
        .await?;
        let src: &$crate::meta::EventSource<'_> = $src;
        sqlx::query(
            "INSERT INTO outbox (seq, kind, account_id, region, repository_id, repository_name,
                 digest, tag, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(seq)
        .bind($kind.as_str())
        .bind(&src.registry.account_id)
        .bind(&src.registry.region)
        .bind(src.repository_id)
        .bind(src.repository_name)
        .bind($digest)
        .bind($tag)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl MetaStore {
    /// Events after `seq`, oldest first, at most `limit`.
    pub async fn events_after(&self, seq: i64, limit: i64) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> = on_read!(self, pool => sqlx::query_as(
            "SELECT seq, kind, account_id, region, repository_id, repository_name, digest, tag,
                    created_at
             FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .filter_map(
                |(seq, kind, account_id, region, repository_id, name, digest, tag, at)| {
                    Some(Event {
                        seq,
                        kind: EventKind::parse(&kind)?,
                        registry: RegistryKey { account_id, region },
                        repository_id,
                        repository_name: name,
                        digest,
                        tag,
                        created_at: at,
                    })
                },
            )
            .collect())
    }

    /// The newest event's sequence number (0 if none was ever written).
    pub async fn last_event_seq(&self) -> Result<i64> {
        self.signal("outbox_seq").await
    }

    /// Forget events that every consumer has handled and that are older than `before`.
    pub async fn prune_events(&self, before: i64) -> Result<u64> {
        let n = on_write!(self, pool => sqlx::query(
            "DELETE FROM outbox WHERE created_at < $1
               AND seq <= (SELECT COALESCE(MIN(cursor_seq), 0) FROM jobs WHERE name LIKE 'outbox:%')",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n)
    }
}

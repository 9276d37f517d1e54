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
    /// The vulnerability data changed under an image enhanced scanning monitors.
    RescanRequested,
    /// A new image is to be signed (managed signing), recorded with its push.
    SignRequested,
    /// An image or tag arrived by replication (replication does not replicate it on).
    ImageReplicated,
    /// An image or tag (`tag`) was removed by replication.
    ReplicaDeleted,
    /// A scan's outcome was recorded (for notifications).
    ScanCompleted,
    /// An image's replication to a destination ended (`detail`: the destination and
    /// the outcome; for notifications).
    ReplicationFinished,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ImagePushed => "image_pushed",
            EventKind::TagMoved => "tag_moved",
            EventKind::TagDeleted => "tag_deleted",
            EventKind::ImageDeleted => "image_deleted",
            EventKind::ScanRequested => "scan_requested",
            EventKind::RescanRequested => "rescan_requested",
            EventKind::SignRequested => "sign_requested",
            EventKind::ImageReplicated => "image_replicated",
            EventKind::ReplicaDeleted => "replica_deleted",
            EventKind::ScanCompleted => "scan_completed",
            EventKind::ReplicationFinished => "replication_finished",
        }
    }

    /// The kind recorded for this change when `source` says replication made it.
    pub fn as_made_by(self, source: &EventSource<'_>) -> EventKind {
        match (source.replicated, self) {
            (true, EventKind::ImagePushed | EventKind::TagMoved) => EventKind::ImageReplicated,
            (true, EventKind::ImageDeleted | EventKind::TagDeleted) => EventKind::ReplicaDeleted,
            _ => self,
        }
    }

    fn parse(s: &str) -> Option<EventKind> {
        [
            EventKind::ImagePushed,
            EventKind::TagMoved,
            EventKind::TagDeleted,
            EventKind::ImageDeleted,
            EventKind::ScanRequested,
            EventKind::RescanRequested,
            EventKind::SignRequested,
            EventKind::ImageReplicated,
            EventKind::ReplicaDeleted,
            EventKind::ScanCompleted,
            EventKind::ReplicationFinished,
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
    /// The change is replication's, not a client's.
    pub replicated: bool,
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
    /// What else the kind records (JSON), if anything.
    pub detail: Option<String>,
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
    Option<String>,
);

/// The statement that appends an event: one round trip on either backend, because it
/// runs inside every push's transaction, on SQLite's only writer. Both bump the counter
/// first, so the counter row stays locked until the commit.
pub(super) trait EventStatement {
    const RECORD_EVENT: &'static str;
}

impl EventStatement for sqlx::Postgres {
    const RECORD_EVENT: &'static str = "WITH s AS (
            UPDATE change_signals SET value = value + 1 WHERE name = 'outbox_seq' RETURNING value)
        INSERT INTO outbox (seq, kind, account_id, region, repository_id, repository_name,
             digest, tag, created_at, detail)
        SELECT s.value, $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM s";
}

// SQLite has no UPDATE in a WITH, but takes several statements in one call (sharing the
// numbered parameters), and its single writer orders them.
impl EventStatement for sqlx::Sqlite {
    const RECORD_EVENT: &'static str =
        "UPDATE change_signals SET value = value + 1 WHERE name = 'outbox_seq';
        INSERT INTO outbox (seq, kind, account_id, region, repository_id, repository_name,
             digest, tag, created_at, detail)
        SELECT value, $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM change_signals WHERE name = 'outbox_seq'";
}

/// The event statement for the backend of `_tx`.
pub(super) fn record_event_sql<DB: sqlx::Database + EventStatement>(
    _tx: &sqlx::Transaction<'_, DB>,
) -> &'static str {
    DB::RECORD_EVENT
}

/// Append an event inside the open transaction `$tx`; the last write before the commit
/// (it locks the sequence counter until then).
macro_rules! record_event {
    ($tx:ident, $kind:expr, $src:expr, $digest:expr, $tag:expr, $now:expr) => {
        record_event!($tx, $kind, $src, $digest, $tag, $now, None::<String>)
    };
    ($tx:ident, $kind:expr, $src:expr, $digest:expr, $tag:expr, $now:expr, $detail:expr) => {{
        let src: &$crate::meta::EventSource<'_> = $src;
        let written = sqlx::query($crate::meta::outbox::record_event_sql(&$tx))
            .bind($kind.as_made_by(src).as_str())
            .bind(&src.registry.account_id)
            .bind(&src.registry.region)
            .bind(src.repository_id)
            .bind(src.repository_name)
            .bind($digest)
            .bind($tag)
            .bind($now)
            .bind($detail)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if written == 0 {
            return Err($crate::meta::Error::Backend(
                "the outbox counter row is missing".into(),
            ));
        }
    }};
}

impl MetaStore {
    /// Events after `seq`, oldest first, at most `limit`.
    pub async fn events_after(&self, seq: i64, limit: i64) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> = on_read!(self, pool => sqlx::query_as(
            "SELECT seq, kind, account_id, region, repository_id, repository_name, digest, tag,
                    created_at, detail
             FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .filter_map(
                |(seq, kind, account_id, region, repository_id, name, digest, tag, at, detail)| {
                    Some(Event {
                        seq,
                        kind: EventKind::parse(&kind)?,
                        registry: RegistryKey::from_store(account_id, region),
                        repository_id,
                        repository_name: name,
                        digest,
                        tag,
                        created_at: at,
                        detail,
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

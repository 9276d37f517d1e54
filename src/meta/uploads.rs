//! Upload sessions and blob-store garbage: what the blob store needs remembered where
//! every node finds it (see blobs/mod.rs).
//!
//! A session's row is created with the session and deleted in the transaction that
//! records its blob (links.rs), so a row that remains names bytes nothing else does:
//! the collector aborts sessions whose rows have not changed for a grace period.
//!
//! Discarding a session (cancelled, failed, collected) first marks its row `aborting`
//! (naming the version it read), then removes the bytes, then the row. A marked session
//! can no longer be extended or recorded, so a request finishing it concurrently cannot
//! record bytes being removed; a crash after the mark leaves the row to the collector.

use std::collections::HashMap;
use std::sync::Mutex;

use super::batch::{cached_sql, value_rows};
use super::changes::{Change, Listener};
use super::links::UploadWrite;
use super::{Db, MetaStore, Result};
use crate::blobs::{BlobLocation, UploadId, UploadKey, UploadState};

/// This process's copy of the session rows, kept only while it is the metadata's only
/// writer (see [`MetaStore::is_single_node`]): every request of an upload reads its
/// session, and on the embedded database that read cost as much as the rest of a small
/// blob's upload. Every change to a row here updates or drops its copy; a key not held
/// is read from the database (after a restart, say), never filled in from a read, which
/// could race with a change. A copy is taken out before its row is written, so a request
/// cancelled during the write leaves none behind. A change made by another process
/// (`berth admin gc`) arrives as [`Change::Everything`], which empties it.
pub(super) struct SessionCache(Option<Mutex<HashMap<UploadKey, StoredUpload>>>);

impl Listener for SessionCache {
    fn changed(&self, change: &Change) {
        if matches!(change, Change::Everything) {
            self.with(HashMap::clear);
        }
    }
}

impl SessionCache {
    pub(super) fn new(enabled: bool) -> SessionCache {
        SessionCache(enabled.then(Mutex::default))
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<UploadKey, StoredUpload>) -> T) -> Option<T> {
        let mut map = self.0.as_ref()?.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut map))
    }

    fn get(&self, key: UploadKey) -> Option<StoredUpload> {
        self.with(|m| m.get(&key).cloned()).flatten()
    }

    fn put(&self, key: UploadKey, stored: StoredUpload) {
        self.with(|m| m.insert(key, stored));
    }

    pub(super) fn drop_key(&self, key: UploadKey) {
        self.take(key);
    }

    fn take(&self, key: UploadKey) -> Option<StoredUpload> {
        self.with(|m| m.remove(&key)).flatten()
    }

    /// Put back a copy taken out before a write that succeeded, unless a later write's
    /// copy is there already.
    fn put_back(&self, key: UploadKey, stored: StoredUpload) {
        self.with(|m| match m.get(&key) {
            Some(there) if there.version >= stored.version => {}
            _ => {
                m.insert(key, stored);
            }
        });
    }
}

/// The version of a new session's row.
pub const FIRST_VERSION: i64 = 1;

/// A session row to insert (with the records, through links.rs's batcher).
pub(super) struct NewSession {
    pub key: UploadKey,
    pub state: UploadState,
    pub now_ms: i64,
}

/// `INSERT` of `rows` session rows: five bind parameters each (repository id, upload
/// id, state, now, [`FIRST_VERSION`]).
pub(super) fn insert_sessions_sql(rows: usize) -> std::sync::Arc<str> {
    cached_sql("insert sessions", rows, || {
        format!(
            "INSERT INTO blob_uploads (repository_id, upload_id, state, updated_at, version)
             VALUES {}",
            value_rows(rows, 5)
        )
    })
}

/// A session as stored: the blob store's state and the version a save must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUpload {
    pub state: UploadState,
    pub version: i64,
    /// An ECR API part other than the last was under 5 MiB.
    pub short_part_before_last: bool,
    /// Being discarded: the session is over.
    pub aborting: bool,
}

impl StoredUpload {
    /// A session just inserted with `state`.
    pub fn new(state: UploadState) -> StoredUpload {
        StoredUpload {
            state,
            version: FIRST_VERSION,
            short_part_before_last: false,
            aborting: false,
        }
    }
}

type UploadRow = (i64, String, Vec<u8>, i64, i64, i64);

const UPLOAD_COLUMNS: &str =
    "repository_id, upload_id, state, version, short_part_before_last, aborting";

fn stored(row: UploadRow) -> Option<(UploadKey, StoredUpload)> {
    let (owner, id, state, version, short, aborting) = row;
    let key = UploadKey {
        owner,
        id: UploadId::parse(&id)?,
    };
    Some((
        key,
        StoredUpload {
            state: UploadState::from_store(state),
            version,
            short_part_before_last: short != 0,
            aborting: aborting != 0,
        },
    ))
}

impl MetaStore {
    /// Store a new session's row. Sessions start in bursts (a push starts one per layer),
    /// so their inserts are batched like links (batch.rs).
    pub async fn insert_upload(
        &self,
        key: UploadKey,
        state: &UploadState,
        now_ms: i64,
    ) -> Result<()> {
        self.upload_writes
            .write(UploadWrite::Open(NewSession {
                key,
                state: state.clone(),
                now_ms,
            }))
            .await?;
        self.session_cache
            .put(key, StoredUpload::new(state.clone()));
        Ok(())
    }

    pub async fn upload(&self, key: UploadKey) -> Result<Option<StoredUpload>> {
        if let Some(stored) = self.session_cache.get(key) {
            return Ok(Some(stored));
        }
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM blob_uploads WHERE repository_id = $1 AND upload_id = $2"
        );
        let row: Option<UploadRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(key.owner).bind(key.id.to_string()).fetch_optional(pool).await?);
        Ok(row.and_then(stored).map(|(_, s)| s))
    }

    /// Replace a session's state if it is still at `version`; false if another request
    /// saved first (or the session is gone).
    pub async fn save_upload(
        &self,
        key: UploadKey,
        version: i64,
        state: &UploadState,
        garbage: &[BlobLocation],
        now_ms: i64,
    ) -> Result<bool> {
        const SAVE: &str =
            "UPDATE blob_uploads SET state = $3, version = version + 1, updated_at = $4
             WHERE repository_id = $1 AND upload_id = $2 AND version = $5 AND aborting = 0";
        macro_rules! save {
            ($executor:expr) => {
                sqlx::query(SAVE)
                    .bind(key.owner)
                    .bind(key.id.to_string())
                    .bind(state.as_bytes())
                    .bind(now_ms)
                    .bind(version)
                    .execute($executor)
                    .await?
                    .rows_affected()
            };
        }
        // Out first: a request cancelled during the write must not leave a stale copy.
        let held = self.session_cache.take(key);
        let n = on_write!(self, pool => {
            if garbage.is_empty() {
                save!(pool)
            } else {
                // What the old state named becomes garbage with the save, so a crash
                // before its deletion leaves it to the collector.
                let mut tx = pool.begin().await?;
                let n = save!(&mut *tx);
                if n > 0 {
                    for location in garbage {
                        sqlx::query(RECORD_GARBAGE).bind(location.as_str()).bind(now_ms)
                            .execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                n
            }
        });
        if let Some(mut copy) = held.filter(|_| n > 0) {
            copy.state = state.clone();
            copy.version = version + 1;
            self.session_cache.put_back(key, copy);
        }
        Ok(n > 0)
    }

    /// Note an ECR API part's size class (under 5 MiB or not) after it was appended.
    pub async fn record_api_part(&self, key: UploadKey, short: bool) -> Result<()> {
        // The copy does not hold the last part's size class: the next read goes to the row.
        self.session_cache.drop_key(key);
        on_write!(self, pool => sqlx::query(
            "UPDATE blob_uploads SET
                 short_part_before_last = CASE WHEN last_part_short = 1 THEN 1
                                               ELSE short_part_before_last END,
                 last_part_short = $3
             WHERE repository_id = $1 AND upload_id = $2",
        )
        .bind(key.owner).bind(key.id.to_string()).bind(i64::from(short))
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Mark a session still at `version` as being discarded; false if it changed, was
    /// recorded, or is gone (then its bytes are someone else's business).
    pub async fn begin_abort(&self, key: UploadKey, version: i64) -> Result<bool> {
        self.session_cache.drop_key(key);
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE blob_uploads SET aborting = 1, version = version + 1
             WHERE repository_id = $1 AND upload_id = $2 AND version = $3",
        )
        .bind(key.owner).bind(key.id.to_string()).bind(version)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Forget a session marked by [`MetaStore::begin_abort`] once its bytes are gone.
    pub async fn forget_aborted_upload(&self, key: UploadKey) -> Result<()> {
        self.session_cache.drop_key(key);
        on_write!(self, pool => sqlx::query(
            "DELETE FROM blob_uploads WHERE repository_id = $1 AND upload_id = $2 AND aborting = 1",
        )
        .bind(key.owner).bind(key.id.to_string())
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Sessions last saved before `before_ms`, oldest first.
    pub async fn idle_uploads(
        &self,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<(UploadKey, StoredUpload)>> {
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM blob_uploads WHERE updated_at < $1
             ORDER BY updated_at LIMIT $2"
        );
        let rows: Vec<UploadRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(before_ms).bind(limit).fetch_all(pool).await?);
        Ok(rows.into_iter().filter_map(stored).collect())
    }

    /// Stored bytes waiting to be removed from the blob store.
    pub async fn blob_garbage(&self, limit: i64) -> Result<Vec<BlobLocation>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT location FROM blob_garbage ORDER BY since, location LIMIT $1",
        )
        .bind(limit).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(l,)| BlobLocation::from_store(l))
            .collect())
    }

    /// The bytes at `location` are gone.
    pub async fn forget_garbage(&self, location: &BlobLocation) -> Result<()> {
        on_write!(self, pool => sqlx::query("DELETE FROM blob_garbage WHERE location = $1")
            .bind(location.as_str()).execute(pool).await?.rows_affected());
        Ok(())
    }
}

/// Record a location as garbage ($1 location, $2 now), inside the transaction that
/// forgets it.
pub(super) const RECORD_GARBAGE: &str =
    "INSERT INTO blob_garbage (location, since) VALUES ($1, $2) ON CONFLICT (location) DO NOTHING";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: i64) -> StoredUpload {
        StoredUpload {
            version,
            ..StoredUpload::new(UploadState::from_store(vec![version as u8]))
        }
    }

    #[test]
    fn a_copy_put_back_never_replaces_a_later_one() {
        let cache = SessionCache::new(true);
        let key = UploadKey {
            owner: 1,
            id: UploadId::new(),
        };
        cache.put(key, at(1));
        let taken = cache.take(key).expect("held");
        assert_eq!(cache.get(key), None);
        // Another write's copy arrived while this one's row was written.
        cache.put(key, at(3));
        cache.put_back(
            key,
            StoredUpload {
                version: 2,
                ..taken
            },
        );
        assert_eq!(cache.get(key).map(|s| s.version), Some(3));
        cache.drop_key(key);
        cache.put_back(key, at(2));
        assert_eq!(cache.get(key).map(|s| s.version), Some(2));
        // Another process's changes empty it.
        cache.changed(&Change::Everything);
        assert_eq!(cache.get(key), None);
        // Off (several nodes): nothing is kept.
        let off = SessionCache::new(false);
        off.put(key, at(1));
        assert_eq!(off.get(key), None);
    }
}

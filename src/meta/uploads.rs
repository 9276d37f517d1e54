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

use super::{Db, MetaStore, Result};
use crate::blobs::{BlobLocation, UploadId, UploadKey, UploadState};

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
    pub async fn insert_upload(
        &self,
        key: UploadKey,
        state: &UploadState,
        now_ms: i64,
    ) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO blob_uploads (repository_id, upload_id, state, version, updated_at)
             VALUES ($1, $2, $3, 1, $4)",
        )
        .bind(key.owner).bind(key.id.to_string()).bind(state.as_bytes()).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn upload(&self, key: UploadKey) -> Result<Option<StoredUpload>> {
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
        now_ms: i64,
    ) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE blob_uploads SET state = $3, version = version + 1, updated_at = $4
             WHERE repository_id = $1 AND upload_id = $2 AND version = $5 AND aborting = 0",
        )
        .bind(key.owner).bind(key.id.to_string()).bind(state.as_bytes()).bind(now_ms)
        .bind(version).execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Note an ECR API part's size class (under 5 MiB or not) after it was appended.
    pub async fn record_api_part(&self, key: UploadKey, short: bool) -> Result<()> {
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

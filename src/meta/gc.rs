//! What online garbage collection needs from the metadata, and storage accounting.
//!
//! The protocol (service/gc.rs drives it) never stops pushes or pulls:
//! - A link (repository → blob) is garbage when no manifest of that repository
//!   references the blob and it is older than the grace period. It is deleted by one
//!   statement that re-checks both. On PostgreSQL storing a manifest refreshes (and so
//!   row-locks) the links it uses; on SQLite the manifest's transaction holds the only
//!   write lock. Either way a link cannot vanish under a manifest.
//! - A blob is garbage when no repository links it and it was last (re)published before
//!   the grace period. The collector marks it with a token and deletes the row only if
//!   the mark is intact, recording the row's location as garbage in the same
//!   transaction; then it deletes the bytes, then the garbage row. Recording a blob
//!   or linking it clears the mark (`record_blob`, `link_existing_blob`), so a blob
//!   being uploaded again keeps its row. One uploaded again after its row went is
//!   published at a location of its own (blobs/mod.rs), which the collector's pending
//!   delete cannot touch.

use super::changes::Change;
use super::uploads::RECORD_GARBAGE;
use super::{Db, MetaStore, RegistryKey, Result};
use crate::blobs::BlobLocation;

/// Storage one repository links (blobs shared by repositories count in each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUsage {
    pub registry: RegistryKey,
    pub name: String,
    pub blobs: i64,
    pub bytes: i64,
}

/// The whole store: distinct blobs and their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageUsage {
    pub blobs: i64,
    pub bytes: i64,
}

impl MetaStore {
    /// Link a blob that must already exist (a mount); false if it is gone.
    pub async fn link_existing_blob(
        &self,
        repository_id: i64,
        digest: &str,
        now_ms: i64,
    ) -> Result<bool> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let kept = sqlx::query(
                "UPDATE blobs SET gc_mark = NULL, created_at = $2 WHERE digest = $1",
            )
            .bind(digest).bind(now_ms).execute(&mut *tx).await?.rows_affected();
            if kept == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
                 ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
            )
            .bind(repository_id).bind(digest).bind(now_ms).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Refresh a link's `linked_at` if it is older than `stale_before`: the row lock and
    /// the new time keep the collector off it while the client relies on it.
    pub async fn touch_link(
        &self,
        repository_id: i64,
        digest: &str,
        now_ms: i64,
        stale_before: i64,
    ) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "UPDATE repository_blobs SET linked_at = $3
             WHERE repository_id = $1 AND digest = $2 AND linked_at < $4",
        )
        .bind(repository_id).bind(digest).bind(now_ms).bind(stale_before)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Links no manifest of their repository references, linked before `cutoff`.
    pub async fn gc_link_candidates(&self, cutoff: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT rb.repository_id, rb.digest FROM repository_blobs rb
             WHERE rb.linked_at < $1
               AND NOT EXISTS (SELECT 1 FROM manifest_references r
                               WHERE r.repository_id = rb.repository_id AND r.child_digest = rb.digest)
             ORDER BY rb.repository_id, rb.digest LIMIT $2",
        )
        .bind(cutoff).bind(limit).fetch_all(pool).await?))
    }

    /// Delete a link if it is still old and unreferenced.
    pub async fn gc_delete_link(
        &self,
        repository_id: i64,
        digest: &str,
        cutoff: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Content { repository_id });
        let n = on_write!(self, pool => sqlx::query(
            "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2 AND linked_at < $3
             AND NOT EXISTS (SELECT 1 FROM manifest_references
                             WHERE repository_id = $1 AND child_digest = $2)",
        )
        .bind(repository_id).bind(digest).bind(cutoff).execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Blobs no repository links, (re)published before `cutoff`: (digest, size).
    pub async fn gc_blob_candidates(&self, cutoff: i64, limit: i64) -> Result<Vec<(String, i64)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT b.digest, b.size FROM blobs b
             WHERE b.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
             ORDER BY b.digest LIMIT $2",
        )
        .bind(cutoff).bind(limit).fetch_all(pool).await?))
    }

    /// Mark a blob for collection if it is still unlinked and old.
    pub async fn gc_mark_blob(&self, digest: &str, token: &str, cutoff: i64) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE blobs SET gc_mark = $2 WHERE digest = $1 AND created_at < $3
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = $1)",
        )
        .bind(digest).bind(token).bind(cutoff).execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Delete a marked blob's row if the mark is intact (nothing linked or re-published
    /// it), recording its bytes as garbage in the same transaction; returns their
    /// location. `legacy` is the location of a blob stored before locations existed.
    pub async fn gc_delete_blob(
        &self,
        digest: &str,
        token: &str,
        legacy: &BlobLocation,
        now_ms: i64,
    ) -> Result<Option<BlobLocation>> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let deleted: Option<(Option<String>,)> = sqlx::query_as(
                "DELETE FROM blobs WHERE digest = $1 AND gc_mark = $2
                 AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = $1)
                 RETURNING location",
            )
            .bind(digest).bind(token).fetch_optional(&mut *tx).await?;
            let Some((location,)) = deleted else {
                return Ok(None);
            };
            let location = location.map_or_else(|| legacy.clone(), BlobLocation::from_store);
            sqlx::query(RECORD_GARBAGE).bind(location.as_str()).bind(now_ms)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some(location))
        })
    }

    pub async fn blob_exists(&self, digest: &str) -> Result<bool> {
        let row: Option<(i64,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT size FROM blobs WHERE digest = $1",
        )
        .bind(digest).fetch_optional(pool).await?);
        Ok(row.is_some())
    }

    /// Linked storage per repository, by registry and name.
    pub async fn repository_usage(&self) -> Result<Vec<RepositoryUsage>> {
        type Row = (String, String, String, i64, i64);
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT r.account_id, r.region, r.name, COUNT(b.digest), CAST(COALESCE(SUM(b.size), 0) AS BIGINT)
             FROM repositories r
             LEFT JOIN repository_blobs rb ON rb.repository_id = r.id
             LEFT JOIN blobs b ON b.digest = rb.digest
             GROUP BY r.id, r.account_id, r.region, r.name
             ORDER BY r.account_id, r.region, r.name",
        )
        .fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(account_id, region, name, blobs, bytes)| RepositoryUsage {
                registry: RegistryKey::from_store(account_id, region),
                name,
                blobs,
                bytes,
            })
            .collect())
    }

    pub async fn storage_usage(&self) -> Result<StorageUsage> {
        let (blobs, bytes): (i64, i64) = on_read!(self, pool => sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs",
        )
        .fetch_one(pool).await?);
        Ok(StorageUsage { blobs, bytes })
    }
}

//! Online garbage collection: removes links no manifest uses, blobs no repository
//! links, and abandoned uploads, once they are older than a grace period, while pushes
//! and pulls go on. No lock is held across the run and nothing becomes read-only;
//! meta/gc.rs explains why every step is safe against a concurrent push.
//!
//! A crash at any point leaves only garbage the metadata names (a garbage record, an
//! upload session's row), which the next run deletes.

use crate::observe::progress;
use std::time::{Duration, SystemTime};

use super::{Error, Result, Service};
use crate::meta::{RepositoryUsage, StorageUsage};
use crate::oci::Digest;

/// Rows looked at per query.
const BATCH: i64 = 1000;

/// What a run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub links_removed: u64,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub uploads_removed: u64,
}

impl Service {
    /// Collect garbage older than `grace_ms` as of `now_ms`. Run it as the `gc` job
    /// (jobs::Runner::run_once), so that one process at a time collects.
    pub async fn collect_garbage(&self, now_ms: i64, grace_ms: i64) -> Result<GcReport> {
        self.collect(now_ms - grace_ms).await
    }

    async fn collect(&self, cutoff: i64) -> Result<GcReport> {
        let mut report = GcReport::default();
        self.recover_quarantine().await?;
        self.sweep_garbage().await?;
        self.collect_links(cutoff, &mut report).await?;
        self.collect_blobs(cutoff, &mut report).await?;
        self.collect_uploads(cutoff, &mut report).await?;
        Ok(report)
    }

    /// Blobs an earlier version's collector left moved aside: one still recorded goes
    /// back, any other away.
    async fn recover_quarantine(&self) -> Result<()> {
        progress::phase("gc: quarantined blobs", None);
        for digest in self.blobs.quarantined().await? {
            progress::advance(1);
            if self.meta.blob_exists(&digest.to_string()).await? {
                self.blobs.restore(&digest).await?;
            } else {
                self.blobs.purge(&digest).await?;
            }
        }
        Ok(())
    }

    /// Delete the bytes recorded as garbage (by a run or an upload that stopped before
    /// deleting them itself).
    async fn sweep_garbage(&self) -> Result<()> {
        progress::phase("gc: deleted blobs", None);
        loop {
            let batch = self.meta.blob_garbage(BATCH).await?;
            progress::advance(batch.len() as u64);
            for location in &batch {
                self.blobs.delete(location).await?;
                self.meta.forget_garbage(location).await?;
            }
            if (batch.len() as i64) < BATCH {
                return Ok(());
            }
        }
    }

    /// Abort upload sessions nobody wrote to since `cutoff`.
    async fn collect_uploads(&self, cutoff: i64, report: &mut GcReport) -> Result<()> {
        let before = SystemTime::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(cutoff.max(0)).unwrap_or(0));
        loop {
            let batch = self.meta.idle_uploads(cutoff, BATCH).await?;
            let mut removed = 0;
            for (key, stored) in &batch {
                // The row's time is when the state last changed; the store knows when
                // bytes last arrived (a local staging file grows without a new state).
                // A session marked by a discard that stopped half-way is finished here.
                let idle =
                    stored.aborting || self.blobs.last_write(*key, &stored.state).await? < before;
                if !idle
                    || !(stored.aborting || self.meta.begin_abort(*key, stored.version).await?)
                {
                    continue;
                }
                self.blobs.abort_upload(*key, &stored.state).await?;
                self.meta.forget_aborted_upload(*key).await?;
                removed += 1;
            }
            report.uploads_removed += removed;
            if (batch.len() as i64) < BATCH || removed == 0 {
                return Ok(());
            }
        }
    }

    async fn collect_links(&self, cutoff: i64, report: &mut GcReport) -> Result<()> {
        progress::phase("gc: links checked", None);
        loop {
            let batch = self.meta.gc_link_candidates(cutoff, BATCH).await?;
            let mut removed = 0;
            progress::advance(batch.len() as u64);
            for (repository_id, digest) in &batch {
                if self
                    .meta
                    .gc_delete_link(*repository_id, digest, cutoff)
                    .await?
                {
                    removed += 1;
                }
            }
            report.links_removed += removed;
            // A short batch is the last; a full one where nothing went would repeat.
            if (batch.len() as i64) < BATCH || removed == 0 {
                return Ok(());
            }
        }
    }

    async fn collect_blobs(&self, cutoff: i64, report: &mut GcReport) -> Result<()> {
        progress::phase("gc: blobs checked", None);
        loop {
            let batch = self.meta.gc_blob_candidates(cutoff, BATCH).await?;
            let full = batch.len() as i64 == BATCH;
            let mut removed = 0;
            progress::advance(batch.len() as u64);
            for (digest, size) in &batch {
                if self.collect_blob(digest, cutoff).await? {
                    removed += 1;
                    report.blobs_removed += 1;
                    report.bytes_freed += u64::try_from(*size).unwrap_or(0);
                }
            }
            if !full || removed == 0 {
                return Ok(());
            }
        }
    }

    /// Mark; delete the row if still marked, recording its bytes as garbage; delete
    /// the bytes, then the garbage record.
    async fn collect_blob(&self, digest: &str, cutoff: i64) -> Result<bool> {
        let parsed: Digest = digest
            .parse()
            .map_err(|_| Error::Internal(format!("stored digest {digest} is invalid")))?;
        let token = uuid::Uuid::new_v4().to_string();
        if !self.meta.gc_mark_blob(digest, &token, cutoff).await? {
            return Ok(false);
        }
        let legacy = self.blobs.digest_location(&parsed);
        let now = crate::clock::now_ms();
        let Some(location) = self
            .meta
            .gc_delete_blob(digest, &token, &legacy, now)
            .await?
        else {
            // Linked or re-published meanwhile: it stays.
            return Ok(false);
        };
        self.blobs.delete(&location).await?;
        self.meta.forget_garbage(&location).await?;
        Ok(true)
    }

    pub async fn repository_usage(&self) -> Result<Vec<RepositoryUsage>> {
        Ok(self.meta.repository_usage().await?)
    }

    pub async fn storage_usage(&self) -> Result<StorageUsage> {
        Ok(self.meta.storage_usage().await?)
    }
}

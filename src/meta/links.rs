//! Linking published blobs to repositories, many links per statement.
//!
//! Every blob upload ends with a link. Linking one blob per hand-over of SQLite's write
//! connection made it the bottleneck of concurrent pushes, so links go through a
//! [`super::batch::Batcher`]: two multi-row statements per batch.

use std::collections::BTreeMap;

use super::batch::{cached_sql, value_rows, BatchWrite};
use super::{Db, Result};

/// A blob (already published) to link to a repository. Linking creates or refreshes the
/// blob's row first: a new link cancels a garbage collection in progress (see
/// meta/gc.rs). A crash between the two statements leaves at most an unlinked blob row,
/// which the collector removes.
pub(super) struct Link {
    pub repository_id: i64,
    pub digest: String,
    pub size: i64,
    pub now_ms: i64,
}

impl BatchWrite for Link {
    type Output = ();
    /// Three bind parameters each: far below SQLite's and PostgreSQL's limits.
    const MAX_BATCH: usize = 1000;

    async fn write(db: &Db, batch: &[Link]) -> Result<Vec<()>> {
        write_batch(db, batch).await?;
        Ok(vec![(); batch.len()])
    }
}

async fn write_batch(db: &Db, batch: &[Link]) -> Result<()> {
    // PostgreSQL refuses an upsert that touches one row twice: one row per key.
    let blobs: BTreeMap<&str, (i64, i64)> = batch
        .iter()
        .map(|p| (p.digest.as_str(), (p.size, p.now_ms)))
        .collect();
    let links: BTreeMap<(i64, &str), i64> = batch
        .iter()
        .map(|p| ((p.repository_id, p.digest.as_str()), p.now_ms))
        .collect();
    let blobs_sql = cached_sql("upsert blobs", blobs.len(), || {
        format!(
            "INSERT INTO blobs (digest, size, created_at) VALUES {}
             ON CONFLICT (digest) DO UPDATE SET gc_mark = NULL, created_at = excluded.created_at",
            value_rows(blobs.len(), 3)
        )
    });
    let links_sql = cached_sql("insert links", links.len(), || {
        format!(
            "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES {}
             ON CONFLICT (repository_id, digest) DO NOTHING",
            value_rows(links.len(), 3)
        )
    });
    on_write!(db db, pool => {
        // One connection for both statements: the writer is handed over once.
        let mut conn = pool.acquire().await?;
        let mut q = sqlx::query(&blobs_sql);
        for (digest, (size, now_ms)) in &blobs {
            q = q.bind(*digest).bind(*size).bind(*now_ms);
        }
        q.execute(&mut *conn).await?;
        let mut q = sqlx::query(&links_sql);
        for ((repository_id, digest), now_ms) in &links {
            q = q.bind(*repository_id).bind(*digest).bind(*now_ms);
        }
        q.execute(&mut *conn).await?;
    });
    Ok(())
}

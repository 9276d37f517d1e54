//! Recording published blobs and linking them to repositories, many per statement.
//!
//! Every blob upload ends here. Linking one blob per hand-over of SQLite's write
//! connection made it the bottleneck of concurrent pushes, so links go through a
//! [`super::batch::Batcher`]: a few multi-row statements per batch, in one transaction.

use std::collections::{BTreeMap, HashMap};

use super::batch::{cached_sql, value_rows, BatchWrite};
use super::uploads::RECORD_GARBAGE;
use super::{Db, Result};

/// A blob just published, to record and link to a repository. Recording creates the
/// blob's row, or refreshes it if another upload recorded the digest first: a new link
/// cancels a garbage collection in progress (see meta/gc.rs). In the same transaction
/// the upload session that published it is forgotten, and a copy that lost to an
/// earlier one becomes garbage, so a crash leaves every stored byte named somewhere.
pub(super) struct Link {
    pub repository_id: i64,
    pub digest: String,
    pub size: i64,
    pub now_ms: i64,
    /// Where the upload put the bytes.
    pub location: String,
    /// The upload session: (repository id, upload id).
    pub upload: Option<(i64, String)>,
}

/// Whether the link's own copy is the one the blob's row names.
pub(super) type Recorded = bool;

impl BatchWrite for Link {
    type Output = Recorded;
    /// At most four bind parameters each: far below SQLite's and PostgreSQL's limits.
    const MAX_BATCH: usize = 1000;

    async fn write(db: &Db, batch: &[Link]) -> Result<Vec<Recorded>> {
        write_batch(db, batch).await
    }
}

fn blob_rows(batch: &[Link]) -> BTreeMap<&str, (i64, i64, &str)> {
    // PostgreSQL refuses an upsert that touches one row twice: one row per digest, the
    // first upload's.
    let mut rows = BTreeMap::new();
    for l in batch {
        rows.entry(l.digest.as_str())
            .or_insert((l.size, l.now_ms, l.location.as_str()));
    }
    rows
}

async fn write_batch(db: &Db, batch: &[Link]) -> Result<Vec<Recorded>> {
    let blobs = blob_rows(batch);
    let links: BTreeMap<(i64, &str), i64> = batch
        .iter()
        .map(|p| ((p.repository_id, p.digest.as_str()), p.now_ms))
        .collect();
    let uploads: Vec<(i64, &str)> = batch
        .iter()
        .filter_map(|l| l.upload.as_ref().map(|(o, id)| (*o, id.as_str())))
        .collect();
    let blobs_sql = cached_sql("upsert blobs", blobs.len(), || {
        format!(
            "INSERT INTO blobs (digest, size, created_at, location) VALUES {}
             ON CONFLICT (digest) DO UPDATE SET gc_mark = NULL, created_at = excluded.created_at
             RETURNING digest, location",
            value_rows(blobs.len(), 4)
        )
    });
    let links_sql = cached_sql("insert links", links.len(), || {
        format!(
            "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES {}
             ON CONFLICT (repository_id, digest) DO NOTHING",
            value_rows(links.len(), 3)
        )
    });
    let uploads_sql = cached_sql("forget uploads", uploads.len(), || {
        let rows: Vec<String> = (0..uploads.len())
            .map(|i| {
                format!(
                    "(repository_id = ${} AND upload_id = ${})",
                    2 * i + 1,
                    2 * i + 2
                )
            })
            .collect();
        format!("DELETE FROM blob_uploads WHERE {}", rows.join(" OR "))
    });
    on_write!(db db, pool => {
        let mut tx = pool.begin().await?;
        let mut q = sqlx::query_as::<_, (String, Option<String>)>(&blobs_sql);
        for (digest, (size, now_ms, location)) in &blobs {
            q = q.bind(*digest).bind(*size).bind(*now_ms).bind(*location);
        }
        let recorded: HashMap<String, Option<String>> =
            q.fetch_all(&mut *tx).await?.into_iter().collect();
        let outcome: Vec<Recorded> = batch
            .iter()
            .map(|l| recorded.get(&l.digest).cloned().flatten().as_deref() == Some(l.location.as_str()))
            .collect();
        for (l, _) in batch.iter().zip(&outcome).filter(|(_, won)| !**won) {
            sqlx::query(RECORD_GARBAGE).bind(&l.location).bind(l.now_ms).execute(&mut *tx).await?;
        }
        if !uploads.is_empty() {
            let mut q = sqlx::query(&uploads_sql);
            for (owner, id) in &uploads {
                q = q.bind(*owner).bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        let mut q = sqlx::query(&links_sql);
        for ((repository_id, digest), now_ms) in &links {
            q = q.bind(*repository_id).bind(*digest).bind(*now_ms);
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(outcome)
    })
}

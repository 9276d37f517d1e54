//! The upload pipeline's writes: opening sessions, and recording published blobs and
//! linking them to repositories, many per statement.
//!
//! Every blob upload starts and ends here. One write per hand-over of SQLite's write
//! connection made it the bottleneck of concurrent pushes, so these go through one
//! [`super::batch::Batcher`]: a few multi-row statements per batch, in one transaction,
//! whatever mix of new sessions and records arrived together.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::batch::{cached_sql, value_rows, BatchWrite};
use super::uploads::{insert_sessions_sql, NewSession, FIRST_VERSION, RECORD_GARBAGE};
use super::{Db, Result};

/// One write of the upload pipeline.
pub(super) enum UploadWrite {
    /// A new session's row.
    Open(NewSession),
    Record(Link),
}

/// What became of an [`UploadWrite`].
pub(super) enum UploadWritten {
    Opened,
    Recorded(Recorded),
}

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
    /// The upload session that published it, as the finishing request read it.
    pub upload: Option<SessionAt>,
    /// Objects of that session nothing names once the blob is recorded: garbage then.
    pub garbage: Vec<String>,
}

/// An upload session at the version a request read: a record names it so that only a
/// request that acted on the session's latest state records (and ends) it.
pub(super) struct SessionAt {
    pub owner: i64,
    pub id: String,
    pub version: i64,
}

/// What became of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Its copy is the one the blob's row names.
    Recorded,
    /// Another copy was recorded first: this one is garbage now.
    Duplicate,
    /// Its upload session was no longer there to record (being discarded, or already
    /// recorded by another request): nothing was written.
    SessionGone,
}

impl BatchWrite for UploadWrite {
    type Output = UploadWritten;
    /// At most five bind parameters per item in any statement: far below SQLite's and
    /// PostgreSQL's limits.
    const MAX_BATCH: usize = 1000;

    async fn write(db: &Db, batch: &[UploadWrite]) -> Result<Vec<UploadWritten>> {
        let (mut opens, mut links): (Vec<&NewSession>, Vec<&Link>) = (Vec::new(), Vec::new());
        for w in batch {
            match w {
                UploadWrite::Open(o) => opens.push(o),
                UploadWrite::Record(l) => links.push(l),
            }
        }
        let mut recorded = write_batch(db, &opens, &links).await?.into_iter();
        Ok(batch
            .iter()
            .map(|w| match w {
                UploadWrite::Open(_) => UploadWritten::Opened,
                UploadWrite::Record(_) => {
                    UploadWritten::Recorded(recorded.next().unwrap_or(Recorded::SessionGone))
                }
            })
            .collect())
    }
}

fn blob_rows<'a>(batch: &[&'a Link]) -> BTreeMap<&'a str, (i64, i64, &'a str)> {
    // PostgreSQL refuses an upsert that touches one row twice: one row per digest, the
    // first upload's.
    let mut rows = BTreeMap::new();
    for l in batch {
        rows.entry(l.digest.as_str())
            .or_insert((l.size, l.now_ms, l.location.as_str()));
    }
    rows
}

/// Insert `opens`, then record `all`, in one transaction; one outcome per link.
async fn write_batch(db: &Db, opens: &[&NewSession], all: &[&Link]) -> Result<Vec<Recorded>> {
    let uploads: Vec<&SessionAt> = all.iter().filter_map(|l| l.upload.as_ref()).collect();
    let insert = (!opens.is_empty()).then(|| insert_sessions_sql(opens.len()));
    macro_rules! insert_sessions {
        ($sql:expr, $executor:expr) => {{
            let mut q = sqlx::query($sql);
            for o in opens {
                q = q
                    .bind(o.key.owner)
                    .bind(o.key.id.to_string())
                    .bind(o.state.as_bytes())
                    .bind(o.now_ms)
                    .bind(FIRST_VERSION);
            }
            q.execute($executor).await?;
        }};
    }
    on_write!(db db, pool => {
        if all.is_empty() {
            // Only new sessions: one statement, no transaction around it.
            if let Some(sql) = &insert {
                insert_sessions!(sql, pool);
            }
            return Ok(Vec::new());
        }
        let mut tx = pool.begin().await?;
        if let Some(sql) = &insert {
            insert_sessions!(sql, &mut *tx);
        }
        // Sessions first: a link whose session is gone, being discarded or changed since
        // its request read it records nothing; nor does a second link of one session.
        let mut live: HashSet<(i64, String)> = if uploads.is_empty() {
            HashSet::new()
        } else {
            let sql = forget_uploads_sql(uploads.len());
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for u in &uploads {
                q = q.bind(u.owner).bind(u.id.as_str()).bind(u.version);
            }
            q.fetch_all(&mut *tx).await?.into_iter().collect()
        };
        let claimed: Vec<bool> = all
            .iter()
            .map(|l| match &l.upload {
                None => true,
                Some(u) => live.remove(&(u.owner, u.id.clone())),
            })
            .collect();
        let kept: Vec<&Link> = all
            .iter()
            .zip(&claimed)
            .filter_map(|(l, c)| c.then_some(*l))
            .collect();
        let mut outcome = vec![Recorded::SessionGone; all.len()];
        if !kept.is_empty() {
            let blobs = blob_rows(&kept);
            let links: BTreeMap<(i64, &str), i64> = kept
                .iter()
                .map(|p| ((p.repository_id, p.digest.as_str()), p.now_ms))
                .collect();
            let blobs_sql = upsert_blobs_sql(blobs.len());
            let mut q = sqlx::query_as::<_, (String, Option<String>)>(&blobs_sql);
            for (digest, (size, now_ms, location)) in &blobs {
                q = q.bind(*digest).bind(*size).bind(*now_ms).bind(*location);
            }
            let recorded: HashMap<String, Option<String>> =
                q.fetch_all(&mut *tx).await?.into_iter().collect();
            for (i, l) in all.iter().enumerate() {
                if !claimed[i] {
                    continue;
                }
                for location in &l.garbage {
                    sqlx::query(RECORD_GARBAGE).bind(location).bind(l.now_ms)
                        .execute(&mut *tx).await?;
                }
                let won = recorded.get(&l.digest).cloned().flatten().as_deref()
                    == Some(l.location.as_str());
                if !won {
                    sqlx::query(RECORD_GARBAGE).bind(&l.location).bind(l.now_ms)
                        .execute(&mut *tx).await?;
                }
                outcome[i] = if won { Recorded::Recorded } else { Recorded::Duplicate };
            }
            let links_sql = insert_links_sql(links.len());
            let mut q = sqlx::query(&links_sql);
            for ((repository_id, digest), now_ms) in &links {
                q = q.bind(*repository_id).bind(*digest).bind(*now_ms);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    })
}

fn upsert_blobs_sql(rows: usize) -> std::sync::Arc<str> {
    cached_sql("upsert blobs", rows, || {
        format!(
            "INSERT INTO blobs (digest, size, created_at, location) VALUES {}
             ON CONFLICT (digest) DO UPDATE SET gc_mark = NULL, created_at = excluded.created_at
             RETURNING digest, location",
            value_rows(rows, 4)
        )
    })
}

fn insert_links_sql(rows: usize) -> std::sync::Arc<str> {
    cached_sql("insert links", rows, || {
        format!(
            "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES {}
             ON CONFLICT (repository_id, digest) DO NOTHING",
            value_rows(rows, 3)
        )
    })
}

fn forget_uploads_sql(rows: usize) -> std::sync::Arc<str> {
    cached_sql("forget uploads", rows, || {
        let keys: Vec<String> = (0..rows)
            .map(|i| {
                format!(
                    "(repository_id = ${} AND upload_id = ${} AND version = ${})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            })
            .collect();
        format!(
            "DELETE FROM blob_uploads WHERE aborting = 0 AND ({})
             RETURNING repository_id, upload_id",
            keys.join(" OR ")
        )
    })
}

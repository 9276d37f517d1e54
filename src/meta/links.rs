//! Linking published blobs to repositories, many links per statement.
//!
//! Every blob upload ends with a link, and on SQLite every write goes through one
//! connection. Linking one blob per hand-over of that connection made it the bottleneck
//! of concurrent pushes: the hand-overs cost far more than the two small inserts. So
//! links are queued to one task, which writes whatever has accumulated while the
//! previous batch was being written with two multi-row statements. One push alone
//! waits for one batch of one, as before.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};

use super::{Db, Error, Result};

/// Links written by one pair of statements. Three bind parameters each: far below
/// SQLite's and PostgreSQL's limits.
const MAX_BATCH: usize = 1000;

struct Pending {
    repository_id: i64,
    digest: String,
    size: i64,
    now_ms: i64,
    done: oneshot::Sender<Result<()>>,
}

/// The queue's sending side; the writing task ends when it is dropped.
pub(super) struct LinkQueue(mpsc::UnboundedSender<Pending>);

impl LinkQueue {
    /// Start the task that writes links through `db`'s write connection.
    pub(super) fn start(db: Db) -> LinkQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(db, rx));
        LinkQueue(tx)
    }

    /// Link `digest` (already published, `size` bytes) to a repository, creating or
    /// refreshing its blob row first: a new link cancels a garbage collection in
    /// progress (see meta/gc.rs). A crash between the two statements leaves at most an
    /// unlinked blob row, which the collector removes.
    pub(super) async fn link(
        &self,
        repository_id: i64,
        digest: String,
        size: i64,
        now_ms: i64,
    ) -> Result<()> {
        let (done, result) = oneshot::channel();
        let pending = Pending {
            repository_id,
            digest,
            size,
            now_ms,
            done,
        };
        self.0
            .send(pending)
            .map_err(|_| Error::Backend("the link writer has stopped".into()))?;
        result
            .await
            .unwrap_or_else(|_| Err(Error::Backend("the link writer has stopped".into())))
    }
}

async fn write_batches(db: Db, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = write_batch(&db, &batch).await;
        if result.is_err() && batch.len() > 1 {
            // One bad link (say, to a repository deleted meanwhile) must not fail the
            // others' pushes: each is written alone and gets its own answer.
            for p in batch.drain(..) {
                let result = write_batch(&db, std::slice::from_ref(&p)).await;
                let _ = p.done.send(result);
            }
            continue;
        }
        for p in batch.drain(..) {
            // A requester that went away does not need its answer.
            let _ = p.done.send(result.clone());
        }
    }
}

async fn write_batch(db: &Db, batch: &[Pending]) -> Result<()> {
    // PostgreSQL refuses an upsert that touches one row twice: one row per key.
    let blobs: BTreeMap<&str, (i64, i64)> = batch
        .iter()
        .map(|p| (p.digest.as_str(), (p.size, p.now_ms)))
        .collect();
    let links: BTreeMap<(i64, &str), i64> = batch
        .iter()
        .map(|p| ((p.repository_id, p.digest.as_str()), p.now_ms))
        .collect();
    let blobs_sql = format!(
        "INSERT INTO blobs (digest, size, created_at) VALUES {}
         ON CONFLICT (digest) DO UPDATE SET gc_mark = NULL, created_at = excluded.created_at",
        value_rows(blobs.len())
    );
    let links_sql = format!(
        "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES {}
         ON CONFLICT (repository_id, digest) DO NOTHING",
        value_rows(links.len())
    );
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

/// `($1, $2, $3), ($4, $5, $6), ...` for `rows` rows of three values.
fn value_rows(rows: usize) -> String {
    (0..rows)
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::value_rows;

    #[test]
    fn numbered_rows() {
        assert_eq!(value_rows(1), "($1, $2, $3)");
        assert_eq!(value_rows(2), "($1, $2, $3), ($4, $5, $6)");
    }
}

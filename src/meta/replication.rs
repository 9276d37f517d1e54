//! Queries behind replication: a registry's configuration (its body is ECR's JSON), each
//! image's last outcome per destination, and backfill runs with their planned
//! replications.

use super::{Db, MetaStore, RegistryKey, Result};

/// Upsert outcomes inside the open transaction `$tx`.
macro_rules! upsert_statuses {
    ($tx:ident, $rows:expr, $now:expr) => {
        for r in $rows {
            sqlx::query(
                "INSERT INTO replication_statuses (repository_id, digest, dest_account,
                     dest_region, status, failure_code, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (repository_id, digest, dest_account, dest_region)
                 DO UPDATE SET status = excluded.status, failure_code = excluded.failure_code,
                     updated_at = excluded.updated_at",
            )
            .bind(r.repository_id)
            .bind(&r.digest)
            .bind(&r.destination.account_id)
            .bind(&r.destination.region)
            .bind(r.status)
            .bind(&r.failure_code)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// Largest number of rows one multi-row statement writes (under both backends'
/// bind-parameter limits).
const ROWS_PER_STATEMENT: usize = 500;

/// Where an image is replicated to: a registry of this deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub account_id: String,
    pub region: String,
}

/// The outcome of one image's replication to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationRecord {
    pub repository_id: i64,
    pub digest: String,
    pub destination: Destination,
    /// `COMPLETE` or `FAILED` (ECR's `ReplicationStatus`).
    pub status: &'static str,
    pub failure_code: Option<String>,
}

/// An image's replication to a destination, as last recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationState {
    pub destination: Destination,
    pub status: String,
    pub failure_code: Option<String>,
}

/// A backfill run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRow {
    pub id: String,
    pub registry: RegistryKey,
    pub destination: Destination,
    pub status: String,
    pub failure_code: Option<String>,
    /// `None` while the run prepares.
    pub total: Option<i64>,
    pub completed: i64,
    pub failed: i64,
    /// Distinct failure codes of failed replications, in the order first seen.
    pub failure_codes: Vec<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

type BackfillTuple = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
);

const BACKFILL_COLUMNS: &str = "id, account_id, region, dest_account, dest_region, status,
    failure_code, total, completed, failed, failure_codes, started_at, ended_at";

fn backfill_from_row(r: BackfillTuple) -> BackfillRow {
    BackfillRow {
        id: r.0,
        registry: RegistryKey::from_store(r.1, r.2),
        destination: Destination {
            account_id: r.3,
            region: r.4,
        },
        status: r.5,
        failure_code: r.6,
        total: r.7,
        completed: r.8,
        failed: r.9,
        failure_codes: split_codes(&r.10),
        started_at: r.11,
        ended_at: r.12,
    }
}

fn split_codes(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why a backfill could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillStart {
    Started,
    /// The destination region has an unfinished run.
    InProgress,
    /// The registry has as many unfinished runs as it may.
    LimitReached,
}

/// One replication a backfill plans (an image with one of its tags, or untagged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillItem {
    pub seq: i64,
    pub repository_id: i64,
    pub repository_name: String,
    pub digest: String,
    pub tag: Option<String>,
    /// `None` until done; then `COMPLETE` or `FAILED`.
    pub status: Option<String>,
    pub failure_code: Option<String>,
    pub sub_failure_codes: Vec<String>,
}

type ItemTuple = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn item_from_row(r: ItemTuple) -> BackfillItem {
    BackfillItem {
        seq: r.0,
        repository_id: r.1,
        repository_name: r.2,
        digest: r.3,
        tag: r.4,
        status: r.5,
        failure_code: r.6,
        sub_failure_codes: r.7.as_deref().map(split_codes).unwrap_or_default(),
    }
}

/// What one replication of a backfill came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub seq: i64,
    pub failure_code: Option<String>,
    pub sub_failure_codes: Vec<String>,
}

impl MetaStore {
    // ---- per-image outcomes ----

    /// Record outcomes (the latest wins), in one transaction.
    /// With each, an event for notifications (`source` is the image's repository).
    pub async fn record_replications(
        &self,
        source: &super::EventSource<'_>,
        tag: Option<&str>,
        rows: &[ReplicationRecord],
        now_ms: i64,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            upsert_statuses!(tx, rows, now_ms);
            for r in rows {
                let detail = serde_json::json!({
                    "account": r.destination.account_id,
                    "region": r.destination.region,
                    "status": r.status,
                    "failureCode": r.failure_code,
                })
                .to_string();
                record_event!(tx, super::EventKind::ReplicationFinished, source, &r.digest, tag, now_ms, Some(detail));
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every recorded outcome of an image, by destination.
    pub async fn replication_states(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Vec<ReplicationState>> {
        let rows: Vec<(String, String, String, Option<String>)> = on_read!(self, pool => sqlx::query_as(
            "SELECT dest_account, dest_region, status, failure_code FROM replication_statuses
             WHERE repository_id = $1 AND digest = $2 ORDER BY dest_region, dest_account",
        )
        .bind(repository_id).bind(digest).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(
                |(account_id, region, status, failure_code)| ReplicationState {
                    destination: Destination { account_id, region },
                    status,
                    failure_code,
                },
            )
            .collect())
    }

    /// Whether a push or tag move of the image waits in the outbox for consumer `job`.
    pub async fn change_pending(
        &self,
        job: &str,
        repository_id: i64,
        digest: &str,
    ) -> Result<bool> {
        let (n,): (i64,) = on_read!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM outbox
             WHERE seq > COALESCE((SELECT cursor_seq FROM jobs WHERE name = $1), 0)
               AND repository_id = $2 AND digest = $3 AND kind IN ('image_pushed', 'tag_moved')",
        )
        .bind(job).bind(repository_id).bind(digest).fetch_one(pool).await?);
        Ok(n > 0)
    }

    /// Link blobs the destination repository will reference, that a repository of this
    /// deployment already links: how many are linked now (fewer: some were collected).
    /// Like a cross-repository mount, a new link cancels a collection of the blob.
    pub async fn link_blobs(
        &self,
        repository_id: i64,
        digests: &[String],
        now_ms: i64,
    ) -> Result<usize> {
        let mut linked = 0;
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for batch in digests.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "UPDATE blobs SET gc_mark = NULL, created_at = $1 WHERE digest IN ({})",
                    placeholders(2, batch.len())
                );
                let mut q = sqlx::query(&sql).bind(now_ms);
                for d in batch {
                    q = q.bind(d);
                }
                q.execute(&mut *tx).await?;
                let sql = format!(
                    "INSERT INTO repository_blobs (repository_id, digest, linked_at)
                     SELECT $2, digest, $1 FROM blobs WHERE digest IN ({})
                     ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
                    placeholders(3, batch.len())
                );
                let mut q = sqlx::query(&sql).bind(now_ms).bind(repository_id);
                for d in batch {
                    q = q.bind(d);
                }
                linked += q.execute(&mut *tx).await?.rows_affected() as usize;
            }
            tx.commit().await?;
        });
        Ok(linked)
    }

    // ---- backfills ----

    /// Record a new run (PREPARING), unless the destination region has an unfinished
    /// one or the registry has `limit` unfinished runs.
    pub async fn insert_backfill(&self, b: &BackfillRow, limit: i64) -> Result<BackfillStart> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let (running,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM replication_backfills
                 WHERE account_id = $1 AND region = $2 AND ended_at IS NULL",
            )
            .bind(&b.registry.account_id).bind(&b.registry.region)
            .fetch_one(&mut *tx).await?;
            let same_region: (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM replication_backfills
                 WHERE account_id = $1 AND region = $2 AND dest_region = $3 AND ended_at IS NULL",
            )
            .bind(&b.registry.account_id).bind(&b.registry.region).bind(&b.destination.region)
            .fetch_one(&mut *tx).await?;
            if same_region.0 > 0 {
                return Ok(BackfillStart::InProgress);
            }
            if running >= limit {
                return Ok(BackfillStart::LimitReached);
            }
            // The unique index settles a race with another node's start.
            let n = sqlx::query(
                "INSERT INTO replication_backfills (id, account_id, region, dest_account,
                     dest_region, status, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&b.id).bind(&b.registry.account_id).bind(&b.registry.region)
            .bind(&b.destination.account_id).bind(&b.destination.region)
            .bind(&b.status).bind(b.started_at)
            .execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(if n == 0 { BackfillStart::InProgress } else { BackfillStart::Started })
        })
    }

    pub async fn backfill(&self, reg: &RegistryKey, id: &str) -> Result<Option<BackfillRow>> {
        let sql = format!(
            "SELECT {BACKFILL_COLUMNS} FROM replication_backfills
             WHERE account_id = $1 AND region = $2 AND id = $3"
        );
        let row: Option<BackfillTuple> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(&reg.account_id).bind(&reg.region).bind(id)
            .fetch_optional(pool).await?);
        Ok(row.map(backfill_from_row))
    }

    /// A registry's runs, newest first, that are unfinished or ended at or after
    /// `ended_since`.
    pub async fn backfills(&self, reg: &RegistryKey, ended_since: i64) -> Result<Vec<BackfillRow>> {
        let sql = format!(
            "SELECT {BACKFILL_COLUMNS} FROM replication_backfills
             WHERE account_id = $1 AND region = $2 AND (ended_at IS NULL OR ended_at >= $3)
             ORDER BY started_at DESC, id"
        );
        let rows: Vec<BackfillTuple> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(&reg.account_id).bind(&reg.region).bind(ended_since)
            .fetch_all(pool).await?);
        Ok(rows.into_iter().map(backfill_from_row).collect())
    }

    /// Every unfinished run of the deployment, oldest first.
    pub async fn unfinished_backfills(&self) -> Result<Vec<BackfillRow>> {
        let sql = format!(
            "SELECT {BACKFILL_COLUMNS} FROM replication_backfills
             WHERE ended_at IS NULL ORDER BY started_at, id"
        );
        let rows: Vec<BackfillTuple> = on_read!(self, pool => sqlx::query_as(&sql)
            .fetch_all(pool).await?);
        Ok(rows.into_iter().map(backfill_from_row).collect())
    }

    /// Ask a run to stop: true if it was preparing or in progress (it is STOPPING now).
    pub async fn stop_backfill(&self, reg: &RegistryKey, id: &str) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE replication_backfills SET status = 'STOPPING'
             WHERE account_id = $1 AND region = $2 AND id = $3
               AND status IN ('PREPARING', 'IN_PROGRESS')",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(id)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Record a run's plan and move it to IN_PROGRESS, unless it was asked to stop
    /// meanwhile (false then). A plan recorded before (by a holder that died) is
    /// replaced.
    pub async fn plan_backfill(&self, id: &str, items: &[BackfillItem]) -> Result<bool> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM replication_backfill_items WHERE backfill_id = $1")
                .bind(id).execute(&mut *tx).await?;
            for batch in items.chunks(ROWS_PER_STATEMENT / 6) {
                let rows: Vec<String> = (0..batch.len())
                    .map(|i| {
                        let b = 2 + i * 5;
                        format!("($1, ${}, ${}, ${}, ${}, ${})", b, b + 1, b + 2, b + 3, b + 4)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO replication_backfill_items
                         (backfill_id, seq, repository_id, repository_name, digest, tag)
                     VALUES {}",
                    rows.join(", ")
                );
                let mut q = sqlx::query(&sql).bind(id);
                for it in batch {
                    q = q.bind(it.seq).bind(it.repository_id).bind(&it.repository_name)
                        .bind(&it.digest).bind(&it.tag);
                }
                q.execute(&mut *tx).await?;
            }
            let n = sqlx::query(
                "UPDATE replication_backfills SET status = 'IN_PROGRESS', total = $2
                 WHERE id = $1 AND status = 'PREPARING'",
            )
            .bind(id).bind(i64::try_from(items.len()).unwrap_or(i64::MAX))
            .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The next replications of a run still to do, in plan order.
    pub async fn pending_backfill_items(&self, id: &str, limit: i64) -> Result<Vec<BackfillItem>> {
        let rows: Vec<ItemTuple> = on_read!(self, pool => sqlx::query_as(
            "SELECT seq, repository_id, repository_name, digest, tag, status, failure_code,
                    sub_failure_codes
             FROM replication_backfill_items WHERE backfill_id = $1 AND status IS NULL
             ORDER BY seq LIMIT $2",
        )
        .bind(id).bind(limit).fetch_all(pool).await?);
        Ok(rows.into_iter().map(item_from_row).collect())
    }

    /// Record a batch of a run's results, its counters and the images' outcomes, in
    /// one transaction; the run as it stands after.
    pub async fn record_backfill_results(
        &self,
        run: &BackfillRow,
        results: &[ItemResult],
        outcomes: &[ReplicationRecord],
        now_ms: i64,
    ) -> Result<BackfillRow> {
        let mut codes = run.failure_codes.clone();
        let (mut completed, mut failed) = (0i64, 0i64);
        for r in results {
            match &r.failure_code {
                None => completed += 1,
                Some(c) => {
                    failed += 1;
                    if !codes.contains(c) {
                        codes.push(c.clone());
                    }
                }
            }
        }
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in results {
                let status = if r.failure_code.is_some() { "FAILED" } else { "COMPLETE" };
                let subs = (!r.sub_failure_codes.is_empty()).then(|| r.sub_failure_codes.join(","));
                sqlx::query(
                    "UPDATE replication_backfill_items
                     SET status = $3, failure_code = $4, sub_failure_codes = $5
                     WHERE backfill_id = $1 AND seq = $2",
                )
                .bind(&run.id).bind(r.seq).bind(status).bind(&r.failure_code).bind(subs)
                .execute(&mut *tx).await?;
            }
            sqlx::query(
                "UPDATE replication_backfills
                 SET completed = completed + $2, failed = failed + $3, failure_codes = $4
                 WHERE id = $1",
            )
            .bind(&run.id).bind(completed).bind(failed).bind(codes.join(","))
            .execute(&mut *tx).await?;
            upsert_statuses!(tx, outcomes, now_ms);
            tx.commit().await?;
        });
        self.backfill(&run.registry, &run.id)
            .await?
            .ok_or_else(|| super::Error::Backend("a backfill vanished while it ran".into()))
    }

    /// End a run in a terminal status (unless it ended already).
    pub async fn end_backfill(
        &self,
        id: &str,
        status: &str,
        failure_code: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "UPDATE replication_backfills SET status = $2, failure_code = $3, ended_at = $4
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id).bind(status).bind(failure_code).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// A page of a run's results after `after_seq`, in plan order.
    pub async fn backfill_results(
        &self,
        id: &str,
        status: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<BackfillItem>> {
        let rows: Vec<ItemTuple> = on_read!(self, pool => sqlx::query_as(
            "SELECT seq, repository_id, repository_name, digest, tag, status, failure_code,
                    sub_failure_codes
             FROM replication_backfill_items
             WHERE backfill_id = $1 AND seq > $2 AND status IS NOT NULL
               AND ($3 = '' OR status = $3)
             ORDER BY seq LIMIT $4",
        )
        .bind(id).bind(after_seq).bind(status.unwrap_or("")).bind(limit)
        .fetch_all(pool).await?);
        Ok(rows.into_iter().map(item_from_row).collect())
    }

    /// Forget runs that ended before `before`, with their results.
    pub async fn prune_backfills(&self, before: i64) -> Result<u64> {
        Ok(on_write!(self, pool => sqlx::query(
            "DELETE FROM replication_backfills WHERE ended_at IS NOT NULL AND ended_at < $1",
        )
        .bind(before).execute(pool).await?.rows_affected()))
    }

    /// The images of a repository a backfill replicates, with their tags, oldest push
    /// first: every stored image except the untagged children of an index (they go
    /// with their index).
    pub async fn images_to_replicate(
        &self,
        repository_id: i64,
    ) -> Result<Vec<(String, Option<String>)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT m.digest, t.name FROM manifests m
             LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
             WHERE m.repository_id = $1 AND m.storage_class = 'STANDARD'
               AND (t.name IS NOT NULL OR NOT EXISTS (
                   SELECT 1 FROM manifest_references r
                   WHERE r.repository_id = m.repository_id AND r.child_digest = m.digest
                     AND r.kind = 'manifest'))
             ORDER BY m.pushed_at, m.digest, t.name",
        )
        .bind(repository_id).fetch_all(pool).await?))
    }
}

/// A queued push to a remote registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteItem {
    pub remote: String,
    pub registry: RegistryKey,
    pub repository_id: i64,
    pub repository_name: String,
    pub digest: String,
    /// Empty: pushed by digest.
    pub tag: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

type RemoteTuple = (
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
);

impl MetaStore {
    /// Queue pushes to remotes (one already queued stays as it is).
    pub async fn enqueue_remote(&self, items: &[RemoteItem], now_ms: i64) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for it in items {
                sqlx::query(
                    "INSERT INTO remote_replications (remote, account_id, region, repository_id,
                         repository_name, digest, tag, next_attempt_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&it.remote).bind(&it.registry.account_id).bind(&it.registry.region)
                .bind(it.repository_id).bind(&it.repository_name).bind(&it.digest).bind(&it.tag)
                .bind(now_ms)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Queued pushes due at `now`, oldest first; all queued ones with `now` = i64::MAX.
    pub async fn due_remote(&self, now_ms: i64, limit: i64) -> Result<Vec<RemoteItem>> {
        let rows: Vec<RemoteTuple> = on_read!(self, pool => sqlx::query_as(
            "SELECT remote, account_id, region, repository_id, repository_name, digest, tag,
                    attempts, last_error
             FROM remote_replications
             WHERE next_attempt_at <= $1 ORDER BY created_at, repository_id, digest, tag LIMIT $2",
        )
        .bind(now_ms).bind(limit).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|r| RemoteItem {
                remote: r.0,
                registry: RegistryKey::from_store(r.1, r.2),
                repository_id: r.3,
                repository_name: r.4,
                digest: r.5,
                tag: r.6,
                attempts: r.7,
                last_error: r.8,
            })
            .collect())
    }

    /// The remote has the image: forget the queued push.
    pub async fn remote_done(&self, it: &RemoteItem) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "DELETE FROM remote_replications
             WHERE remote = $1 AND repository_id = $2 AND digest = $3 AND tag = $4",
        )
        .bind(&it.remote).bind(it.repository_id).bind(&it.digest).bind(&it.tag)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// A push failed: try again at `next_ms`.
    pub async fn remote_retry(&self, it: &RemoteItem, next_ms: i64, error: &str) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "UPDATE remote_replications
             SET attempts = attempts + 1, next_attempt_at = $5, last_error = $6
             WHERE remote = $1 AND repository_id = $2 AND digest = $3 AND tag = $4",
        )
        .bind(&it.remote).bind(it.repository_id).bind(&it.digest).bind(&it.tag)
        .bind(next_ms).bind(error)
        .execute(pool).await?.rows_affected());
        Ok(())
    }
}

/// `$first, $first+1, ...` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

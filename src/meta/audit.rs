//! The audit trail's records and webhook dead letters.

use sqlx::QueryBuilder;

use super::{Db, MetaStore, Result};

/// One audit record: CloudTrail's JSON, and the columns it is looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub event_id: String,
    pub event_time: i64,
    pub account_id: String,
    pub region: String,
    pub event_source: String,
    pub event_name: String,
    pub user_arn: Option<String>,
    pub user_name: Option<String>,
    pub repository: Option<String>,
    pub read_only: bool,
    pub error_code: Option<String>,
    pub record: String,
}

/// Which records to list (all conditions must hold), newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// A user name or principal ARN.
    pub user: Option<String>,
    pub repository: Option<String>,
    pub event_name: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub limit: i64,
}

/// A notification a webhook did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub webhook: String,
    pub event_id: String,
    pub body: String,
    pub attempts: i64,
    pub last_error: String,
    pub failed_at: i64,
}

/// What the store holds, for the metrics' gauges.
#[derive(Debug, Clone, Default)]
pub struct StoreGauges {
    /// Bytes of distinct blobs linked in each account's repositories, with manifests.
    pub storage_bytes: Vec<(String, i64)>,
    pub upload_sessions: i64,
    pub repositories: i64,
    pub images: i64,
}

const ROWS_PER_INSERT: usize = 100;

impl MetaStore {
    pub async fn insert_audit_records(&self, records: &[AuditRecord]) -> Result<()> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in records.chunks(ROWS_PER_INSERT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO audit_events (event_id, event_time, account_id, region, event_source,
                         event_name, user_arn, user_name, repository_name, read_only, error_code, record) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(&r.event_id)
                        .push_bind(r.event_time)
                        .push_bind(&r.account_id)
                        .push_bind(&r.region)
                        .push_bind(&r.event_source)
                        .push_bind(&r.event_name)
                        .push_bind(&r.user_arn)
                        .push_bind(&r.user_name)
                        .push_bind(&r.repository)
                        .push_bind(i64::from(r.read_only))
                        .push_bind(&r.error_code)
                        .push_bind(&r.record);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records matching `q` (their JSON text), newest first.
    pub async fn audit_records(&self, q: &AuditQuery) -> Result<Vec<String>> {
        on_read!(self, pool => {
            let mut b = QueryBuilder::new("SELECT record FROM audit_events WHERE 1 = 1");
            if let Some(t) = q.since {
                b.push(" AND event_time >= ").push_bind(t);
            }
            if let Some(t) = q.until {
                b.push(" AND event_time <= ").push_bind(t);
            }
            if let Some(u) = &q.user {
                b.push(" AND (user_name = ").push_bind(u.clone());
                b.push(" OR user_arn = ").push_bind(u.clone()).push(")");
            }
            if let Some(r) = &q.repository {
                b.push(" AND repository_name = ").push_bind(r.clone());
            }
            if let Some(n) = &q.event_name {
                b.push(" AND event_name = ").push_bind(n.clone());
            }
            if let Some(a) = &q.account_id {
                b.push(" AND account_id = ").push_bind(a.clone());
            }
            if let Some(r) = &q.region {
                b.push(" AND region = ").push_bind(r.clone());
            }
            b.push(" ORDER BY event_time DESC, seq DESC LIMIT ").push_bind(q.limit);
            let rows: Vec<(String,)> = b.build_query_as().fetch_all(pool).await?;
            Ok(rows.into_iter().map(|(r,)| r).collect())
        })
    }

    /// Delete records older than `before`; how many.
    pub async fn prune_audit_records(&self, before: i64) -> Result<u64> {
        let n = on_write!(self, pool => sqlx::query("DELETE FROM audit_events WHERE event_time < $1")
            .bind(before).execute(pool).await?.rows_affected());
        Ok(n)
    }

    pub async fn insert_dead_letter(&self, d: &DeadLetter) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO webhook_dead_letters (webhook, event_id, body, attempts, last_error, failed_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&d.webhook).bind(&d.event_id).bind(&d.body).bind(d.attempts).bind(&d.last_error)
        .bind(d.failed_at)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Dead letters, oldest first, of one webhook or all.
    pub async fn dead_letters(&self, webhook: Option<&str>, limit: i64) -> Result<Vec<DeadLetter>> {
        type Row = (i64, String, String, String, i64, String, i64);
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT id, webhook, event_id, body, attempts, last_error, failed_at
             FROM webhook_dead_letters WHERE ($1 IS NULL OR webhook = $1) ORDER BY id LIMIT $2",
        )
        .bind(webhook).bind(limit).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, webhook, event_id, body, attempts, last_error, failed_at)| DeadLetter {
                    id,
                    webhook,
                    event_id,
                    body,
                    attempts,
                    last_error,
                    failed_at,
                },
            )
            .collect())
    }

    pub async fn delete_dead_letter(&self, id: i64) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query("DELETE FROM webhook_dead_letters WHERE id = $1")
            .bind(id).execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// What the store holds, for the metrics' gauges: bytes per account (distinct
    /// blobs linked in its repositories, and manifests), open upload sessions,
    /// repositories, images.
    pub async fn store_gauges(&self) -> Result<StoreGauges> {
        on_read!(self, pool => {
            let storage: Vec<(String, i64)> = sqlx::query_as(
                "SELECT account_id, CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM (
                     SELECT l.account_id AS account_id, b.size AS bytes
                     FROM (SELECT DISTINCT r.account_id AS account_id, rb.digest AS digest
                           FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id) l
                     JOIN blobs b ON b.digest = l.digest
                     UNION ALL
                     SELECT r.account_id, m.size FROM manifests m
                     JOIN repositories r ON r.id = m.repository_id
                 ) t GROUP BY account_id ORDER BY account_id",
            )
            .fetch_all(pool).await?;
            let (uploads,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM blob_uploads",
            )
            .fetch_one(pool).await?;
            let (repositories, images): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM repositories), (SELECT COUNT(*) FROM manifests)",
            )
            .fetch_one(pool).await?;
            Ok(StoreGauges {
                storage_bytes: storage,
                upload_sessions: uploads,
                repositories,
                images,
            })
        })
    }
}

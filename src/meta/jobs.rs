//! Job leases: which process runs each background job, and the job's cursor.
//!
//! A lease is a row: its holder, until when, and a fence that grows whenever the job
//! changes hands. Taking and renewing are single conditional updates, so two processes
//! racing for a free job cannot both win, on SQLite or on PostgreSQL. Times are passed
//! in (the caller's clock), so tests can move time.

use super::{Db, MetaStore, Result};

/// A lease held: present it to renew, release, or move the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: String,
    pub holder: String,
    pub fence: i64,
}

/// A job as `berth admin jobs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub name: String,
    pub holder: String,
    pub fence: i64,
    pub lease_until: i64,
    pub cursor: i64,
    pub last_run_at: i64,
    pub last_error: Option<String>,
}

impl MetaStore {
    /// Take `job` for `holder` until `until`, if it is free, expired at `now`, or
    /// already `holder`'s (then this renews it). A new holder gets a higher fence.
    pub async fn take_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<Lease>> {
        self.take_due_lease(job, holder, now, until, None).await
    }

    /// [`MetaStore::take_lease`], and only if the job has not run since `ran_since`
    /// (when given): a periodic job then runs once per period across all nodes.
    pub async fn take_due_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        until: i64,
        ran_since: Option<i64>,
    ) -> Result<Option<Lease>> {
        let row: Option<(i64,)> = on_write!(self, pool => {
            sqlx::query("INSERT INTO jobs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                .bind(job)
                .execute(pool)
                .await?;
            sqlx::query_as(
                "UPDATE jobs SET
                     fence = CASE WHEN holder = $2 AND lease_until >= $3 THEN fence ELSE fence + 1 END,
                     holder = $2, lease_until = $4
                 WHERE name = $1 AND (holder = $2 OR holder = '' OR lease_until < $3)
                   AND last_run_at <= $5
                 RETURNING fence",
            )
            .bind(job)
            .bind(holder)
            .bind(now)
            .bind(until)
            .bind(ran_since.unwrap_or(i64::MAX))
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(fence,)| Lease {
            job: job.to_owned(),
            holder: holder.to_owned(),
            fence,
        }))
    }

    /// Extend a lease still held (same holder and fence); false if it was lost.
    pub async fn renew_lease(&self, lease: &Lease, now: i64, until: i64) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE jobs SET lease_until = $4
             WHERE name = $1 AND holder = $2 AND fence = $3 AND lease_until >= $5",
        )
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.fence)
        .bind(until)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// Give a lease back, recording how the run ended.
    pub async fn release_lease(&self, lease: &Lease, now: i64, error: Option<&str>) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "UPDATE jobs SET holder = '', lease_until = 0, last_run_at = $4, last_error = $5
             WHERE name = $1 AND holder = $2 AND fence = $3",
        )
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.fence)
        .bind(now)
        .bind(error)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Give back every lease `holder` holds (a node shutting down), so that another
    /// node takes its jobs over at once rather than when the leases run out; how many.
    pub async fn release_leases_of(&self, holder: &str) -> Result<u64> {
        Ok(on_write!(self, pool => sqlx::query(
            "UPDATE jobs SET holder = '', lease_until = 0 WHERE holder = $1",
        )
        .bind(holder)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// A job's cursor (0 for a job never run).
    pub async fn job_cursor(&self, job: &str) -> Result<i64> {
        let row: Option<(i64,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT cursor_seq FROM jobs WHERE name = $1",
        )
        .bind(job)
        .fetch_optional(pool)
        .await?);
        Ok(row.map_or(0, |(c,)| c))
    }

    /// Move the cursor forward, only under the lease still held; false if it was lost.
    pub async fn advance_cursor(&self, lease: &Lease, cursor: i64, now: i64) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE jobs SET cursor_seq = $4, last_run_at = $5, last_error = NULL
             WHERE name = $1 AND holder = $2 AND fence = $3 AND cursor_seq <= $4",
        )
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.fence)
        .bind(cursor)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// Every job that has ever run, by name.
    pub async fn jobs(&self) -> Result<Vec<JobRow>> {
        type Row = (String, String, i64, i64, i64, i64, Option<String>);
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT name, holder, fence, lease_until, cursor_seq, last_run_at, last_error
             FROM jobs ORDER BY name",
        )
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(
                |(name, holder, fence, lease_until, cursor, last_run_at, last_error)| JobRow {
                    name,
                    holder,
                    fence,
                    lease_until,
                    cursor,
                    last_run_at,
                    last_error,
                },
            )
            .collect())
    }
}

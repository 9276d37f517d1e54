//! Daily usage per repository: stored bytes (sampled) and bytes sent by pulls.

use super::{Db, MetaStore, Result};

/// One repository's usage on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDay {
    /// UTC days since the epoch.
    pub day: i64,
    pub account_id: String,
    pub region: String,
    pub repository_name: String,
    pub stored_bytes: i64,
    pub transfer_out_bytes: i64,
}

impl MetaStore {
    /// Record a day's stored size (the day keeps its largest sample).
    pub async fn record_stored_bytes(&self, rows: &[UsageDay]) -> Result<()> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO usage_daily (day, account_id, region, repository_name, stored_bytes)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (day, account_id, region, repository_name)
                     DO UPDATE SET stored_bytes = CASE WHEN excluded.stored_bytes > usage_daily.stored_bytes
                         THEN excluded.stored_bytes ELSE usage_daily.stored_bytes END",
                )
                .bind(r.day).bind(&r.account_id).bind(&r.region).bind(&r.repository_name)
                .bind(r.stored_bytes)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Add bytes sent to a day's transfer out.
    pub async fn add_transfer_out(&self, rows: &[UsageDay]) -> Result<()> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO usage_daily (day, account_id, region, repository_name, transfer_out_bytes)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (day, account_id, region, repository_name)
                     DO UPDATE SET transfer_out_bytes = usage_daily.transfer_out_bytes + excluded.transfer_out_bytes",
                )
                .bind(r.day).bind(&r.account_id).bind(&r.region).bind(&r.repository_name)
                .bind(r.transfer_out_bytes)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Usage rows of days `from..until` (all accounts, or one), ordered by day.
    pub async fn usage_days(
        &self,
        from: i64,
        until: i64,
        account_id: Option<&str>,
    ) -> Result<Vec<UsageDay>> {
        type Row = (i64, String, String, String, i64, i64);
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT day, account_id, region, repository_name, stored_bytes, transfer_out_bytes
             FROM usage_daily WHERE day >= $1 AND day < $2 AND ($3 IS NULL OR account_id = $3)
             ORDER BY day, account_id, region, repository_name",
        )
        .bind(from).bind(until).bind(account_id).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(
                |(day, account_id, region, repository_name, stored_bytes, transfer_out_bytes)| {
                    UsageDay {
                        day,
                        account_id,
                        region,
                        repository_name,
                        stored_bytes,
                        transfer_out_bytes,
                    }
                },
            )
            .collect())
    }
}

//! Queries behind image scanning: registry scanning configurations and scan times.

use super::{Db, MetaStore, RegistryKey, Result};

impl MetaStore {
    /// A registry's scanning configuration as stored: (scan type, rules as JSON); `None`
    /// if it was never set.
    pub async fn registry_scanning(&self, reg: &RegistryKey) -> Result<Option<(String, String)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT scan_type, rules FROM registry_scanning WHERE account_id = $1 AND region = $2",
        )
        .bind(&reg.account_id)
        .bind(&reg.region)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn put_registry_scanning(
        &self,
        reg: &RegistryKey,
        scan_type: &str,
        rules: &str,
    ) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO registry_scanning (account_id, region, scan_type, rules)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id, region)
             DO UPDATE SET scan_type = excluded.scan_type, rules = excluded.rules",
        )
        .bind(&reg.account_id)
        .bind(&reg.region)
        .bind(scan_type)
        .bind(rules)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Record a scan of an image at `now_ms`, unless it was scanned after `not_since`
    /// (the per-image quota). False if the image is gone or the quota is used.
    pub async fn mark_scanned(
        &self,
        repository_id: i64,
        digest: &str,
        now_ms: i64,
        not_since: i64,
    ) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE manifests SET scanned_at = $3
             WHERE repository_id = $1 AND digest = $2
               AND (scanned_at IS NULL OR scanned_at <= $4)",
        )
        .bind(repository_id)
        .bind(digest)
        .bind(now_ms)
        .bind(not_since)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// When an image was last scanned, if ever.
    pub async fn scanned_at(&self, repository_id: i64, digest: &str) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT scanned_at FROM manifests WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|(t,)| t))
    }
}

//! Queries behind image scanning: registry scanning configurations and scan times.

use super::changes::Change;
use super::outbox::{EventKind, EventSource};
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
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
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

    /// Request a scan of an image at `now_ms` (IN_PROGRESS, and a `scan_requested`
    /// event for the scan job), unless one was requested after `not_since` (the
    /// per-image quota). False if the image is gone or the quota is used.
    pub async fn request_scan(
        &self,
        source: &EventSource<'_>,
        digest: &str,
        now_ms: i64,
        not_since: i64,
    ) -> Result<bool> {
        let _events = self.changes.announce(Change::Events);
        let requested = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE manifests SET scanned_at = $3, scan_status = 'IN_PROGRESS',
                     scan_completed_at = NULL
                 WHERE repository_id = $1 AND digest = $2
                   AND (scanned_at IS NULL OR scanned_at <= $4)",
            )
            .bind(source.repository_id)
            .bind(digest)
            .bind(now_ms)
            .bind(not_since)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                record_event!(tx, EventKind::ScanRequested, source, digest, None::<&str>, now_ms);
            }
            tx.commit().await?;
            n > 0
        });
        Ok(requested)
    }

    /// Complete a scan in progress at `now_ms`; false if none was (already complete,
    /// or the image is gone): completing twice is harmless.
    pub async fn complete_scan(
        &self,
        repository_id: i64,
        digest: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Content { repository_id });
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE manifests SET scan_status = 'COMPLETE', scan_completed_at = $3
             WHERE repository_id = $1 AND digest = $2 AND scan_status = 'IN_PROGRESS'",
        )
        .bind(repository_id)
        .bind(digest)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// An image's latest scan, if it was ever scanned.
    pub async fn scan_state(&self, repository_id: i64, digest: &str) -> Result<Option<ScanState>> {
        let row: Option<(Option<String>, Option<i64>)> = on_read!(self, pool => sqlx::query_as(
            "SELECT scan_status, scan_completed_at FROM manifests
             WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|(status, at)| ScanState::from_row(status.as_deref(), at)))
    }
}

/// Where an image's latest scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanState {
    InProgress,
    Complete { at: i64 },
}

impl ScanState {
    pub(super) fn from_row(status: Option<&str>, completed_at: Option<i64>) -> Option<ScanState> {
        match (status?, completed_at) {
            ("COMPLETE", Some(at)) => Some(ScanState::Complete { at }),
            _ => Some(ScanState::InProgress),
        }
    }
}

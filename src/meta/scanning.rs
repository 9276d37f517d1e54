//! Queries behind image scanning: registry scanning configurations and scan times.

use super::changes::Change;
use super::outbox::{EventKind, EventSource};
use std::collections::BTreeMap;

use super::{Db, Error, MetaStore, RegistryKey, Result};
use crate::scan::Inventory;
use crate::vulndb::{Finding, Severity};

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

    /// Record a scan's outcome (and findings) at `now_ms`, if the scan is still in
    /// progress; false otherwise (already recorded, or the image is gone): events are
    /// delivered at least once, so recording twice must be harmless.
    pub async fn finish_scan(
        &self,
        source: &EventSource<'_>,
        digest: &str,
        outcome: &ScanOutcome,
        now_ms: i64,
    ) -> Result<bool> {
        let repository_id = source.repository_id;
        let _announce = self.changes.announce(Change::Content { repository_id });
        let (counts, findings) = encode_outcome(outcome)?;
        let inventory = outcome
            .inventory
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Backend(format!("inventory: {e}")))?;
        let done = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE manifests SET scan_status = $3, scan_completed_at = $4, scan_description = $5,
                     scan_counts = $6, scan_source_updated_at = $7,
                     scanned_at = CASE WHEN $8 THEN NULL ELSE scanned_at END
                 WHERE repository_id = $1 AND digest = $2 AND scan_status = 'IN_PROGRESS'",
            )
            .bind(repository_id)
            .bind(digest)
            .bind(outcome.status.as_str())
            .bind(now_ms)
            .bind(outcome.description.as_deref())
            .bind(&counts)
            .bind(outcome.source_updated_at)
            .bind(outcome.quota_released)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                sqlx::query(
                    "INSERT INTO scan_findings (repository_id, digest, findings, inventory)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (repository_id, digest)
                     DO UPDATE SET findings = excluded.findings, inventory = excluded.inventory",
                )
                .bind(repository_id)
                .bind(digest)
                .bind(&findings)
                .bind(&inventory)
                .execute(&mut *tx)
                .await?;
                record_event!(tx, EventKind::ScanCompleted, source, digest, None::<&str>, now_ms);
            }
            tx.commit().await?;
            n > 0
        });
        Ok(done)
    }

    /// Replace a monitored image's findings after a rescan, if it is still monitored
    /// (ACTIVE); false otherwise.
    pub async fn refresh_scan(
        &self,
        repository_id: i64,
        digest: &str,
        outcome: &ScanOutcome,
        now_ms: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Content { repository_id });
        let (counts, findings) = encode_outcome(outcome)?;
        let done = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE manifests SET scan_completed_at = $3, scan_description = $4,
                     scan_counts = $5, scan_source_updated_at = $6
                 WHERE repository_id = $1 AND digest = $2 AND scan_status = 'ACTIVE'",
            )
            .bind(repository_id)
            .bind(digest)
            .bind(now_ms)
            .bind(outcome.description.as_deref())
            .bind(&counts)
            .bind(outcome.source_updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                sqlx::query(
                    "UPDATE scan_findings SET findings = $3 WHERE repository_id = $1 AND digest = $2",
                )
                .bind(repository_id)
                .bind(digest)
                .bind(&findings)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            n > 0
        });
        Ok(done)
    }

    /// What an enhanced scan found installed in an image, kept for rescans.
    pub async fn scan_inventory(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Option<Inventory>> {
        let row: Option<(Option<String>,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT inventory FROM scan_findings WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(pool)
        .await?);
        match row.and_then(|(json,)| json) {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| Error::Backend(format!("stored inventory of {digest}: {e}"))),
        }
    }

    /// An image's latest scan, if it was ever scanned.
    pub async fn scan_state(&self, repository_id: i64, digest: &str) -> Result<Option<ScanState>> {
        let row: Option<ScanRow> = on_read!(self, pool => sqlx::query_as(
            "SELECT scan_status, scan_completed_at, scan_description, scan_counts, scan_source_updated_at
             FROM manifests WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(ScanState::from_row))
    }

    /// The findings of an image's latest completed scan.
    pub async fn scan_findings(&self, repository_id: i64, digest: &str) -> Result<Vec<Finding>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT findings FROM scan_findings WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(pool)
        .await?);
        match row {
            None => Ok(Vec::new()),
            Some((json,)) => serde_json::from_str(&json)
                .map_err(|e| Error::Backend(format!("stored findings of {digest}: {e}"))),
        }
    }
}

/// A scan outcome's severity counts and findings, as stored (JSON).
fn encode_outcome(outcome: &ScanOutcome) -> Result<(String, String)> {
    let counts = serde_json::to_string(&outcome.counts)
        .map_err(|e| Error::Backend(format!("severity counts: {e}")))?;
    let findings = serde_json::to_string(&outcome.findings)
        .map_err(|e| Error::Backend(format!("findings: {e}")))?;
    Ok((counts, findings))
}

/// The scan columns of a manifest row, as [`ScanState::from_row`] reads them.
pub(super) type ScanRow = (
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// How a scan ended, in ECR's status names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    Complete,
    /// Enhanced scanning: scanned, and monitored.
    Active,
    Failed,
    UnsupportedImage,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Complete => "COMPLETE",
            ScanStatus::Active => "ACTIVE",
            ScanStatus::Failed => "FAILED",
            ScanStatus::UnsupportedImage => "UNSUPPORTED_IMAGE",
        }
    }

    fn parse(s: &str) -> Option<ScanStatus> {
        [
            ScanStatus::Complete,
            ScanStatus::Active,
            ScanStatus::Failed,
            ScanStatus::UnsupportedImage,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What a finished scan records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    pub status: ScanStatus,
    /// Why, for a scan that did not complete.
    pub description: Option<String>,
    pub counts: BTreeMap<Severity, u32>,
    pub findings: Vec<Finding>,
    /// When the vulnerability data the scan used was updated.
    pub source_updated_at: Option<i64>,
    /// The scan failed for Berth's own reasons: it does not count against the
    /// one-scan-a-day quota.
    pub quota_released: bool,
    /// What was installed, kept for rescans (enhanced scanning).
    pub inventory: Option<Inventory>,
}

/// Where an image's latest scan stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    InProgress,
    Done(ScanResult),
}

/// A finished scan, without its findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    pub status: ScanStatus,
    pub at: i64,
    pub description: Option<String>,
    pub counts: BTreeMap<Severity, u32>,
    pub source_updated_at: Option<i64>,
}

impl ScanState {
    pub(super) fn from_row(row: ScanRow) -> Option<ScanState> {
        let (status, at, description, counts, source_updated_at) = row;
        let status = status?;
        let (Some(status), Some(at)) = (ScanStatus::parse(&status), at) else {
            return Some(ScanState::InProgress);
        };
        let counts = counts
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        Some(ScanState::Done(ScanResult {
            status,
            at,
            description,
            counts,
            source_updated_at,
        }))
    }
}

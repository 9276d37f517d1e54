//! Queries behind the ECR control plane: repository settings and listings, resource tags,
//! image listings and details, pull times.

use super::changes::Change;
use super::scanning::ScanState;
use super::{
    repository_from_row, Db, MetaStore, RegistryKey, Repository, RepositoryRow, Result,
    REPOSITORY_COLUMNS,
};

/// One (digest, tag) pair of ListImages; `tag` is `None` for an untagged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub digest: String,
    pub tag: Option<String>,
}

/// One image (one digest) as DescribeImages reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetail {
    pub digest: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub pushed_at: i64,
    pub media_type: String,
    pub config_media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub last_pulled_at: Option<i64>,
    /// In the archive storage class.
    pub archived: bool,
    pub last_archived_at: Option<i64>,
    pub last_activated_at: Option<i64>,
    /// Its latest scan, if it was ever scanned.
    pub scan: Option<ScanState>,
}

/// ListImages' and DescribeImages' `filter.imageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// ECR's default.
    #[default]
    Active,
    Archived,
    /// Berth restores at once, so nothing is ever activating.
    Activating,
    Any,
}

impl StatusFilter {
    /// A constant SQL condition on `m` (the manifests table).
    fn sql(self) -> &'static str {
        match self {
            StatusFilter::Active => "AND m.storage_class = 'STANDARD'",
            StatusFilter::Archived => "AND m.storage_class = 'ARCHIVE'",
            StatusFilter::Activating => "AND 1 = 0",
            StatusFilter::Any => "",
        }
    }
}

/// Columns of an image-detail row, in the order [`DetailRow`] reads them.
const DETAIL_COLUMNS: &str =
    "m.digest, m.image_size, m.pushed_at, m.media_type, m.config_media_type, \
     m.artifact_type, m.subject, m.last_pulled_at, m.storage_class, m.transitioned_at, \
     m.activated_at, m.scan_status, m.scan_completed_at, m.scan_description, m.scan_counts, \
     m.scan_source_updated_at";
type DetailRow = (
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

impl MetaStore {
    /// Repositories of a registry with names after `after`, in name order.
    pub async fn repositories_page(
        &self,
        reg: &RegistryKey,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Repository>> {
        let sql = format!(
            "SELECT {REPOSITORY_COLUMNS} FROM repositories
             WHERE account_id = $1 AND region = $2 AND name > $3 ORDER BY name LIMIT $4"
        );
        let rows: Vec<RepositoryRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(&reg.account_id)
            .bind(&reg.region)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(repository_from_row).collect()
    }

    /// Delete a repository and everything in it (rows cascade). With `only_if_empty`, a
    /// repository that holds images is left alone and `false` returned.
    pub async fn delete_repository(&self, repository_id: i64, only_if_empty: bool) -> Result<bool> {
        let _announce = self.changes.announce(Change::Repository { repository_id });
        let sql = if only_if_empty {
            "DELETE FROM repositories WHERE id = $1
             AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1)"
        } else {
            "DELETE FROM repositories WHERE id = $1"
        };
        let n = on_write!(self, pool => sqlx::query(sql)
            .bind(repository_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    pub async fn set_tag_mutability(
        &self,
        repository_id: i64,
        mutability: &crate::mutability::TagMutability,
    ) -> Result<()> {
        let _announce = self.changes.announce(Change::Repository { repository_id });
        on_write!(self, pool => sqlx::query(
            "UPDATE repositories SET image_tag_mutability = $2, mutability_exclusions = $3 WHERE id = $1",
        )
        .bind(repository_id)
        .bind(mutability.mode().as_str())
        .bind(mutability.exclusions_json())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn set_scan_on_push(&self, repository_id: i64, scan_on_push: bool) -> Result<()> {
        let _announce = self.changes.announce(Change::Repository { repository_id });
        on_write!(self, pool => sqlx::query("UPDATE repositories SET scan_on_push = $2 WHERE id = $1")
            .bind(repository_id)
            .bind(i64::from(scan_on_push))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    // ---- resource tags ----

    pub async fn resource_tags(&self, repository_id: i64) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT key, value FROM repository_tags WHERE repository_id = $1 ORDER BY key",
        )
        .bind(repository_id)
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// Add or overwrite tags, unless the repository would then carry more than `max`.
    /// Returns false (and changes nothing) when it would.
    pub async fn put_resource_tags(
        &self,
        repository_id: i64,
        tags: &[(String, String)],
        max: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Repository { repository_id });
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for (k, v) in tags {
                sqlx::query(
                    "INSERT INTO repository_tags (repository_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (repository_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(repository_id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM repository_tags WHERE repository_id = $1")
                .bind(repository_id)
                .fetch_one(&mut *tx)
                .await?;
            if n > max {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    pub async fn delete_resource_tags(&self, repository_id: i64, keys: &[String]) -> Result<()> {
        let _announce = self.changes.announce(Change::Repository { repository_id });
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for k in keys {
                sqlx::query("DELETE FROM repository_tags WHERE repository_id = $1 AND key = $2")
                    .bind(repository_id)
                    .bind(k)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- images ----

    /// (digest, tag) pairs after the cursor `(digest, tag)`, in that order; an untagged
    /// image is one pair with an empty tag. `tagged`: Some(true) tagged only, Some(false)
    /// untagged only.
    pub async fn image_rows(
        &self,
        repository_id: i64,
        tagged: Option<bool>,
        status: StatusFilter,
        after: (&str, &str),
        limit: i64,
    ) -> Result<Vec<ImageRow>> {
        let filter = match tagged {
            Some(true) => "AND tag <> ''",
            Some(false) => "AND tag = ''",
            None => "",
        };
        let sql = format!(
            "SELECT digest, tag FROM (
                 SELECT m.digest AS digest, COALESCE(t.name, '') AS tag
                 FROM manifests m LEFT JOIN tags t
                   ON t.repository_id = m.repository_id AND t.digest = m.digest
                 WHERE m.repository_id = $1 {status}
             ) pairs
             WHERE (digest > $2 OR (digest = $2 AND tag > $3)) {filter}
             ORDER BY digest, tag LIMIT $4",
            status = status.sql()
        );
        let rows: Vec<(String, String)> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(repository_id)
            .bind(after.0)
            .bind(after.1)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(digest, tag)| ImageRow {
                digest,
                tag: (!tag.is_empty()).then_some(tag),
            })
            .collect())
    }

    /// Image details for digests after `after`, in digest order.
    pub async fn image_details_page(
        &self,
        repository_id: i64,
        tagged: Option<bool>,
        status: StatusFilter,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ImageDetail>> {
        let filter = match tagged {
            Some(true) => "AND EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)",
            Some(false) => "AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)",
            None => "",
        };
        let sql = format!(
            "SELECT {DETAIL_COLUMNS}
             FROM manifests m WHERE m.repository_id = $1 AND m.digest > $2 {filter} {status}
             ORDER BY m.digest LIMIT $3",
            status = status.sql()
        );
        let rows: Vec<DetailRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(repository_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        self.with_tags(repository_id, rows).await
    }

    /// Details of one image by digest.
    pub async fn image_detail(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Option<ImageDetail>> {
        let sql = format!(
            "SELECT {DETAIL_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2"
        );
        let rows: Vec<DetailRow> = on_read!(self, pool => sqlx::query_as(&sql)
        .bind(repository_id)
        .bind(digest)
        .fetch_all(pool)
        .await?);
        Ok(self
            .with_tags(repository_id, rows)
            .await?
            .into_iter()
            .next())
    }

    async fn with_tags(
        &self,
        repository_id: i64,
        rows: Vec<DetailRow>,
    ) -> Result<Vec<ImageDetail>> {
        let mut out = Vec::with_capacity(rows.len());
        for (
            digest,
            size,
            pushed_at,
            media_type,
            config_media_type,
            artifact_type,
            subject,
            last_pulled_at,
            storage_class,
            last_archived_at,
            last_activated_at,
            scan_status,
            scan_completed_at,
            scan_description,
            scan_counts,
            scan_source_updated_at,
        ) in rows
        {
            let tags = self.tags_of(repository_id, &digest).await?;
            out.push(ImageDetail {
                digest,
                tags,
                size,
                pushed_at,
                media_type,
                config_media_type,
                artifact_type,
                subject,
                last_pulled_at,
                archived: storage_class == "ARCHIVE",
                last_archived_at,
                last_activated_at,
                scan: ScanState::from_row((
                    scan_status,
                    scan_completed_at,
                    scan_description,
                    scan_counts,
                    scan_source_updated_at,
                )),
            });
        }
        Ok(out)
    }

    /// Tags pointing at a digest, in name order.
    pub async fn tags_of(&self, repository_id: i64, digest: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 ORDER BY name",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }

    /// Sizes of the given manifests (for an index's size: its largest child).
    pub async fn image_sizes(&self, repository_id: i64, digests: &[String]) -> Result<Vec<i64>> {
        let mut sizes = Vec::new();
        for d in digests {
            let row: Option<(i64,)> = on_read!(self, pool => sqlx::query_as(
                "SELECT image_size FROM manifests WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repository_id)
            .bind(d)
            .fetch_optional(pool)
            .await?);
            sizes.extend(row.map(|(s,)| s));
        }
        Ok(sizes)
    }

    /// Record a pull, unless one was recorded since `not_before`.
    pub async fn record_pull(
        &self,
        repository_id: i64,
        digest: &str,
        now_ms: i64,
        not_before: i64,
    ) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "UPDATE manifests SET last_pulled_at = $3
             WHERE repository_id = $1 AND digest = $2
               AND (last_pulled_at IS NULL OR last_pulled_at < $4)",
        )
        .bind(repository_id)
        .bind(digest)
        .bind(now_ms)
        .bind(not_before)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }
}

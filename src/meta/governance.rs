//! Governance state: lifecycle policies, their previews and events, image storage
//! classes, repository creation templates, account settings and pull-time exclusions.

use super::changes::Change;
use super::{Db, MetaStore, RegistryKey, Result};
use crate::storage_class::StorageClass;

/// An image as lifecycle evaluation sees it (times in ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleImageRow {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
    pub storage_class: StorageClass,
    pub transitioned_at: Option<i64>,
}

/// A repository with a lifecycle policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleTarget {
    pub repository_id: i64,
    pub registry: RegistryKey,
    pub name: String,
    pub policy: String,
}

/// One action a lifecycle policy took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub registry: RegistryKey,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    /// `EXPIRE` or `TRANSITION`.
    pub action: String,
    pub rule_priority: i64,
    pub at: i64,
}

impl MetaStore {
    // ---- change signals between processes ----

    /// Add one to a counter (creating it), returning the new value.
    pub async fn bump_signal(&self, name: &str) -> Result<i64> {
        let (v,): (i64,) = on_write!(self, pool => sqlx::query_as(
            "INSERT INTO change_signals (name, value) VALUES ($1, 1)
             ON CONFLICT (name) DO UPDATE SET value = change_signals.value + 1
             RETURNING value",
        )
        .bind(name).fetch_one(pool).await?);
        Ok(v)
    }

    /// A counter's value (0 if never set).
    pub async fn signal(&self, name: &str) -> Result<i64> {
        let row: Option<(i64,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT value FROM change_signals WHERE name = $1",
        )
        .bind(name).fetch_optional(pool).await?);
        Ok(row.map_or(0, |r| r.0))
    }

    pub async fn set_signal(&self, name: &str, value: i64) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO change_signals (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name).bind(value).execute(pool).await?.rows_affected());
        Ok(())
    }

    // ---- lifecycle policies ----

    pub async fn set_lifecycle_policy(&self, repository_id: i64, text: Option<&str>) -> Result<()> {
        let _announce = self.changes.announce(Change::Repository { repository_id });
        on_write!(self, pool => sqlx::query(
            "UPDATE repositories SET lifecycle_policy = $1 WHERE id = $2",
        )
        .bind(text).bind(repository_id)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The policy text and when it was last evaluated.
    pub async fn lifecycle_policy(
        &self,
        repository_id: i64,
    ) -> Result<Option<(String, Option<i64>)>> {
        let row: Option<(Option<String>, Option<i64>)> = on_read!(self, pool => sqlx::query_as(
            "SELECT lifecycle_policy, lifecycle_evaluated_at FROM repositories WHERE id = $1",
        )
        .bind(repository_id).fetch_optional(pool).await?);
        Ok(row.and_then(|(text, at)| text.map(|t| (t, at))))
    }

    pub async fn set_lifecycle_evaluated(&self, repository_id: i64, at: i64) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "UPDATE repositories SET lifecycle_evaluated_at = $1 WHERE id = $2",
        )
        .bind(at).bind(repository_id)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Every repository (of every registry) that has a lifecycle policy.
    pub async fn lifecycle_targets(&self) -> Result<Vec<LifecycleTarget>> {
        let rows: Vec<(i64, String, String, String, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT id, account_id, region, name, lifecycle_policy FROM repositories
             WHERE lifecycle_policy IS NOT NULL ORDER BY id",
        )
        .fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(id, account_id, region, name, policy)| LifecycleTarget {
                repository_id: id,
                registry: RegistryKey::from_store(account_id, region),
                name,
                policy,
            })
            .collect())
    }

    /// The images lifecycle rules may act on: every manifest of the repository that no
    /// index of the repository references (those go with their index), with its tags.
    /// Two simple queries, run at once: the per-row cost dominates for large
    /// repositories, and a join of tags invites a poor plan.
    pub async fn lifecycle_images(&self, repository_id: i64) -> Result<Vec<LifecycleImageRow>> {
        type Row = (String, i64, Option<i64>, String, Option<i64>);
        let manifests = async {
            let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
                "SELECT m.digest, m.pushed_at, m.last_pulled_at, m.storage_class, m.transitioned_at
                 FROM manifests m
                 WHERE m.repository_id = $1
                   AND NOT EXISTS (SELECT 1 FROM manifest_references r
                                   WHERE r.repository_id = m.repository_id
                                     AND r.child_digest = m.digest AND r.kind = 'manifest')
                 ORDER BY m.digest",
            )
            .bind(repository_id).fetch_all(pool).await?);
            Ok::<_, super::Error>(rows)
        };
        let tags = async {
            let rows: Vec<(String, String)> = on_read!(self, pool => sqlx::query_as(
                "SELECT digest, name FROM tags WHERE repository_id = $1 ORDER BY digest, name",
            )
            .bind(repository_id).fetch_all(pool).await?);
            Ok::<_, super::Error>(rows)
        };
        let (rows, tags) = tokio::try_join!(manifests, tags)?;
        let mut by_digest: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for (digest, name) in tags {
            by_digest.entry(digest).or_default().push(name);
        }
        Ok(rows
            .into_iter()
            .map(
                |(digest, pushed_at, last_pulled_at, storage_class, transitioned_at)| {
                    LifecycleImageRow {
                        tags: by_digest.remove(&digest).unwrap_or_default(),
                        digest,
                        pushed_at,
                        last_pulled_at,
                        // Only this module writes the column, with these names.
                        storage_class: StorageClass::parse(&storage_class).unwrap_or_default(),
                        transitioned_at,
                    }
                },
            )
            .collect())
    }

    pub async fn save_lifecycle_preview(
        &self,
        repository_id: i64,
        policy_text: &str,
        results_json: &str,
        now_ms: i64,
    ) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO lifecycle_previews (repository_id, policy_text, results, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (repository_id) DO UPDATE SET policy_text = excluded.policy_text,
                 results = excluded.results, created_at = excluded.created_at",
        )
        .bind(repository_id).bind(policy_text).bind(results_json).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The latest preview: (policy text, results JSON).
    pub async fn lifecycle_preview(&self, repository_id: i64) -> Result<Option<(String, String)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT policy_text, results FROM lifecycle_previews WHERE repository_id = $1",
        )
        .bind(repository_id).fetch_optional(pool).await?))
    }

    pub async fn record_lifecycle_event(&self, e: &LifecycleEvent) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO lifecycle_events
                 (account_id, region, repository_name, digest, tags, action, rule_priority, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.registry.account_id).bind(&e.registry.region).bind(&e.repository)
        .bind(&e.digest).bind(e.tags.join(",")).bind(&e.action).bind(e.rule_priority).bind(e.at)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The most recent lifecycle events, newest first.
    pub async fn lifecycle_events(&self, limit: i64) -> Result<Vec<LifecycleEvent>> {
        type Row = (String, String, String, String, String, String, i64, i64);
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT account_id, region, repository_name, digest, tags, action, rule_priority, at
             FROM lifecycle_events ORDER BY id DESC LIMIT $1",
        )
        .bind(limit).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(
                |(account_id, region, repository, digest, tags, action, rule_priority, at)| {
                    LifecycleEvent {
                        registry: RegistryKey::from_store(account_id, region),
                        repository,
                        digest,
                        tags: tags
                            .split(',')
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        action,
                        rule_priority,
                        at,
                    }
                },
            )
            .collect())
    }

    // ---- repository creation templates (bodies are JSON) ----

    /// Insert a template; false if the prefix has one.
    pub async fn insert_template(
        &self,
        reg: &RegistryKey,
        prefix: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO creation_templates (account_id, region, prefix, body, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(prefix).bind(body).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    pub async fn update_template(
        &self,
        reg: &RegistryKey,
        prefix: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE creation_templates SET body = $4, updated_at = $5
             WHERE account_id = $1 AND region = $2 AND prefix = $3",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(prefix).bind(body).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    pub async fn template(&self, reg: &RegistryKey, prefix: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT body FROM creation_templates WHERE account_id = $1 AND region = $2 AND prefix = $3",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(prefix).fetch_optional(pool).await?);
        Ok(row.map(|r| r.0))
    }

    /// Every template body of a registry, by prefix.
    pub async fn templates(&self, reg: &RegistryKey) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT body FROM creation_templates WHERE account_id = $1 AND region = $2 ORDER BY prefix",
        )
        .bind(&reg.account_id).bind(&reg.region).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Delete a template, returning its body.
    pub async fn delete_template(&self, reg: &RegistryKey, prefix: &str) -> Result<Option<String>> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let row: Option<(String,)> = on_write!(self, pool => sqlx::query_as(
            "DELETE FROM creation_templates WHERE account_id = $1 AND region = $2 AND prefix = $3
             RETURNING body",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(prefix).fetch_optional(pool).await?);
        Ok(row.map(|r| r.0))
    }

    // ---- account settings and pull-time update exclusions ----

    pub async fn account_setting(&self, reg: &RegistryKey, name: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT value FROM account_settings WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(name).fetch_optional(pool).await?);
        Ok(row.map(|r| r.0))
    }

    pub async fn put_account_setting(
        &self,
        reg: &RegistryKey,
        name: &str,
        value: &str,
    ) -> Result<()> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        on_write!(self, pool => sqlx::query(
            "INSERT INTO account_settings (account_id, region, name, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id, region, name) DO UPDATE SET value = excluded.value",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(name).bind(value)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Register an exclusion unless the registry has `max` already; None if it exists,
    /// Some(false) if the limit was reached.
    pub async fn add_pull_time_exclusion(
        &self,
        reg: &RegistryKey,
        arn: &str,
        max: i64,
        now_ms: i64,
    ) -> Result<Option<bool>> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let exists: Option<(i64,)> = sqlx::query_as(
                "SELECT created_at FROM pull_time_exclusions
                 WHERE account_id = $1 AND region = $2 AND principal_arn = $3",
            )
            .bind(&reg.account_id).bind(&reg.region).bind(arn)
            .fetch_optional(&mut *tx).await?;
            if exists.is_some() {
                return Ok(None);
            }
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM pull_time_exclusions WHERE account_id = $1 AND region = $2",
            )
            .bind(&reg.account_id).bind(&reg.region).fetch_one(&mut *tx).await?;
            if count >= max {
                return Ok(Some(false));
            }
            sqlx::query(
                "INSERT INTO pull_time_exclusions (account_id, region, principal_arn, created_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&reg.account_id).bind(&reg.region).bind(arn).bind(now_ms)
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some(true))
        })
    }

    pub async fn remove_pull_time_exclusion(&self, reg: &RegistryKey, arn: &str) -> Result<bool> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let n = on_write!(self, pool => sqlx::query(
            "DELETE FROM pull_time_exclusions WHERE account_id = $1 AND region = $2 AND principal_arn = $3",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(arn)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// The registry's exclusions, by ARN.
    pub async fn pull_time_exclusions(&self, reg: &RegistryKey) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT principal_arn FROM pull_time_exclusions WHERE account_id = $1 AND region = $2
             ORDER BY principal_arn",
        )
        .bind(&reg.account_id).bind(&reg.region).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    // ---- storage classes ----

    /// Move an image to the archive storage class (DescribeImages' `lastArchivedAt`);
    /// false if it is gone.
    pub async fn archive_image(
        &self,
        repository_id: i64,
        digest: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Content { repository_id });
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE manifests SET storage_class = 'ARCHIVE', transitioned_at = $3
             WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id).bind(digest).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Back to STANDARD, noting when (DescribeImages' `lastActivatedAt`).
    pub async fn restore_image(
        &self,
        repository_id: i64,
        digest: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Content { repository_id });
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE manifests SET storage_class = 'STANDARD', activated_at = $3
             WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id).bind(digest).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }
}

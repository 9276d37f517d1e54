//! Lifecycle policy operations (Put/Get/Delete, previews) and their execution.
//!
//! Preview and execution call the same evaluator on the same image list; execution
//! then expires (deletes) or archives each image and records an event. The background
//! job and `berth admin lifecycle run` both call [`Service::run_lifecycle`].

use serde::{Deserialize, Serialize};

use super::error::EcrErrorKind as K;
use super::{Action, Context, Error, Result, Service};
use crate::clock;
use crate::lifecycle::{self, LifecyclePolicy, RuleAction, StorageClass};
use crate::meta::{LifecycleEvent, LifecycleImageRow, LifecycleTarget};
use crate::oci::{Digest, RepositoryName};

/// A repository's policy and when it was last evaluated (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicyInfo {
    pub text: String,
    pub last_evaluated_at: Option<i64>,
}

/// One image a preview says the policy would act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewResult {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    /// `EXPIRE` or `TRANSITION`.
    pub action: String,
    pub rule_priority: u32,
    /// Where the image is now.
    pub storage_class: StorageClass,
}

/// The latest preview of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub policy_text: String,
    pub results: Vec<PreviewResult>,
}

/// What one lifecycle run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleRun {
    pub repositories: usize,
    pub expired: usize,
    pub transitioned: usize,
}

/// The ECR error for a policy that does not parse or validate.
fn invalid_policy(e: lifecycle::policy::Invalid) -> Error {
    Error::InvalidParameter(format!(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {}'",
        e.0
    ))
}

fn to_images(rows: &[LifecycleImageRow]) -> Vec<lifecycle::Image> {
    rows.iter()
        .map(|r| lifecycle::Image {
            digest: r.digest.clone(),
            tags: r.tags.clone(),
            pushed_at_ms: r.pushed_at,
            last_pulled_at_ms: r.last_pulled_at,
            storage_class: r.storage_class,
            transitioned_at_ms: r.transitioned_at,
        })
        .collect()
}

/// Evaluate `policy` over a repository's images at `now_ms`: the verdicts with the rows
/// they are about.
fn verdicts<'a>(
    policy: &LifecyclePolicy,
    rows: &'a [LifecycleImageRow],
    now_ms: i64,
) -> Vec<(&'a LifecycleImageRow, lifecycle::Verdict)> {
    let images = to_images(rows);
    lifecycle::evaluate(policy, &images, now_ms)
        .into_iter()
        .filter_map(|v| Some((rows.get(v.index)?, v)))
        .collect()
}

impl Service {
    fn lifecycle_not_found(ctx: &Context, name: &RepositoryName) -> Error {
        Error::ecr(
            K::LifecyclePolicyNotFound,
            format!(
                "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
                ctx.registry.account_id
            ),
        )
    }

    pub async fn put_lifecycle_policy(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        text: &str,
    ) -> Result<()> {
        self.authorize(ctx, Action::PutLifecyclePolicy, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        LifecyclePolicy::parse(text).map_err(invalid_policy)?;
        self.meta.set_lifecycle_policy(repo.id, Some(text)).await?;
        Ok(())
    }

    /// GetLifecyclePolicy, or with `delete` DeleteLifecyclePolicy (returning the policy).
    pub async fn lifecycle_policy(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        delete: bool,
    ) -> Result<LifecyclePolicyInfo> {
        let action = if delete {
            Action::DeleteLifecyclePolicy
        } else {
            Action::GetLifecyclePolicy
        };
        self.authorize(ctx, action, name).await?;
        let repo = self.repository(ctx, name).await?;
        let (text, last_evaluated_at) = self
            .meta
            .lifecycle_policy(repo.id)
            .await?
            .ok_or_else(|| Self::lifecycle_not_found(ctx, name))?;
        if delete {
            self.meta.set_lifecycle_policy(repo.id, None).await?;
        }
        Ok(LifecyclePolicyInfo {
            text,
            last_evaluated_at,
        })
    }

    /// StartLifecyclePolicyPreview: evaluate `text` (or the repository's policy) now,
    /// without acting, and keep the result for GetLifecyclePolicyPreview.
    pub async fn start_lifecycle_preview(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        text: Option<&str>,
    ) -> Result<String> {
        self.authorize(ctx, Action::StartLifecyclePolicyPreview, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        let text = match text {
            Some(t) => t.to_owned(),
            None => {
                self.meta
                    .lifecycle_policy(repo.id)
                    .await?
                    .ok_or_else(|| Self::lifecycle_not_found(ctx, name))?
                    .0
            }
        };
        let policy = LifecyclePolicy::parse(&text).map_err(invalid_policy)?;
        let started = std::time::Instant::now();
        let rows = self.meta.lifecycle_images(repo.id).await?;
        let loaded = started.elapsed();
        let now = clock::now_ms();
        let results: Vec<PreviewResult> = verdicts(&policy, &rows, now)
            .into_iter()
            .map(|(row, v)| PreviewResult {
                digest: row.digest.clone(),
                tags: row.tags.clone(),
                pushed_at: row.pushed_at,
                action: v.action.api_name().to_owned(),
                rule_priority: v.rule_priority,
                storage_class: row.storage_class,
            })
            .collect();
        let evaluated = started.elapsed();
        let json = serde_json::to_string(&results)
            .map_err(|e| Error::Internal(format!("encoding a preview: {e}")))?;
        self.meta
            .save_lifecycle_preview(repo.id, &text, &json, now)
            .await?;
        tracing::debug!(
            repository = %name,
            images = rows.len(),
            acted_on = results.len(),
            load_ms = loaded.as_millis() as u64,
            evaluate_ms = (evaluated - loaded).as_millis() as u64,
            store_ms = (started.elapsed() - evaluated).as_millis() as u64,
            "lifecycle preview"
        );
        Ok(text)
    }

    pub async fn lifecycle_preview(&self, ctx: &Context, name: &RepositoryName) -> Result<Preview> {
        self.authorize(ctx, Action::GetLifecyclePolicyPreview, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        let (policy_text, json) = self
            .meta
            .lifecycle_preview(repo.id)
            .await?
            .ok_or_else(|| {
                Error::ecr(
                    K::LifecyclePolicyPreviewNotFound,
                    format!(
                        "There is no lifecycle policy preview for the repository with name '{name}' in the registry with id '{}'",
                        ctx.registry.account_id
                    ),
                )
            })?;
        let results = serde_json::from_str(&json)
            .map_err(|e| Error::Internal(format!("decoding a preview: {e}")))?;
        Ok(Preview {
            policy_text,
            results,
        })
    }

    /// Apply every repository's lifecycle policy as of `now_ms`. A repository whose
    /// stored policy no longer parses is skipped (and logged), never half-applied.
    pub async fn run_lifecycle(&self, now_ms: i64) -> Result<LifecycleRun> {
        let mut run = LifecycleRun::default();
        let targets = self.meta.lifecycle_targets().await?;
        crate::observe::progress::phase("lifecycle: repositories", Some(targets.len() as u64));
        for target in targets {
            crate::observe::progress::advance(1);
            let policy = match LifecyclePolicy::parse(&target.policy) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(
                        repository = target.name,
                        error = e.0,
                        "skipping an invalid lifecycle policy"
                    );
                    continue;
                }
            };
            self.apply_lifecycle(&target, &policy, now_ms, &mut run)
                .await?;
            run.repositories += 1;
        }
        Ok(run)
    }

    async fn apply_lifecycle(
        &self,
        target: &LifecycleTarget,
        policy: &LifecyclePolicy,
        now_ms: i64,
        run: &mut LifecycleRun,
    ) -> Result<()> {
        let rows = self.meta.lifecycle_images(target.repository_id).await?;
        let mut acted = Vec::new();
        for (row, v) in verdicts(policy, &rows, now_ms) {
            let done = match v.action {
                RuleAction::Expire => {
                    let digest: Digest = row
                        .digest
                        .parse()
                        .map_err(|_| Error::Internal("stored digest is invalid".into()))?;
                    let source = crate::meta::EventSource {
                        registry: &target.registry,
                        repository_id: target.repository_id,
                        repository_name: &target.name,
                        replicated: false,
                    };
                    self.meta.delete_manifest(&source, &digest).await?
                        == crate::meta::DeleteOutcome::Deleted
                }
                RuleAction::Transition => {
                    self.meta
                        .archive_image(target.repository_id, &row.digest, now_ms)
                        .await?
                }
            };
            if !done {
                continue;
            }
            match v.action {
                RuleAction::Expire => run.expired += 1,
                RuleAction::Transition => run.transitioned += 1,
            }
            let event = LifecycleEvent {
                registry: target.registry.clone(),
                repository: target.name.clone(),
                digest: row.digest.clone(),
                tags: row.tags.clone(),
                action: v.action.api_name().to_owned(),
                rule_priority: i64::from(v.rule_priority),
                at: now_ms,
            };
            tracing::info!(
                target: "lifecycle",
                account_id = %event.registry.account_id,
                region = %event.registry.region,
                repository = event.repository,
                digest = event.digest,
                tags = event.tags.join(","),
                action = event.action,
                rule_priority = event.rule_priority,
                "PolicyExecutionEvent"
            );
            self.meta.record_lifecycle_event(&event).await?;
            acted.push(crate::audit::LifecycleImageAction {
                digest: row.digest.clone(),
                tags: row.tags.clone(),
                pushed_at_ms: row.pushed_at,
                rule_priority: event.rule_priority,
            });
        }
        // The audit trail: ECR's PolicyExecutionEvent, one record per ten images.
        let rules = policy.cloudtrail_rules();
        for images in acted.chunks(10) {
            self.audit.queue(crate::audit::policy_execution_record(
                &target.registry.account_id,
                &target.registry.region,
                &target.name,
                now_ms,
                &rules,
                images,
            ));
        }
        self.meta
            .set_lifecycle_evaluated(target.repository_id, now_ms)
            .await?;
        Ok(())
    }

    /// The most recent lifecycle actions, newest first.
    pub async fn lifecycle_events(&self, limit: i64) -> Result<Vec<LifecycleEvent>> {
        Ok(self.meta.lifecycle_events(limit).await?)
    }
}

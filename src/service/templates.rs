//! Repository creation templates: the settings ECR gives a repository it creates on the
//! user's behalf. A CREATE_ON_PUSH template makes a push to a missing repository under
//! its prefix create that repository (see [`Service::create_from_template`]).

use serde::{Deserialize, Serialize};

use super::error::EcrErrorKind as K;
use super::{Action, Context, Error, Result, Service};
use crate::clock;
use crate::lifecycle::LifecyclePolicy;
use crate::meta::{Repository, RepositorySettings};
use crate::mutability::TagMutability;
use crate::oci::RepositoryName;
use crate::resource_tags::ResourceTags;

/// The scenarios a template may apply to (`appliedFor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppliedFor {
    Replication,
    PullThroughCache,
    CreateOnPush,
}

impl AppliedFor {
    pub fn as_str(self) -> &'static str {
        match self {
            AppliedFor::Replication => "REPLICATION",
            AppliedFor::PullThroughCache => "PULL_THROUGH_CACHE",
            AppliedFor::CreateOnPush => "CREATE_ON_PUSH",
        }
    }

    pub fn parse(s: &str) -> Option<AppliedFor> {
        [
            AppliedFor::Replication,
            AppliedFor::PullThroughCache,
            AppliedFor::CreateOnPush,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// ECR's message for an empty or unknown `appliedFor`.
const INVALID_APPLIED_FOR: &str =
    "appliedFor must list one or more of REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH";

/// A template as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationTemplate {
    /// `ROOT`, or a repository-name prefix without a trailing `/`.
    pub prefix: String,
    pub description: Option<String>,
    pub encryption_type: String,
    pub kms_key: Option<String>,
    pub resource_tags: ResourceTags,
    pub image_tag_mutability: String,
    /// Exclusion filters as JSON, like the repository setting.
    pub mutability_exclusions: Option<String>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub applied_for: Vec<AppliedFor>,
    pub custom_role_arn: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Create or Update input: `None` leaves a field as it is (or at its default).
#[derive(Debug, Clone, Default)]
pub struct TemplateInput {
    pub description: Option<String>,
    pub encryption: Option<(String, Option<String>)>,
    pub resource_tags: Option<ResourceTags>,
    pub mutability: Option<TagMutability>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    /// As given; checked (and parsed) in ECR's order, after the policies.
    pub applied_for: Option<Vec<String>>,
    pub custom_role_arn: Option<String>,
}

/// `ROOT`, or a repository name with an optional trailing `/` (stored without it).
pub fn normalize_prefix(prefix: &str) -> Option<String> {
    if prefix == "ROOT" {
        return Some(prefix.to_owned());
    }
    let bare = prefix.strip_suffix('/').unwrap_or(prefix);
    bare.parse::<RepositoryName>()
        .ok()
        .map(|n| n.as_str().to_owned())
}

/// Whether a template's prefix covers a repository name (`team` covers `team/app`).
fn covers(prefix: &str, name: &str) -> bool {
    prefix == "ROOT"
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Service {
    fn template_not_found(prefix: &str) -> Error {
        Error::ecr(
            K::TemplateNotFound,
            format!(
                "The specified repository creation template with prefix '{prefix}' does not exist"
            ),
        )
    }

    /// The parts of an input that need the store to check: policies, then applied-for
    /// (returned parsed).
    async fn check_template_input(&self, input: &TemplateInput) -> Result<Option<Vec<AppliedFor>>> {
        if let Some(p) = &input.repository_policy {
            self.check_resource_policy(p, "Invalid repository policy provided")
                .await?;
        }
        if let Some(text) = &input.lifecycle_policy {
            LifecyclePolicy::parse(text).map_err(|e| {
                Error::InvalidParameter(format!(
                    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {}'",
                    e.0
                ))
            })?;
        }
        input
            .applied_for
            .as_deref()
            .map(parse_applied_for)
            .transpose()
    }

    pub async fn create_creation_template(
        &self,
        ctx: &Context,
        prefix: &str,
        input: TemplateInput,
    ) -> Result<CreationTemplate> {
        self.authorize_registry(ctx, Action::CreateRepositoryCreationTemplate)
            .await?;
        if input.applied_for.is_none() {
            return Err(Error::ecr(K::Validation, "appliedFor is required"));
        }
        let applied_for = self.check_template_input(&input).await?;
        let now = clock::now_ms();
        let mut t = CreationTemplate {
            prefix: prefix.to_owned(),
            description: None,
            encryption_type: "AES256".into(),
            kms_key: None,
            resource_tags: ResourceTags::default(),
            image_tag_mutability: "MUTABLE".into(),
            mutability_exclusions: None,
            repository_policy: None,
            lifecycle_policy: None,
            applied_for: Vec::new(),
            custom_role_arn: None,
            created_at: now,
            updated_at: now,
        };
        apply(&mut t, input, applied_for);
        if !self
            .meta
            .insert_template(&ctx.registry, prefix, &encode(&t)?, now)
            .await?
        {
            return Err(Error::ecr(
                K::TemplateAlreadyExists,
                format!("The repository creation template with prefix '{prefix}' already exists"),
            ));
        }
        Ok(t)
    }

    pub async fn update_creation_template(
        &self,
        ctx: &Context,
        prefix: &str,
        input: TemplateInput,
    ) -> Result<CreationTemplate> {
        self.authorize_registry(ctx, Action::UpdateRepositoryCreationTemplate)
            .await?;
        let applied_for = self.check_template_input(&input).await?;
        let body = self
            .meta
            .template(&ctx.registry, prefix)
            .await?
            .ok_or_else(|| Self::template_not_found(prefix))?;
        let mut t = decode(&body)?;
        apply(&mut t, input, applied_for);
        t.updated_at = clock::now_ms();
        self.meta
            .update_template(&ctx.registry, prefix, &encode(&t)?, t.updated_at)
            .await?;
        Ok(t)
    }

    pub async fn delete_creation_template(
        &self,
        ctx: &Context,
        prefix: &str,
    ) -> Result<CreationTemplate> {
        self.authorize_registry(ctx, Action::DeleteRepositoryCreationTemplate)
            .await?;
        let body = self
            .meta
            .delete_template(&ctx.registry, prefix)
            .await?
            .ok_or_else(|| Self::template_not_found(prefix))?;
        decode(&body)
    }

    /// The registry's templates, by prefix; only `prefixes` if given (all must exist).
    pub async fn describe_creation_templates(
        &self,
        ctx: &Context,
        prefixes: Option<&[String]>,
    ) -> Result<Vec<CreationTemplate>> {
        self.authorize_registry(ctx, Action::DescribeRepositoryCreationTemplates)
            .await?;
        let all = self
            .meta
            .templates(&ctx.registry)
            .await?
            .iter()
            .map(|b| decode(b))
            .collect::<Result<Vec<_>>>()?;
        let Some(wanted) = prefixes else {
            return Ok(all);
        };
        wanted
            .iter()
            .map(|p| {
                all.iter()
                    .find(|t| &t.prefix == p)
                    .cloned()
                    .ok_or_else(|| Self::template_not_found(p))
            })
            .collect()
    }

    /// The template for a repository Berth creates in `scenario`: the longest prefix
    /// that covers the name, else ROOT, if it applies to that scenario.
    async fn template_for(
        &self,
        ctx: &Context,
        name: &str,
        scenario: AppliedFor,
    ) -> Result<Option<CreationTemplate>> {
        let templates = self.meta.templates(&ctx.registry).await?;
        let mut best: Option<CreationTemplate> = None;
        for body in templates {
            let t = decode(&body)?;
            if !covers(&t.prefix, name) {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => {
                    b.prefix == "ROOT" || (t.prefix != "ROOT" && t.prefix.len() > b.prefix.len())
                }
            };
            if better {
                best = Some(t);
            }
        }
        Ok(best.filter(|t| t.applied_for.contains(&scenario)))
    }

    /// Create a repository Berth creates on the caller's behalf (a push with
    /// CREATE_ON_PUSH, a pull-through cache's first pull), from the template for that
    /// scenario; `None` if no template applies. The caller needs `ecr:CreateRepository`
    /// (with the template's tags as request tags), as on ECR.
    pub(super) async fn create_from_template(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        scenario: AppliedFor,
    ) -> Result<Option<Repository>> {
        let Some(t) = self.template_for(ctx, name.as_str(), scenario).await? else {
            return Ok(None);
        };
        self.authorize_tagged(
            ctx,
            Action::CreateRepository,
            name,
            t.resource_tags.as_pairs(),
        )
        .await?;
        let settings = RepositorySettings {
            tag_mutability: TagMutability::from_stored(
                &t.image_tag_mutability,
                t.mutability_exclusions.as_deref(),
            ),
            scan_on_push: false,
            encryption_type: t.encryption_type.clone(),
            kms_key: t.kms_key.clone(),
        };
        let created = self
            .meta
            .create_repository(
                &ctx.registry,
                name,
                &settings,
                t.resource_tags.as_pairs(),
                clock::now_ms(),
            )
            .await?;
        let Some(repo) = created else {
            // Created concurrently by another push: use that one.
            return Ok(Some(self.repository(ctx, name).await?));
        };
        if let Some(p) = &t.repository_policy {
            self.meta.set_repository_policy(repo.id, Some(p)).await?;
        }
        if let Some(l) = &t.lifecycle_policy {
            self.meta.set_lifecycle_policy(repo.id, Some(l)).await?;
        }
        tracing::info!(repository = %name, template = t.prefix, scenario = scenario.as_str(), "repository created from a template");
        // Read back, so the returned row carries the policy.
        Ok(Some(self.repository(ctx, name).await?))
    }
}

/// One or more known scenarios.
fn parse_applied_for(list: &[String]) -> Result<Vec<AppliedFor>> {
    match list
        .iter()
        .map(|a| AppliedFor::parse(a))
        .collect::<Option<Vec<_>>>()
    {
        Some(parsed) if !parsed.is_empty() => Ok(parsed),
        _ => Err(Error::ecr(K::Validation, INVALID_APPLIED_FOR)),
    }
}

fn apply(t: &mut CreationTemplate, input: TemplateInput, applied_for: Option<Vec<AppliedFor>>) {
    if let Some(d) = input.description {
        t.description = Some(d);
    }
    if let Some((ty, key)) = input.encryption {
        t.encryption_type = ty;
        t.kms_key = key;
    }
    if let Some(tags) = input.resource_tags {
        t.resource_tags = tags;
    }
    if let Some(m) = input.mutability {
        t.image_tag_mutability = m.mode().as_str().to_owned();
        t.mutability_exclusions = m.exclusions_json();
    }
    if let Some(p) = input.repository_policy {
        t.repository_policy = Some(p);
    }
    if let Some(l) = input.lifecycle_policy {
        t.lifecycle_policy = Some(l);
    }
    if let Some(a) = applied_for {
        t.applied_for = a;
    }
    if let Some(r) = input.custom_role_arn {
        t.custom_role_arn = Some(r);
    }
}

fn encode(t: &CreationTemplate) -> Result<String> {
    serde_json::to_string(t).map_err(|e| Error::Internal(format!("encoding a template: {e}")))
}

fn decode(body: &str) -> Result<CreationTemplate> {
    serde_json::from_str(body).map_err(|e| Error::Internal(format!("decoding a template: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_whole_path_segments() {
        assert!(covers("team", "team/app"));
        assert!(covers("team/a", "team/a/b"));
        assert!(!covers("team", "teams/app"));
        assert!(!covers("team", "team"));
        assert!(covers("ROOT", "anything"));
        assert_eq!(normalize_prefix("team/").as_deref(), Some("team"));
        assert_eq!(normalize_prefix("ROOT").as_deref(), Some("ROOT"));
        assert_eq!(normalize_prefix("Team"), None);
    }
}

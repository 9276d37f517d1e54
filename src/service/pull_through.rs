//! Pull-through cache rules: which repository prefix caches which upstream registry,
//! with whose credentials. The cache itself (what a pull through a rule does) is in
//! cached_pulls.rs.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::EcrErrorKind as K;
use super::secrets_manager::SecretValue;
use super::{Action, Context, Error, Result, Service};
use crate::auth::{Principal, RoleSession};
use crate::aws::{AccountId, Region};
use crate::clock;
use crate::meta::RegistryKey;
use crate::upstream::registries::{ecr_registry_url, CredentialNeed, UpstreamRegistry};
use crate::upstream::{Credentials, Target, UpstreamError};

/// The service principal a custom role of an ECR-to-ECR rule must trust.
const PULL_THROUGH_SERVICE: &str = "pullthroughcache.ecr.amazonaws.com";

/// The session name of the role sessions the cache reads other registries with.
pub(super) const PULL_THROUGH_SESSION: &str = "ecr-pull-through-cache";

/// Whether a request is the cache itself reading an upstream registry of this
/// deployment: such a read never goes further upstream (no chains, no loops).
pub(super) fn is_cache_session(ctx: &Context) -> bool {
    matches!(&ctx.principal, Principal::AssumedRole { session_name, .. } if session_name == PULL_THROUGH_SESSION)
}

/// Where a rule's pulls come from.
pub(super) enum Source {
    /// An upstream registry, over HTTP.
    Registry(Target),
    /// A registry of this deployment (an ECR upstream), read as this context.
    Deployment(Context),
}

/// Rules per registry (ECR's quota).
const MAX_RULES: i64 = 50;

/// A rule as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRule {
    /// `ROOT`, or a repository-name prefix without its trailing `/`.
    pub prefix: String,
    pub upstream_url: String,
    pub upstream_registry: Option<UpstreamRegistry>,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    /// `ROOT`, or the upstream repository path prefix cached names map to.
    pub upstream_prefix: String,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

/// CreatePullThroughCacheRule's input, its syntax checked by the front end.
#[derive(Debug, Clone)]
pub struct NewCacheRule {
    pub prefix: String,
    pub upstream_url: String,
    pub upstream_registry: Option<UpstreamRegistry>,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    pub upstream_prefix: Option<String>,
}

/// ValidatePullThroughCacheRule's answer.
#[derive(Debug, Clone)]
pub struct RuleValidation {
    pub rule: CacheRule,
    /// Why the upstream cannot be used with this rule; `None`: it can.
    pub failure: Option<String>,
}

impl CacheRule {
    /// The upstream repository a cache repository `name` stands for, if this rule
    /// covers it (`docker-hub/library/nginx` → `library/nginx`).
    pub fn upstream_repository(&self, name: &str) -> Option<String> {
        let rest = if self.prefix == "ROOT" {
            name
        } else {
            name.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?
        };
        if rest.is_empty() {
            return None;
        }
        Some(if self.upstream_prefix == "ROOT" {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.upstream_prefix)
        })
    }
}

/// The secret's value as ECR expects it: `{"username": ..., "accessToken": ...}`.
fn credentials_of(value: &SecretValue) -> std::result::Result<Credentials, String> {
    let SecretValue::String(text) = value else {
        return Err(
            "the secret's value is binary; expected JSON with username and accessToken".into(),
        );
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Stored {
        username: Option<String>,
        access_token: Option<String>,
    }
    let stored: Stored = serde_json::from_str(text)
        .map_err(|_| "the secret's value is not JSON with username and accessToken".to_owned())?;
    match (stored.username, stored.access_token) {
        (Some(username), Some(secret)) if !username.is_empty() && !secret.is_empty() => {
            Ok(Credentials { username, secret })
        }
        _ => Err("the secret's value lacks username or accessToken".into()),
    }
}

fn not_found(prefix: &str, registry: &RegistryKey) -> Error {
    Error::ecr(
        K::PullThroughCacheRuleNotFound,
        format!(
            "The pull through cache rule with prefix '{prefix}' does not exist in the registry with id '{}'",
            registry.account_id
        ),
    )
}

/// Whether `prefix` covers the repository `name`.
fn covers(prefix: &str, name: &str) -> bool {
    prefix == "ROOT"
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

impl Service {
    pub async fn create_cache_rule(&self, ctx: &Context, new: NewCacheRule) -> Result<CacheRule> {
        self.authorize_registry(ctx, Action::CreatePullThroughCacheRule)
            .await?;
        let resolved = self
            .options
            .pull_through
            .upstreams
            .resolve(&new.upstream_url, new.upstream_registry)
            .ok_or_else(|| {
                Error::ecr(
                    K::UnsupportedUpstreamRegistry,
                    format!(
                        "The upstream registry URL '{}' is not supported{}",
                        new.upstream_url,
                        new.upstream_registry
                            .map(|k| format!(" for the upstream registry '{}'", k.as_str()))
                            .unwrap_or_default()
                    ),
                )
            })?;
        let is_ecr = resolved.registry == Some(UpstreamRegistry::Ecr);
        check_rule_credentials(
            resolved.credentials,
            is_ecr,
            new.credential_arn.as_deref(),
            new.custom_role_arn.as_deref(),
            resolved.registry,
        )?;
        if let Some(arn) = &new.credential_arn {
            self.cache_secret(&ctx.registry, arn).await?;
        }
        if let Some(role) = &new.custom_role_arn {
            check_role_account(role, &ctx.registry)?;
            self.authorize_pass_role(ctx, role).await?;
        }
        if is_ecr
            && ecr_registry_url(&new.upstream_url).is_some_and(|(account, region)| {
                account == ctx.registry.account_id.as_str()
                    && region == ctx.registry.region.as_str()
            })
        {
            return Err(Error::ecr(
                K::UnsupportedUpstreamRegistry,
                "An ECR upstream must be another registry (account or region) than the rule's own",
            ));
        }
        if self.meta.count_cache_rules(&ctx.registry).await? >= MAX_RULES {
            return Err(Error::ecr(
                K::LimitExceeded,
                format!("The maximum number of pull through cache rules ({MAX_RULES}) has been reached for this registry"),
            ));
        }
        let now = clock::now_ms();
        let rule = CacheRule {
            prefix: new.prefix,
            upstream_url: new.upstream_url,
            upstream_registry: resolved.registry,
            credential_arn: new.credential_arn,
            custom_role_arn: new.custom_role_arn,
            upstream_prefix: new.upstream_prefix.unwrap_or_else(|| "ROOT".into()),
            created_at: now,
            updated_at: None,
        };
        if !self
            .meta
            .insert_cache_rule(&ctx.registry, &rule.prefix, &encode(&rule)?, now)
            .await?
        {
            return Err(Error::ecr(
                K::PullThroughCacheRuleAlreadyExists,
                format!(
                    "A pull through cache rule with prefix '{}' already exists in the registry with id '{}'",
                    rule.prefix, ctx.registry.account_id
                ),
            ));
        }
        Ok(rule)
    }

    /// The registry's rules by prefix; only `prefixes` if given (each must exist).
    pub async fn describe_cache_rules(
        &self,
        ctx: &Context,
        prefixes: Option<&[String]>,
    ) -> Result<Vec<CacheRule>> {
        self.authorize_registry(ctx, Action::DescribePullThroughCacheRules)
            .await?;
        let all = self.cache_rules(&ctx.registry).await?;
        let Some(wanted) = prefixes else {
            return Ok(all);
        };
        wanted
            .iter()
            .map(|p| {
                all.iter()
                    .find(|r| &r.prefix == p)
                    .cloned()
                    .ok_or_else(|| not_found(p, &ctx.registry))
            })
            .collect()
    }

    pub async fn update_cache_rule(
        &self,
        ctx: &Context,
        prefix: &str,
        credential_arn: Option<String>,
        custom_role_arn: Option<String>,
    ) -> Result<CacheRule> {
        self.authorize_registry(ctx, Action::UpdatePullThroughCacheRule)
            .await?;
        let mut rule = self.cache_rule(&ctx.registry, prefix).await?;
        if credential_arn.is_none() && custom_role_arn.is_none() {
            return Err(Error::ecr(
                K::Validation,
                "Either credentialArn or customRoleArn must be provided",
            ));
        }
        let is_ecr = rule.upstream_registry == Some(UpstreamRegistry::Ecr);
        if credential_arn.is_some() && is_ecr {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'credentialArn' failed to satisfy constraint: 'credentialArn is not supported for an ECR upstream registry; use customRoleArn'".into(),
            ));
        }
        if custom_role_arn.is_some() && !is_ecr {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'customRoleArn' failed to satisfy constraint: 'customRoleArn is supported only for an ECR upstream registry'".into(),
            ));
        }
        if let Some(arn) = &credential_arn {
            self.cache_secret(&ctx.registry, arn).await?;
            rule.credential_arn = Some(arn.clone());
        }
        if let Some(role) = &custom_role_arn {
            check_role_account(role, &ctx.registry)?;
            self.authorize_pass_role(ctx, role).await?;
            rule.custom_role_arn = Some(role.clone());
        }
        rule.updated_at = Some(clock::now_ms());
        if !self
            .meta
            .update_cache_rule(&ctx.registry, prefix, &encode(&rule)?)
            .await?
        {
            return Err(not_found(prefix, &ctx.registry));
        }
        Ok(rule)
    }

    pub async fn delete_cache_rule(&self, ctx: &Context, prefix: &str) -> Result<CacheRule> {
        self.authorize_registry(ctx, Action::DeletePullThroughCacheRule)
            .await?;
        let body = self
            .meta
            .delete_cache_rule(&ctx.registry, prefix)
            .await?
            .ok_or_else(|| not_found(prefix, &ctx.registry))?;
        decode(&body)
    }

    /// Read the rule's secret and try its credentials on the upstream.
    pub async fn validate_cache_rule(&self, ctx: &Context, prefix: &str) -> Result<RuleValidation> {
        self.authorize_registry(ctx, Action::ValidatePullThroughCacheRule)
            .await?;
        let rule = self.cache_rule(&ctx.registry, prefix).await?;
        let failure = match self.upstream_source(&ctx.registry, &rule).await {
            Err(e) => Some(e.to_string()),
            Ok(Source::Registry(target)) => match self.upstream.check(&target).await {
                Ok(()) => None,
                Err(e) => Some(e.to_string()),
            },
            // The role may be assumed; what it may read is the upstream's policies' say.
            Ok(Source::Deployment(_)) => None,
        };
        Ok(RuleValidation { rule, failure })
    }

    /// Naming a role for ECR to assume is passing it: `iam:PassRole` on the role.
    async fn authorize_pass_role(&self, ctx: &Context, role: &str) -> Result<()> {
        self.authorize_iam(
            &ctx.principal,
            ctx.source_ip.as_deref(),
            "iam:PassRole",
            role,
            ctx.registry.account_id.as_str(),
            None,
        )
        .await
    }

    async fn cache_rules(&self, registry: &RegistryKey) -> Result<Vec<CacheRule>> {
        Ok(self.cached_rules(registry).await?.to_vec())
    }

    /// The registry's rules, through the read cache (every manifest pull asks).
    async fn cached_rules(&self, registry: &RegistryKey) -> Result<Arc<Vec<CacheRule>>> {
        if let Some(rules) = self.cache.cache_rules(registry) {
            return Ok(rules);
        }
        let seen = self.cache.epoch();
        let rules = self
            .meta
            .cache_rules(registry)
            .await?
            .iter()
            .map(|b| decode(b))
            .collect::<Result<Vec<_>>>()?;
        let rules = Arc::new(rules);
        self.cache.put_cache_rules(seen, registry, rules.clone());
        Ok(rules)
    }

    async fn cache_rule(&self, registry: &RegistryKey, prefix: &str) -> Result<CacheRule> {
        self.cache_rules(registry)
            .await?
            .into_iter()
            .find(|r| r.prefix == prefix)
            .ok_or_else(|| not_found(prefix, registry))
    }

    /// The rule whose prefix covers a repository name: the longest, else `ROOT`.
    pub(super) async fn cache_rule_for(
        &self,
        registry: &RegistryKey,
        name: &str,
    ) -> Result<Option<CacheRule>> {
        let rules = self.cached_rules(registry).await?;
        Ok(rules
            .iter()
            .filter(|r| covers(&r.prefix, name))
            .max_by_key(|r| {
                if r.prefix == "ROOT" {
                    0
                } else {
                    r.prefix.len()
                }
            })
            .cloned())
    }

    /// Where a rule's pulls come from: an upstream registry over HTTP, or, for an ECR
    /// upstream, a registry of this deployment read in-process as the rule's custom role
    /// (which must trust `pullthroughcache.ecr.amazonaws.com`), so that the upstream
    /// repository's and registry's policies decide, as on ECR.
    pub(super) async fn upstream_source(
        &self,
        registry: &RegistryKey,
        rule: &CacheRule,
    ) -> Result<Source> {
        if rule.upstream_registry != Some(UpstreamRegistry::Ecr) {
            return Ok(Source::Registry(
                self.upstream_target(registry, rule).await?,
            ));
        }
        let denied = |m: String| Error::Upstream(UpstreamError::AccessDenied(m));
        let (account, region) = ecr_registry_url(&rule.upstream_url)
            .ok_or_else(|| denied(format!("'{}' is not an ECR registry", rule.upstream_url)))?;
        let upstream = RegistryKey {
            account_id: AccountId::parse(account)
                .ok_or_else(|| denied(format!("'{account}' is not an account id")))?,
            region: Region::parse(region)
                .ok_or_else(|| denied(format!("'{region}' is not a region")))?,
        };
        let role_arn = rule.custom_role_arn.as_deref().unwrap_or_default();
        let untrusted = || {
            denied(format!(
                "the role '{role_arn}' does not exist or does not trust {PULL_THROUGH_SERVICE}"
            ))
        };
        let (role, trust) = self
            .role_with_trust(role_arn)
            .await?
            .ok_or_else(untrusted)?;
        if !trust.trusts_service(PULL_THROUGH_SERVICE, "sts:AssumeRole") {
            return Err(untrusted());
        }
        let session = RoleSession {
            account_id: role.account_id.clone(),
            role_name: role.name.clone(),
            role_id: role.id.clone(),
            role_arn: role.arn.clone(),
            session_name: PULL_THROUGH_SESSION.into(),
        };
        let expires = clock::now_ms() / 1000 + 3600;
        Ok(Source::Deployment(Context {
            registry: upstream,
            principal: Principal::service_role_session(session, expires, PULL_THROUGH_SERVICE),
            source_ip: None,
        }))
    }

    /// Where a rule's requests go and with which credentials (read now from its
    /// secret, as ECR reads it: as the registry, not as the caller).
    async fn upstream_target(&self, registry: &RegistryKey, rule: &CacheRule) -> Result<Target> {
        let credentials = match &rule.credential_arn {
            None => None,
            Some(arn) => {
                let value = self.cache_secret(registry, arn).await?;
                Some(credentials_of(&value).map_err(|m| {
                    Error::Upstream(UpstreamError::AccessDenied(format!(
                        "the secret {arn} cannot be used: {m}"
                    )))
                })?)
            }
        };
        Ok(Target {
            endpoint: self
                .options
                .pull_through
                .upstreams
                .endpoint(&rule.upstream_url),
            credentials,
        })
    }

    /// The current value of a rule's secret, read as ECR reads it.
    async fn cache_secret(&self, registry: &RegistryKey, arn: &str) -> Result<SecretValue> {
        let same_registry = arn.split(':').nth(3) == Some(registry.region.as_str())
            && arn.split(':').nth(4) == Some(registry.account_id.as_str());
        if !same_registry {
            return Err(Error::ecr(
                K::UnableToAccessSecret,
                format!("The secret '{arn}' is not in the registry's account and region, where ECR looks for it"),
            ));
        }
        match self.secret_for_service(registry, arn).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(Error::ecr(
                K::SecretNotFound,
                format!("The secret '{arn}' does not exist"),
            )),
            Err(e) => {
                tracing::warn!(secret = arn, error = %e, "a pull-through cache secret cannot be opened");
                Err(Error::ecr(
                    K::UnableToDecryptSecretValue,
                    format!("The secret '{arn}' cannot be decrypted"),
                ))
            }
        }
    }
}

/// What an expiry run of the cache did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheExpiry {
    /// Cache repositories looked at.
    pub repositories: usize,
    /// Images removed.
    pub expired: usize,
}

const DAY_MS: i64 = 24 * 3600 * 1000;

impl Service {
    /// Remove cached images not pulled (nor cached) for the configured number of days,
    /// as of `now_ms`; nothing when the setting is off. Lifecycle policies apply to
    /// cache repositories as to any other, besides this.
    pub async fn expire_cached_images(&self, now_ms: i64) -> Result<CacheExpiry> {
        let mut run = CacheExpiry::default();
        let Some(days) = self.options.pull_through.expire_unpulled_days else {
            return Ok(run);
        };
        let cutoff = now_ms - i64::from(days) * DAY_MS;
        for (repository_id, registry, name) in self.meta.repositories_with_cache_rules().await? {
            let covered = self
                .cache_rule_for(&registry, &name)
                .await?
                .is_some_and(|r| r.upstream_repository(&name).is_some());
            if !covered {
                continue;
            }
            run.repositories += 1;
            for image in self.meta.lifecycle_images(repository_id).await? {
                let last_used = image.last_pulled_at.unwrap_or(0).max(image.pushed_at);
                if last_used >= cutoff {
                    continue;
                }
                let digest: crate::oci::Digest = image
                    .digest
                    .parse()
                    .map_err(|_| Error::Internal("stored digest is invalid".into()))?;
                let source = crate::meta::EventSource {
                    registry: &registry,
                    repository_id,
                    repository_name: &name,
                    replicated: false,
                };
                if self.meta.delete_manifest(&source, &digest).await?
                    == crate::meta::DeleteOutcome::Deleted
                {
                    tracing::info!(
                        repository = name,
                        digest = image.digest,
                        days,
                        "expired a cached image not pulled for the configured days"
                    );
                    run.expired += 1;
                }
            }
        }
        Ok(run)
    }
}

/// ECR's rules for credentials: required by some upstreams, never for ECR's own
/// (which authenticates with `customRoleArn`).
fn check_rule_credentials(
    need: CredentialNeed,
    is_ecr: bool,
    credential_arn: Option<&str>,
    custom_role_arn: Option<&str>,
    registry: Option<UpstreamRegistry>,
) -> Result<()> {
    let kind = registry.map_or("this upstream registry", UpstreamRegistry::as_str);
    if is_ecr {
        if credential_arn.is_some() {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'credentialArn' failed to satisfy constraint: 'credentialArn is not supported for an ECR upstream registry; use customRoleArn'".into(),
            ));
        }
        if custom_role_arn.is_none() {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'customRoleArn' failed to satisfy constraint: 'customRoleArn is required for an ECR upstream registry'".into(),
            ));
        }
        return Ok(());
    }
    if custom_role_arn.is_some() {
        return Err(Error::InvalidParameter(
            "Invalid parameter at 'customRoleArn' failed to satisfy constraint: 'customRoleArn is supported only for an ECR upstream registry'".into(),
        ));
    }
    if need == CredentialNeed::Required && credential_arn.is_none() {
        return Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'credentialArn' failed to satisfy constraint: 'credentialArn is required for the upstream registry {kind}'"
        )));
    }
    Ok(())
}

/// A custom role must be a role of the registry's own account.
fn check_role_account(role: &str, registry: &RegistryKey) -> Result<()> {
    let prefix = format!("arn:aws:iam::{}:role/", registry.account_id);
    if role.starts_with(&prefix) && role.len() > prefix.len() {
        return Ok(());
    }
    Err(Error::InvalidParameter(format!(
        "Invalid parameter at 'customRoleArn' failed to satisfy constraint: 'must be a role in the registry's account {}'",
        registry.account_id
    )))
}

fn encode(rule: &CacheRule) -> Result<String> {
    serde_json::to_string(rule).map_err(|e| Error::Internal(format!("encoding a rule: {e}")))
}

fn decode(body: &str) -> Result<CacheRule> {
    serde_json::from_str(body).map_err(|e| Error::Internal(format!("decoding a rule: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, upstream_prefix: &str) -> CacheRule {
        CacheRule {
            prefix: prefix.into(),
            upstream_url: "registry-1.docker.io".into(),
            upstream_registry: Some(UpstreamRegistry::DockerHub),
            credential_arn: None,
            custom_role_arn: None,
            upstream_prefix: upstream_prefix.into(),
            created_at: 0,
            updated_at: None,
        }
    }

    #[test]
    fn names_map_to_upstream_repositories() {
        let hub = rule("docker-hub", "ROOT");
        assert_eq!(
            hub.upstream_repository("docker-hub/library/nginx")
                .as_deref(),
            Some("library/nginx")
        );
        assert_eq!(hub.upstream_repository("docker-hubx/nginx"), None);
        assert_eq!(hub.upstream_repository("docker-hub"), None);
        let team = rule("team", "mirror/base");
        assert_eq!(
            team.upstream_repository("team/app").as_deref(),
            Some("mirror/base/app")
        );
        let root = rule("ROOT", "ROOT");
        assert_eq!(root.upstream_repository("a/b").as_deref(), Some("a/b"));
        assert!(covers("docker-hub", "docker-hub/x") && !covers("docker-hub", "docker-hub/"));
    }

    #[test]
    fn secrets_hold_username_and_access_token() {
        let ok = credentials_of(&SecretValue::String(
            r#"{"username":"u","accessToken":"t"}"#.into(),
        ))
        .expect("valid");
        assert_eq!((ok.username.as_str(), ok.secret.as_str()), ("u", "t"));
        for bad in [
            r#"{"username":"u"}"#,
            "not json",
            r#"{"username":"","accessToken":"t"}"#,
        ] {
            assert!(credentials_of(&SecretValue::String(bad.into())).is_err());
        }
        assert!(credentials_of(&SecretValue::Binary(vec![1])).is_err());
    }
}

//! Pull-through cache rules: CreatePullThroughCacheRule, Describe..., Update...,
//! Delete... and Validate..., with ECR's member checks.

use super::*;
use crate::service::{CacheRule, NewCacheRule};
use crate::upstream::registries::UpstreamRegistry;

const PREFIX_PATTERN: &str = "must satisfy regular expression '^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$'";
const CREDENTIAL_PATTERN: &str = "must satisfy regular expression '^arn:aws(-\\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\\-pullthroughcache\\/[a-zA-Z0-9\\/_+=.@-]+$'";

/// A rule prefix (`ecrRepositoryPrefix`, `upstreamRepositoryPrefix`): 2 to 30
/// characters, a repository-name path or `ROOT`; stored without a trailing `/`.
fn rule_prefix(member: &str, raw: &str) -> Result<String, ApiError> {
    check_len_between(member, raw.chars().count(), 2, 30)?;
    crate::service::normalize_prefix(raw).ok_or_else(|| ApiError::invalid(member, PREFIX_PATTERN))
}

fn ecr_prefix(i: &Input) -> Result<String, ApiError> {
    rule_prefix("ecrRepositoryPrefix", i.str_req("ecrRepositoryPrefix")?)
}

/// `credentialArn`: a Secrets Manager ARN under `ecr-pullthroughcache/`, 50 to 612
/// characters.
fn credential_arn(i: &Input) -> Result<Option<String>, ApiError> {
    let Some(arn) = i.str_opt("credentialArn")? else {
        return Ok(None);
    };
    check_len_between("credentialArn", arn.chars().count(), 50, 612)?;
    let ok = arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":secretsmanager:"))
        .filter(|(partition, _)| partition.starts_with("aws"))
        .and_then(|(_, rest)| rest.split_once(":secret:ecr-pullthroughcache/"))
        .is_some_and(|(scope, name)| {
            !scope.is_empty()
                && scope
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        });
    if !ok {
        return Err(ApiError::invalid("credentialArn", CREDENTIAL_PATTERN));
    }
    Ok(Some(arn.to_owned()))
}

fn custom_role_arn(i: &Input) -> Result<Option<String>, ApiError> {
    let role = i.str_opt("customRoleArn")?;
    if let Some(r) = role {
        check_len("customRoleArn", r.chars().count(), 2048)?;
    }
    Ok(role.map(str::to_owned))
}

fn upstream_registry(i: &Input) -> Result<Option<UpstreamRegistry>, ApiError> {
    i.str_opt("upstreamRegistry")?
        .map(|s| {
            UpstreamRegistry::parse(s).ok_or_else(|| {
                let all: Vec<&str> = UpstreamRegistry::ALL.iter().map(|k| k.as_str()).collect();
                ApiError::invalid(
                    "upstreamRegistry",
                    format!("Member must satisfy enum value set: [{}]", all.join(", ")),
                )
            })
        })
        .transpose()
}

/// The members every answer about a rule carries.
fn rule_json(ctx: &Context, r: &CacheRule) -> Value {
    let mut o = json!({
        "ecrRepositoryPrefix": r.prefix,
        "upstreamRegistryUrl": r.upstream_url,
        "createdAt": seconds(r.created_at),
        "registryId": ctx.registry.account_id,
        "upstreamRepositoryPrefix": r.upstream_prefix,
    });
    if let Some(k) = r.upstream_registry {
        o["upstreamRegistry"] = json!(k.as_str());
    }
    if let Some(a) = &r.credential_arn {
        o["credentialArn"] = json!(a);
    }
    if let Some(a) = &r.custom_role_arn {
        o["customRoleArn"] = json!(a);
    }
    if let Some(t) = r.updated_at {
        o["updatedAt"] = seconds(t);
    }
    o
}

/// `rule_json` with only the members an operation's output declares.
fn selected(ctx: &Context, r: &CacheRule, members: &[&str]) -> Value {
    let all = rule_json(ctx, r);
    let mut out = Map::new();
    for m in members {
        if let Some(v) = all.get(*m) {
            out.insert((*m).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

pub(super) async fn create_rule(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = ecr_prefix(i)?;
    let upstream_url = i.str_req("upstreamRegistryUrl")?.to_owned();
    let upstream_prefix = i
        .str_opt("upstreamRepositoryPrefix")?
        .map(|p| rule_prefix("upstreamRepositoryPrefix", p))
        .transpose()?;
    let new = NewCacheRule {
        prefix,
        upstream_url,
        upstream_registry: upstream_registry(i)?,
        credential_arn: credential_arn(i)?,
        custom_role_arn: custom_role_arn(i)?,
        upstream_prefix,
    };
    let rule = service.create_cache_rule(ctx, new).await?;
    Ok(selected(
        ctx,
        &rule,
        &[
            "ecrRepositoryPrefix",
            "upstreamRegistryUrl",
            "createdAt",
            "registryId",
            "upstreamRegistry",
            "credentialArn",
            "customRoleArn",
            "upstreamRepositoryPrefix",
        ],
    ))
}

pub(super) async fn describe_rules(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefixes = i
        .strings("ecrRepositoryPrefixes", 100)?
        .map(|list| {
            list.iter()
                .map(|p| rule_prefix("ecrRepositoryPrefixes", p))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let limit = i.max_results(1000, 100)? as usize;
    let after = i.next_token()?;
    let all = service
        .describe_cache_rules(ctx, prefixes.as_deref())
        .await?;
    let (page, next) = page_after(&all, after.as_deref(), limit, |r| r.prefix.as_str());
    let out = json!({
        "pullThroughCacheRules": page.iter().map(|r| rule_json(ctx, r)).collect::<Vec<_>>(),
    });
    Ok(with_next(out, next))
}

pub(super) async fn update_rule(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = ecr_prefix(i)?;
    let rule = service
        .update_cache_rule(ctx, &prefix, credential_arn(i)?, custom_role_arn(i)?)
        .await?;
    Ok(selected(
        ctx,
        &rule,
        &[
            "ecrRepositoryPrefix",
            "registryId",
            "updatedAt",
            "credentialArn",
            "customRoleArn",
            "upstreamRepositoryPrefix",
        ],
    ))
}

pub(super) async fn delete_rule(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = ecr_prefix(i)?;
    let rule = service.delete_cache_rule(ctx, &prefix).await?;
    Ok(selected(
        ctx,
        &rule,
        &[
            "ecrRepositoryPrefix",
            "upstreamRegistryUrl",
            "createdAt",
            "registryId",
            "credentialArn",
            "customRoleArn",
            "upstreamRepositoryPrefix",
        ],
    ))
}

pub(super) async fn validate_rule(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = ecr_prefix(i)?;
    let v = service.validate_cache_rule(ctx, &prefix).await?;
    let mut out = selected(
        ctx,
        &v.rule,
        &[
            "ecrRepositoryPrefix",
            "registryId",
            "upstreamRegistryUrl",
            "credentialArn",
            "customRoleArn",
            "upstreamRepositoryPrefix",
        ],
    );
    out["isValid"] = json!(v.failure.is_none());
    if let Some(f) = v.failure {
        out["failure"] = json!(f);
    }
    Ok(out)
}

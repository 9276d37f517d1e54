//! Managed signing: PutSigningConfiguration, GetSigningConfiguration,
//! DeleteSigningConfiguration and DescribeImageSigningStatus, with ECR's member checks.

use super::*;
use crate::service::{SigningConfig, SigningFilter, SigningRule};

const MAX_RULES: usize = 10;
const MAX_FILTERS: usize = 100;
const ARN_PATTERN: &str = "must satisfy regular expression '^arn:aws(-[a-z]+)*:signer:[a-z0-9-]+:[0-9]{12}:\\/signing-profiles\\/[a-zA-Z0-9_]{2,}$'";
const FILTER_PATTERN: &str = "must satisfy regular expression '^(?:[a-z0-9*]+(?:[._-][a-z0-9*]+)*/)*[a-z0-9*]+(?:[._-][a-z0-9*]+)*$'";

fn config_json(c: &SigningConfig) -> Value {
    serde_json::to_value(c).unwrap_or_else(|_| json!({ "rules": [] }))
}

fn check_arn(member: &str, arn: &str) -> Result<(), ApiError> {
    check_len(member, arn.len(), 200)?;
    let ok = arn
        .strip_prefix("arn:aws")
        .and_then(|r| r.split_once(":signer:"))
        .filter(|(partition, _)| {
            partition.is_empty()
                || partition
                    .strip_prefix('-')
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        })
        .and_then(|(_, rest)| rest.split_once(':'))
        .filter(|(region, _)| {
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .and_then(|(_, rest)| rest.split_once(":/signing-profiles/"))
        .is_some_and(|(account, name)| {
            account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && name.len() >= 2
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    ok.then_some(())
        .ok_or_else(|| ApiError::invalid(member, ARN_PATTERN))
}

/// A WILDCARD_MATCH filter: path segments of `[a-z0-9*]` runs joined by `.`, `_`, `-`.
fn check_filter(member: &str, f: &str) -> Result<(), ApiError> {
    check_len_between(member, f.len(), 1, 256)?;
    let run_ok = |run: &str| {
        !run.is_empty()
            && run
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'*')
    };
    let segment_ok = |seg: &str| seg.split(['.', '_', '-']).all(run_ok);
    let ok = f.split('/').all(segment_ok);
    ok.then_some(())
        .ok_or_else(|| ApiError::invalid(member, FILTER_PATTERN))
}

fn signing_config(i: &Input) -> Result<SigningConfig, ApiError> {
    let member = "signingConfiguration";
    let Some(v) = i.get(member) else {
        return Err(ApiError::invalid(member, "Member must not be null"));
    };
    let Some(rules) = v.get("rules").filter(|r| !r.is_null()) else {
        return Err(ApiError::invalid(
            "signingConfiguration.rules",
            "Member must not be null",
        ));
    };
    let Some(rules) = rules.as_array() else {
        return Err(ApiError::serialization(
            "Expected a list for 'signingConfiguration.rules'",
        ));
    };
    check_len_between("signingConfiguration.rules", rules.len(), 0, MAX_RULES)?;
    let mut out = Vec::new();
    for (n, r) in rules.iter().enumerate() {
        let m = format!("signingConfiguration.rules.{}.member", n + 1);
        let arn_member = format!("{m}.signingProfileArn");
        let Some(arn) = r.get("signingProfileArn").and_then(Value::as_str) else {
            return Err(ApiError::invalid(&arn_member, "Member must not be null"));
        };
        check_arn(&arn_member, arn)?;
        let mut filters = Vec::new();
        if let Some(fs) = r.get("repositoryFilters").filter(|f| !f.is_null()) {
            let fm = format!("{m}.repositoryFilters");
            let fs = fs
                .as_array()
                .ok_or_else(|| ApiError::serialization(format!("Expected a list for '{fm}'")))?;
            check_len_between(&fm, fs.len(), 1, MAX_FILTERS)?;
            for (k, f) in fs.iter().enumerate() {
                let fmm = format!("{fm}.{}.member", k + 1);
                let filter = f.get("filter").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(&format!("{fmm}.filter"), "Member must not be null")
                })?;
                check_filter(&format!("{fmm}.filter"), filter)?;
                let kind = f.get("filterType").and_then(Value::as_str).unwrap_or("");
                if kind != "WILDCARD_MATCH" {
                    return Err(ApiError::invalid(
                        &format!("{fmm}.filterType"),
                        "Member must satisfy enum value set: [WILDCARD_MATCH]",
                    ));
                }
                filters.push(SigningFilter {
                    filter: filter.to_owned(),
                    filter_type: kind.to_owned(),
                });
            }
        }
        out.push(SigningRule {
            signing_profile_arn: arn.to_owned(),
            repository_filters: filters,
        });
    }
    Ok(SigningConfig { rules: out })
}

pub(super) async fn put_configuration(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let config = signing_config(i)?;
    let stored = service.put_signing_configuration(ctx, config).await?;
    Ok(json!({ "signingConfiguration": config_json(&stored) }))
}

pub(super) async fn get_configuration(service: &Service, ctx: &Context) -> OpResult {
    let c = service.get_signing_configuration(ctx).await?;
    Ok(json!({ "registryId": ctx.registry.account_id, "signingConfiguration": config_json(&c) }))
}

pub(super) async fn delete_configuration(service: &Service, ctx: &Context) -> OpResult {
    let c = service.delete_signing_configuration(ctx).await?;
    Ok(json!({ "registryId": ctx.registry.account_id, "signingConfiguration": config_json(&c) }))
}

pub(super) async fn describe_image_signing_status(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let id = i.image_id()?;
    let (shown, rows) = service
        .describe_image_signing_status(ctx, &name, &id)
        .await?;
    let statuses: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut o = json!({ "signingProfileArn": r.profile_arn, "status": r.status });
            if let Some(c) = &r.failure_code {
                o["failureCode"] = json!(c);
            }
            if let Some(why) = &r.failure_reason {
                o["failureReason"] = json!(why);
            }
            o
        })
        .collect();
    Ok(json!({
        "repositoryName": name.as_str(),
        "imageId": image_id_json(&shown),
        "registryId": ctx.registry.account_id,
        "signingStatuses": statuses,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_arns_and_filters_are_checked_as_ecr_does() {
        assert!(check_arn(
            "a",
            "arn:aws:signer:us-east-1:000000000000:/signing-profiles/my_profile"
        )
        .is_ok());
        assert!(check_arn(
            "a",
            "arn:aws-cn:signer:cn-north-1:000000000000:/signing-profiles/ab"
        )
        .is_ok());
        assert!(check_arn(
            "a",
            "arn:aws:signer:us-east-1:000000000000:/signing-profiles/a"
        )
        .is_err());
        assert!(check_arn(
            "a",
            "arn:aws:ecr:us-east-1:000000000000:/signing-profiles/ab"
        )
        .is_err());
        assert!(check_filter("f", "myapp/*").is_ok());
        assert!(check_filter("f", "*/production").is_ok());
        assert!(check_filter("f", "*prod*").is_ok());
        assert!(check_filter("f", "My/App").is_err());
        assert!(check_filter("f", "a//b").is_err());
    }
}

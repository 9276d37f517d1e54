//! The scanning operations: registry scanning configuration, StartImageScan and
//! DescribeImageScanFindings (see service/scanning.rs for what a scan is in Berth).

use serde_json::{json, Map, Value};

use super::{check_len, image_id_json, parse_repository_name, seconds, Input, OpResult};
use crate::api::ecr::ApiError;
use crate::meta::ScanState;
use crate::service::{
    Context, ImageId, RegistryScanning, RepositoryScanning, ScanningFilter, ScanningRule, Service,
};

/// The status a finished scan reports.
const COMPLETE: &str = "The scan was completed successfully.";

pub(super) async fn put_registry_scanning_configuration(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let scan_type = match i.str_opt("scanType")? {
        None | Some("BASIC") => "BASIC",
        Some("ENHANCED") => "ENHANCED",
        Some(_) => {
            return Err(ApiError::invalid(
                "scanType",
                "Member must satisfy enum value set: [BASIC, ENHANCED]",
            ))
        }
    };
    let rules = match i.array_opt("rules")? {
        Some(r) => r
            .iter()
            .map(|r| scanning_rule(r, scan_type))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if rules.len() > 2 {
        return Err(ApiError::invalid(
            "rules",
            "Member must have length less than or equal to 2",
        ));
    }
    let config = RegistryScanning {
        scan_type: scan_type.to_owned(),
        rules,
    };
    service.put_registry_scanning(ctx, &config).await?;
    Ok(json!({ "registryScanningConfiguration": config_json(&config) }))
}

pub(super) async fn get_registry_scanning_configuration(
    service: &Service,
    ctx: &Context,
) -> OpResult {
    let config = service.registry_scanning(ctx).await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "scanningConfiguration": config_json(&config),
    }))
}

pub(super) async fn batch_get_repository_scanning_configuration(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let Some(names) = i.strings("repositoryNames", 25)? else {
        return Err(ApiError::invalid(
            "repositoryNames",
            "Member must not be null",
        ));
    };
    check_len("repositoryNames", names.len(), 25)?;
    let names = names
        .iter()
        .map(|n| parse_repository_name("repositoryNames", n))
        .collect::<Result<Vec<_>, _>>()?;
    let (found, missing) = service.repository_scanning(ctx, &names).await?;
    let configs: Vec<Value> = found
        .iter()
        .map(|r| repository_scanning_json(ctx, r))
        .collect();
    let failures: Vec<Value> = missing
        .iter()
        .map(|n| {
            json!({
                "repositoryName": n.as_str(),
                // ECR repeats the code as the reason.
                "failureCode": "REPOSITORY_NOT_FOUND",
                "failureReason": "REPOSITORY_NOT_FOUND",
            })
        })
        .collect();
    Ok(json!({ "scanningConfigurations": configs, "failures": failures }))
}

pub(super) async fn start_image_scan(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let id = i.image_id()?;
    let digest = service.start_image_scan(ctx, &name, &id).await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "imageId": scanned_id(&id, digest),
        "imageScanStatus": { "status": "IN_PROGRESS" },
    }))
}

pub(super) async fn describe_image_scan_findings(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let id = i.image_id()?;
    // Validated although a scan here never finds anything to page through.
    i.max_results(1000, 100)?;
    i.next_token()?;
    let (digest, state) = service.image_scan(ctx, &name, &id).await?;
    let mut out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "imageId": scanned_id(&id, digest),
        "imageScanStatus": scan_status(state),
    });
    if let ScanState::Complete { at } = state {
        out["imageScanFindings"] = json!({
            "imageScanCompletedAt": seconds(at),
            "vulnerabilitySourceUpdatedAt": seconds(at),
            "findingSeverityCounts": {},
            "findings": [],
        });
    }
    Ok(out)
}

fn scan_status(state: ScanState) -> Value {
    match state {
        ScanState::InProgress => json!({ "status": "IN_PROGRESS" }),
        ScanState::Complete { .. } => json!({ "status": "COMPLETE", "description": COMPLETE }),
    }
}

/// DescribeImages' scan members for an image's latest scan.
pub(super) fn scan_summary(o: &mut Map<String, Value>, state: ScanState) {
    o.insert("imageScanStatus".into(), scan_status(state));
    if let ScanState::Complete { at } = state {
        o.insert(
            "imageScanFindingsSummary".into(),
            json!({
                "imageScanCompletedAt": seconds(at),
                "vulnerabilitySourceUpdatedAt": seconds(at),
                "findingSeverityCounts": {},
            }),
        );
    }
}

/// The image id a scan answers with: the digest resolved, the tag as asked.
fn scanned_id(asked: &ImageId, digest: String) -> Value {
    image_id_json(&ImageId {
        digest: Some(digest),
        tag: asked.tag.clone(),
    })
}

fn config_json(c: &RegistryScanning) -> Value {
    json!({ "scanType": c.scan_type, "rules": c.rules })
}

fn repository_scanning_json(ctx: &Context, r: &RepositoryScanning) -> Value {
    json!({
        "repositoryArn": Service::repository_arn(ctx, &r.name),
        "repositoryName": r.name.as_str(),
        "scanOnPush": r.scan_on_push,
        "scanFrequency": r.frequency,
        "appliedScanFilters": r.applied,
    })
}

pub(super) fn scanning_rule(v: &Value, scan_type: &str) -> Result<ScanningRule, ApiError> {
    let invalid = |m: &str| ApiError::invalid("rules", m);
    let frequency = match v.get("scanFrequency").and_then(Value::as_str) {
        Some(f @ ("SCAN_ON_PUSH" | "CONTINUOUS_SCAN" | "MANUAL")) => f,
        Some(_) => {
            return Err(invalid(
                "Member must satisfy enum value set: [SCAN_ON_PUSH, CONTINUOUS_SCAN, MANUAL]",
            ))
        }
        None => return Err(invalid("Member must not be null")),
    };
    let allowed: &[&str] = if scan_type == "BASIC" {
        &["SCAN_ON_PUSH"]
    } else {
        &["SCAN_ON_PUSH", "CONTINUOUS_SCAN"]
    };
    if !allowed.contains(&frequency) {
        return Err(invalid(&format!(
            "Scan frequency {frequency} is not supported for scan type {scan_type}"
        )));
    }
    let Some(filters) = v.get("repositoryFilters").and_then(Value::as_array) else {
        return Err(invalid("Member must not be null"));
    };
    if filters.len() > 100 {
        return Err(invalid("Member must have length less than or equal to 100"));
    }
    let filters = filters
        .iter()
        .map(scanning_filter)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ScanningRule {
        scan_frequency: frequency.to_owned(),
        repository_filters: filters,
    })
}

fn scanning_filter(v: &Value) -> Result<ScanningFilter, ApiError> {
    let invalid = |m: &str| ApiError::invalid("repositoryFilters", m);
    let filter = v
        .get("filter")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("Member must not be null"))?;
    if !(1..=255).contains(&filter.len()) || !is_filter(filter) {
        return Err(invalid(
            "Member must satisfy regular expression '^[a-z0-9*](?:[._\\-/a-z0-9*]?[a-z0-9*]+)*$'",
        ));
    }
    match v.get("filterType").and_then(Value::as_str) {
        Some("WILDCARD") => Ok(ScanningFilter {
            filter: filter.to_owned(),
            filter_type: "WILDCARD".to_owned(),
        }),
        Some(_) => Err(invalid("Member must satisfy enum value set: [WILDCARD]")),
        None => Err(invalid("Member must not be null")),
    }
}

/// `^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$`: runs of lower-case letters, digits and
/// `*`, separated by single `.`, `_`, `-` or `/`.
fn is_filter(s: &str) -> bool {
    let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '*';
    let sep = |c: char| matches!(c, '.' | '_' | '-' | '/');
    let mut prev_sep = true; // the first character must be a word character
    for c in s.chars() {
        if word(c) {
            prev_sep = false;
        } else if sep(c) && !prev_sep {
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

#[cfg(test)]
mod tests {
    use super::is_filter;

    #[test]
    fn filters_follow_ecr_pattern() {
        for ok in ["*", "prod", "team/*", "a.b-c_d/e*", "*-dev"] {
            assert!(is_filter(ok), "{ok}");
        }
        for bad in ["", "Prod", "a//b", "/a", "a/", "a b", "a?"] {
            assert!(!is_filter(bad), "{bad}");
        }
    }
}

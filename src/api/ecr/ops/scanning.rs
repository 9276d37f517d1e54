//! The scanning operations: registry scanning configuration, StartImageScan and
//! DescribeImageScanFindings (see service/scanning.rs for what a scan is in Berth).

use serde_json::{json, Map, Value};

use super::enhanced_findings::{self, Subject};
use super::{check_len, image_id_json, parse_repository_name, seconds, Input, OpResult};
use crate::api::ecr::ApiError;
use crate::meta::{ScanResult, ScanState, ScanStatus};
use crate::scan_rules::{self, ScanFrequency, ScanType, ScanningFilter, ScanningRule};
use crate::service::{Context, ImageId, RegistryScanning, RepositoryScanning, Service};
use crate::vulndb::Finding;

/// The status a finished scan reports.
const COMPLETE: &str = "The scan was completed successfully.";

pub(super) async fn put_registry_scanning_configuration(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let scan_type = match i.str_opt("scanType")? {
        None => ScanType::Basic,
        Some(t) => ScanType::parse(t).map_err(|e| ApiError::invalid(e.member(), e))?,
    };
    let rules = match i.array_opt("rules")? {
        Some(r) => r
            .iter()
            .map(|r| scanning_rule(r, scan_type))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    scan_rules::check_rules(&rules).map_err(|e| ApiError::invalid(e.member(), e))?;
    let config = RegistryScanning { scan_type, rules };
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
    let limit = i.max_results(1000, 100)?;
    let after = i.next_token()?;
    let (digest, state, page) = service
        .image_scan(ctx, &name, &id, after.as_deref(), limit)
        .await?;
    let mut out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "imageId": scanned_id(&id, digest),
        "imageScanStatus": scan_status(&state),
    });
    if let Some(result) = completed(&state) {
        let mut findings = summary(result);
        if result.status == ScanStatus::Active {
            let subject = Subject {
                ctx,
                repository: name.as_str(),
                digest: out["imageId"]["imageDigest"].as_str().unwrap_or_default(),
                scan: result,
            };
            let enhanced: Vec<Value> = page
                .items
                .iter()
                .map(|f| enhanced_findings::finding_json(&subject, f))
                .collect();
            findings["enhancedFindings"] = enhanced.into();
        } else {
            findings["findings"] = page.items.iter().map(finding_json).collect();
        }
        out["imageScanFindings"] = findings;
    }
    if let Some(next) = &page.next {
        out["nextToken"] = json!(super::token(next));
    }
    Ok(out)
}

fn scan_status(state: &ScanState) -> Value {
    match state {
        ScanState::InProgress => json!({ "status": "IN_PROGRESS" }),
        ScanState::Done(r) => json!({
            "status": r.status.as_str(),
            "description": r.description.as_deref().unwrap_or(COMPLETE),
        }),
    }
}

fn completed(state: &ScanState) -> Option<&ScanResult> {
    match state {
        ScanState::Done(r) if matches!(r.status, ScanStatus::Complete | ScanStatus::Active) => {
            Some(r)
        }
        _ => None,
    }
}

/// The summary members of a completed scan (DescribeImages shows these alone).
fn summary(r: &ScanResult) -> Value {
    let counts: Map<String, Value> = r
        .counts
        .iter()
        .map(|(severity, n)| (severity.as_str().to_owned(), json!(n)))
        .collect();
    json!({
        "imageScanCompletedAt": seconds(r.at),
        "vulnerabilitySourceUpdatedAt": seconds(r.source_updated_at.unwrap_or(r.at)),
        "findingSeverityCounts": counts,
    })
}

/// A finding in ECR's basic-scan shape: attributes as key/value pairs.
fn finding_json(f: &Finding) -> Value {
    let mut attributes = vec![
        json!({ "key": "package_version", "value": f.package_version }),
        json!({ "key": "package_name", "value": f.package_name }),
    ];
    if let (Some(vector), Some(score)) = (&f.cvss3_vector, f.cvss3_score) {
        attributes.push(json!({ "key": "CVSS3_VECTOR", "value": vector }));
        attributes.push(
            json!({ "key": "CVSS3_SCORE", "value": format!("{}.{}", score / 10, score % 10) }),
        );
    }
    if let Some(fixed) = &f.fixed_in {
        attributes.push(json!({ "key": "fixed_in_version", "value": fixed }));
    }
    json!({
        "name": f.name,
        "description": f.description,
        "uri": f.uri,
        "severity": f.severity.as_str(),
        "attributes": attributes,
    })
}

/// DescribeImages' scan members for an image's latest scan.
pub(super) fn scan_summary(o: &mut Map<String, Value>, state: &ScanState) {
    o.insert("imageScanStatus".into(), scan_status(state));
    if let Some(result) = completed(state) {
        o.insert("imageScanFindingsSummary".into(), summary(result));
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
    json!({ "scanType": c.scan_type.as_str(), "rules": c.rules })
}

fn repository_scanning_json(ctx: &Context, r: &RepositoryScanning) -> Value {
    json!({
        "repositoryArn": Service::repository_arn(ctx, &r.name),
        "repositoryName": r.name.as_str(),
        "scanOnPush": r.scan_on_push,
        "scanFrequency": r.frequency.as_str(),
        "appliedScanFilters": r.applied,
    })
}

/// A rule of a PutRegistryScanningConfiguration, under `scan_type`, checked in the
/// order ECR reports: frequency, filter count, then each filter.
pub(super) fn scanning_rule(v: &Value, scan_type: ScanType) -> Result<ScanningRule, ApiError> {
    let invalid = |e: scan_rules::Invalid| ApiError::invalid(e.member(), e);
    let null = |member| ApiError::invalid(member, "Member must not be null");
    let frequency = v
        .get("scanFrequency")
        .and_then(Value::as_str)
        .ok_or_else(|| null("rules"))?;
    let frequency = ScanFrequency::parse(frequency).map_err(invalid)?;
    scan_type.check(frequency).map_err(invalid)?;
    let filters = v
        .get("repositoryFilters")
        .and_then(Value::as_array)
        .ok_or_else(|| null("rules"))?;
    scan_rules::check_filter_count(filters.len()).map_err(invalid)?;
    let filters = filters
        .iter()
        .map(|f| {
            let filter = f.get("filter").and_then(Value::as_str);
            let filter = filter.ok_or_else(|| null("repositoryFilters"))?;
            let filter_type = f.get("filterType").and_then(Value::as_str);
            match ScanningFilter::parse(filter, filter_type.unwrap_or("WILDCARD")) {
                Err(e) => Err(invalid(e)),
                Ok(_) if filter_type.is_none() => Err(null("repositoryFilters")),
                Ok(f) => Ok(f),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    ScanningRule::new(scan_type, frequency, filters).map_err(invalid)
}

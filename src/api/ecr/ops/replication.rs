//! Replication: PutReplicationConfiguration, DescribeImageReplicationStatus and the
//! four backfill operations, with ECR's member checks.

use super::*;
use crate::meta::{BackfillItem, BackfillRow, Destination};
use crate::service::{
    DeleteReplication, ReplicationConfig, ReplicationRule, RepositoryFilter, ResultStatus,
    RuleDestination,
};

const MAX_RULES: usize = 25;
const MAX_DESTINATIONS_PER_RULE: usize = 100;
const MAX_FILTERS: usize = 100;
const REGION_PATTERN: &str = "must satisfy regular expression '[0-9a-z-]{2,25}'";
const REGISTRY_PATTERN: &str = "must satisfy regular expression '[0-9]{12}'";
const FILTER_PATTERN: &str = "must satisfy regular expression '^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$'";
const BACKFILL_ID_PATTERN: &str = "must satisfy regular expression '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'";

/// The configuration as ECR shows it (DescribeRegistry, PutReplicationConfiguration).
pub(super) fn config_json(config: &ReplicationConfig) -> Value {
    serde_json::to_value(config).unwrap_or_else(|_| json!({ "rules": [] }))
}

fn object<'a>(v: &'a Value, member: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::serialization(format!("Expected a structure for '{member}'")))
}

fn list<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    member: &str,
) -> Result<Option<&'a Vec<Value>>, ApiError> {
    match o.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(ApiError::serialization(format!(
            "Expected a list for '{member}'"
        ))),
    }
}

fn string<'a>(o: &'a Map<String, Value>, key: &str, member: &str) -> Result<&'a str, ApiError> {
    match o.get(key).filter(|v| !v.is_null()) {
        None => Err(ApiError::invalid(member, "Member must not be null")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::serialization(format!(
            "Expected a string for '{member}'"
        ))),
    }
}

fn check_region(member: &str, s: &str) -> Result<(), ApiError> {
    let ok = (2..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-');
    ok.then_some(())
        .ok_or_else(|| ApiError::invalid(member, REGION_PATTERN))
}

fn check_registry_id(member: &str, s: &str) -> Result<(), ApiError> {
    let ok = s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(())
        .ok_or_else(|| ApiError::invalid(member, REGISTRY_PATTERN))
}

/// A repository filter value: 2 to 256 characters of a repository-name prefix (whole
/// path segments, then the start of one).
fn check_filter(member: &str, s: &str) -> Result<(), ApiError> {
    check_len_between(member, s.chars().count(), 2, 256)?;
    let allowed = |seg: &str| {
        seg.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    let whole = |seg: &str| {
        seg.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) && allowed(seg)
    };
    let segments: Vec<&str> = s.split('/').collect();
    let (last, full) = segments.split_last().unwrap_or((&"", &[]));
    let ok = full.iter().all(|seg| whole(seg)) && allowed(last);
    ok.then_some(())
        .ok_or_else(|| ApiError::invalid(member, FILTER_PATTERN))
}

fn destination(v: &Value, member: &str) -> Result<RuleDestination, ApiError> {
    let o = object(v, member)?;
    let region = string(o, "region", &format!("{member}.region"))?;
    check_region(&format!("{member}.region"), region)?;
    let registry_id = string(o, "registryId", &format!("{member}.registryId"))?;
    check_registry_id(&format!("{member}.registryId"), registry_id)?;
    Ok(RuleDestination {
        region: region.to_owned(),
        registry_id: registry_id.to_owned(),
    })
}

fn rule(v: &Value, member: &str) -> Result<ReplicationRule, ApiError> {
    let o = object(v, member)?;
    let dests_member = format!("{member}.destinations");
    let Some(dests) = list(o, "destinations", &dests_member)? else {
        return Err(ApiError::invalid(&dests_member, "Member must not be null"));
    };
    check_len_between(&dests_member, dests.len(), 0, MAX_DESTINATIONS_PER_RULE)?;
    let destinations = dests
        .iter()
        .enumerate()
        .map(|(n, d)| destination(d, &format!("{dests_member}.{}.member", n + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let filters_member = format!("{member}.repositoryFilters");
    let mut repository_filters = Vec::new();
    if let Some(filters) = list(o, "repositoryFilters", &filters_member)? {
        check_len_between(&filters_member, filters.len(), 1, MAX_FILTERS)?;
        for (n, f) in filters.iter().enumerate() {
            let m = format!("{filters_member}.{}.member", n + 1);
            let fo = object(f, &m)?;
            let filter = string(fo, "filter", &format!("{m}.filter"))?;
            check_filter(&format!("{m}.filter"), filter)?;
            let kind = string(fo, "filterType", &format!("{m}.filterType"))?;
            if kind != "PREFIX_MATCH" {
                return Err(ApiError::invalid(
                    &format!("{m}.filterType"),
                    "Member must satisfy enum value set: [PREFIX_MATCH]",
                ));
            }
            repository_filters.push(RepositoryFilter {
                filter: filter.to_owned(),
                filter_type: kind.to_owned(),
            });
        }
    }
    let delete_replication = match o.get("deleteReplication").filter(|v| !v.is_null()) {
        None => None,
        Some(d) => {
            let m = format!("{member}.deleteReplication");
            match object(d, &m)?.get("enabled") {
                Some(Value::Bool(enabled)) => Some(DeleteReplication { enabled: *enabled }),
                None | Some(Value::Null) => {
                    return Err(ApiError::invalid(
                        &format!("{m}.enabled"),
                        "Member must not be null",
                    ))
                }
                Some(_) => {
                    return Err(ApiError::serialization(format!(
                        "Expected a boolean for '{m}.enabled'"
                    )))
                }
            }
        }
    };
    Ok(ReplicationRule {
        destinations,
        repository_filters,
        delete_replication,
    })
}

fn replication_config(i: &Input) -> Result<ReplicationConfig, ApiError> {
    let member = "replicationConfiguration";
    let Some(v) = i.get(member) else {
        return Err(ApiError::invalid(member, "Member must not be null"));
    };
    let o = object(v, member)?;
    let rules_member = "replicationConfiguration.rules";
    let Some(rules) = list(o, "rules", rules_member)? else {
        return Err(ApiError::invalid(rules_member, "Member must not be null"));
    };
    check_len_between(rules_member, rules.len(), 0, MAX_RULES)?;
    let rules = rules
        .iter()
        .enumerate()
        .map(|(n, r)| rule(r, &format!("{rules_member}.{}.member", n + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReplicationConfig { rules })
}

pub(super) async fn put_replication_configuration(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let config = replication_config(i)?;
    let stored = service.put_replication_configuration(ctx, config).await?;
    Ok(json!({ "replicationConfiguration": config_json(&stored) }))
}

pub(super) async fn describe_image_replication_status(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let id = i.image_id()?;
    let (shown, statuses) = service
        .describe_image_replication_status(ctx, &name, &id)
        .await?;
    let statuses: Vec<Value> = statuses
        .iter()
        .map(|s| {
            let mut o = json!({
                "region": s.destination.region,
                "registryId": s.destination.account_id,
                "status": s.status,
            });
            if let Some(c) = &s.failure_code {
                o["failureCode"] = json!(c);
            }
            o
        })
        .collect();
    Ok(json!({
        "repositoryName": name.as_str(),
        "imageId": image_id_json(&shown),
        "replicationStatuses": statuses,
    }))
}

fn destination_json(d: &Destination) -> Value {
    json!({ "region": d.region, "registryId": d.account_id })
}

/// The members StartReplicationBackfill and StopReplicationBackfill answer with.
fn run_head(run: &BackfillRow) -> Value {
    json!({
        "replicationBackfillId": run.id,
        "registryId": run.registry.account_id,
        "destination": destination_json(&run.destination),
        "status": run.status,
        "startedAt": seconds(run.started_at),
    })
}

/// A run's members beyond its head: failure code, progress (once planned), end.
fn run_details(run: &BackfillRow, o: &mut Map<String, Value>) {
    put_opt(
        o,
        "failureCode",
        run.failure_code.as_ref().map(|c| json!(c)),
    );
    put_opt(
        o,
        "progress",
        run.total.map(|total| {
            json!({
                "totalReplicationCount": total,
                "completedReplicationCount": run.completed,
                "failedReplicationCount": run.failed,
                "failureCodes": run.failure_codes,
            })
        }),
    );
    put_opt(o, "endedAt", run.ended_at.map(seconds));
}

fn backfill_id(i: &Input) -> Result<String, ApiError> {
    let id = i.str_req("replicationBackfillId")?;
    uuid::Uuid::try_parse(id)
        .ok()
        .filter(|_| id.len() == 36)
        .map(|_| id.to_owned())
        .ok_or_else(|| ApiError::invalid("replicationBackfillId", BACKFILL_ID_PATTERN))
}

pub(super) async fn start_backfill(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let Some(d) = i.get("destination") else {
        return Err(ApiError::invalid("destination", "Member must not be null"));
    };
    let d = destination(d, "destination")?;
    let run = service
        .start_replication_backfill(ctx, d.destination())
        .await?;
    Ok(run_head(&run))
}

pub(super) async fn stop_backfill(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let id = backfill_id(i)?;
    let run = service.stop_replication_backfill(ctx, &id).await?;
    Ok(run_head(&run))
}

pub(super) async fn list_backfills(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let limit = i.max_results(50, 25)?;
    let after = i.next_token()?;
    let page = service
        .list_replication_backfills(ctx, after.as_deref(), limit as usize)
        .await?;
    let backfills: Vec<Value> = page
        .items
        .iter()
        .map(|run| {
            let mut o = Map::new();
            o.insert("replicationBackfillId".into(), json!(run.id));
            o.insert("destination".into(), destination_json(&run.destination));
            o.insert("status".into(), json!(run.status));
            o.insert("startedAt".into(), seconds(run.started_at));
            run_details(run, &mut o);
            Value::Object(o)
        })
        .collect();
    Ok(with_next(
        json!({ "registryId": ctx.registry.account_id, "backfills": backfills }),
        page.next,
    ))
}

fn result_json(item: &BackfillItem) -> Value {
    let mut o = json!({
        "repositoryName": item.repository_name,
        "imageId": image_id_json(&ImageId {
            digest: Some(item.digest.clone()),
            tag: item.tag.clone(),
        }),
        "status": item.status,
    });
    if let Some(c) = &item.failure_code {
        o["failureCode"] = json!(c);
    }
    if !item.sub_failure_codes.is_empty() {
        o["subImageFailureCodes"] = json!(item.sub_failure_codes);
    }
    o
}

pub(super) async fn describe_backfill_results(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let id = backfill_id(i)?;
    let filter = match i.str_opt("resultStatusFilter")? {
        None => None,
        Some("COMPLETE") => Some(ResultStatus::Complete),
        Some("FAILED") => Some(ResultStatus::Failed),
        Some(_) => {
            return Err(ApiError::invalid(
                "resultStatusFilter",
                "Member must satisfy enum value set: [COMPLETE, FAILED]",
            ))
        }
    };
    let limit = i.max_results(1000, 100)?;
    let after = match i.next_token()? {
        None => 0,
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| ApiError::invalid("nextToken", "Invalid NextToken"))?,
    };
    let (run, page) = service
        .describe_replication_backfill_results(ctx, &id, filter, after, i64::from(limit))
        .await?;
    let mut o = Map::new();
    o.insert("registryId".into(), json!(run.registry.account_id));
    o.insert("replicationBackfillId".into(), json!(run.id));
    o.insert("destination".into(), destination_json(&run.destination));
    o.insert("status".into(), json!(run.status));
    o.insert("startedAt".into(), seconds(run.started_at));
    run_details(&run, &mut o);
    o.insert(
        "results".into(),
        Value::Array(page.items.iter().map(result_json).collect()),
    );
    Ok(with_next(Value::Object(o), page.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_repository_name_prefixes() {
        for ok in ["prod", "team/app", "team/", "a1", "my-team/app_1", "-x"] {
            assert!(check_filter("f", ok).is_ok(), "{ok}");
        }
        for bad in ["P", "a", "team//x", "-x/y", "a*"] {
            assert!(check_filter("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_configuration_is_read_with_its_limits() {
        let ok = Input(json!({"replicationConfiguration": {"rules": [
            {"destinations": [{"region": "eu-west-1", "registryId": "111111111111"}],
             "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}],
             "deleteReplication": {"enabled": true}}]}}));
        let c = replication_config(&ok).expect("valid");
        assert_eq!(
            c.rules[0].delete_replication,
            Some(DeleteReplication { enabled: true })
        );
        let bad_region = Input(json!({"replicationConfiguration": {"rules": [
            {"destinations": [{"region": "EU", "registryId": "111111111111"}]}]}}));
        let e = replication_config(&bad_region).expect_err("invalid");
        assert!(
            e.message
                .contains("rules.1.member.destinations.1.member.region"),
            "{}",
            e.message
        );
        let bad_type = Input(json!({"replicationConfiguration": {"rules": [
            {"destinations": [], "repositoryFilters": [{"filter": "ab", "filterType": "WILDCARD"}]}]}}));
        assert!(replication_config(&bad_type).is_err());
        let no_rules = Input(json!({"replicationConfiguration": {}}));
        assert!(replication_config(&no_rules).is_err());
    }
}

//! The ECR JSON input layer run over an arbitrary request body, for the fuzz targets
//! (`crate::fuzzing::ecr_input`): every pure accessor and validator of [`Input`], the
//! way the operations call them, with no service call.

use serde_json::{json, Value};

use super::scanning::scanning_rule;
use super::{
    check_len, encryption, lifecycle_text, mutability, page_after, parse_digest,
    parse_repository_name, parse_tag, policy_text, repository_from_arn, resource_tags,
    template_input, template_prefix, token, with_next, Input,
};
use crate::aws::{AccountId, Region};
use crate::meta::RegistryKey;
use crate::service::{Context, Principal};

/// Run the input layer over `v` (a request body already parsed as JSON). Results are
/// dropped: only a panic is a failure. Checks one invariant: a `nextToken` this layer
/// writes reads back as the position it encodes.
pub(crate) fn exercise_input(v: Value) {
    // What the ECR front end checks before dispatching (api/ecr/mod.rs).
    if let Some(Value::String(id)) = v.get("registryId") {
        let _ = crate::aws::is_account_id(id);
    }
    let ctx = Context {
        registry: RegistryKey {
            account_id: AccountId::parse("123456789012").expect("an account id"),
            region: Region::parse("us-east-1").expect("a region"),
        },
        principal: Principal::system_as_root("123456789012", "fuzzing"),
        source_ip: None,
    };
    let i = Input(v);

    for key in [
        "repositoryName",
        "uploadId",
        "imageManifest",
        "imageManifestMediaType",
        "imageTag",
        "imageDigest",
        "layerDigest",
        "layerPartBlob",
        "resourceArn",
        "targetStorageClass",
        "name",
        "value",
        "principalArn",
        "scanType",
        "description",
    ] {
        let _ = i.str_opt(key);
        let _ = i.str_req(key);
    }
    let _ = i.bool_opt("force");
    for key in ["partFirstByte", "partLastByte", "maxResults"] {
        let _ = i.i64_opt(key);
    }
    for (key, max) in [
        ("repositoryNames", 100),
        ("registryIds", 10),
        ("layerDigests", 100),
        ("acceptedMediaTypes", 100),
        ("tagKeys", 200),
        ("appliedFor", 3),
        ("prefixes", 100),
    ] {
        if let Ok(Some(list)) = i.strings(key, max) {
            for s in &list {
                let _ = parse_repository_name(key, s);
                let _ = parse_digest(key, s);
                let _ = crate::service::normalize_prefix(s);
                let _ = crate::aws::is_account_id(s);
            }
        }
    }
    let _ = i.repository_name();
    let mut limit = 20;
    for (max, default) in [(1000, 100), (100, 100), (50, 20)] {
        if let Ok(n) = i.max_results(max, default) {
            limit = n;
        }
    }
    let after = i.next_token().ok().flatten();
    let _ = i.tag_status();
    let _ = i.image_status();
    let _ = i.image_filter();
    let _ = i.image_id();
    let _ = i.image_ids("imageIds", true);
    let _ = i.image_ids("imageIds", false);
    let _ = check_len(
        "imageIds",
        i.array_opt("imageIds").ok().flatten().map_or(0, Vec::len),
        100,
    );

    // Members parsed into OCI types.
    if let Ok(Some(t)) = i.str_opt("imageTag") {
        let _ = parse_tag("imageTag", t);
    }
    for key in ["imageDigest", "layerDigest"] {
        if let Ok(Some(d)) = i.str_opt(key) {
            let _ = parse_digest(key, d);
        }
    }
    if let Some(d) = i
        .get("subjectId")
        .and_then(|s| s.get("imageDigest"))
        .and_then(Value::as_str)
    {
        let _ = parse_digest("subjectId.imageDigest", d);
    }
    // PutImage hands the manifest to the manifest parser.
    if let Ok(Some(m)) = i.str_opt("imageManifest") {
        let media_type = i.str_opt("imageManifestMediaType").ok().flatten();
        let _ = crate::oci::manifest::parse(m.as_bytes(), media_type);
    }

    // Policies and their parsers.
    if let Ok(text) = policy_text(&i) {
        let _ = crate::iam::policy::Policy::parse(text, crate::iam::policy::PolicyKind::Resource);
    }
    for required in [true, false] {
        if let Ok(Some(text)) = lifecycle_text(&i, required) {
            let _ = crate::lifecycle::policy::LifecyclePolicy::parse(text);
        }
    }

    // Repository settings, tags, templates, ARNs.
    let _ = mutability(&i);
    let _ = encryption(&i, &ctx);
    let _ = resource_tags(&i, "tags");
    let _ = resource_tags(&i, "resourceTags");
    let _ = template_prefix(&i);
    let _ = template_input(&i, &ctx);
    if let Ok(Some(arn)) = i.str_opt("resourceArn") {
        let _ = repository_from_arn(&ctx, arn);
    }

    // Registry scanning configuration.
    let scan_type = match i.str_opt("scanType") {
        Ok(Some("ENHANCED")) => crate::scan_rules::ScanType::Enhanced,
        _ => crate::scan_rules::ScanType::Basic,
    };
    if let Ok(Some(rules)) = i.array_opt("rules") {
        for r in rules {
            let _ = scanning_rule(r, scan_type);
        }
    }

    // Paging over the strings the body lists, from the position its nextToken names;
    // the token written for the next page must read back as that position.
    let mut keys: Vec<String> = i
        .array_opt("repositoryNames")
        .ok()
        .flatten()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    let (_, next) = page_after(&keys, after.as_deref(), limit as usize, String::as_str);
    if let Some(position) = &next {
        let round_trip = Input(json!({ "nextToken": token(position) })).next_token();
        assert_eq!(
            round_trip.ok().flatten().as_deref(),
            Some(position.as_str()),
            "a nextToken must read back as the position it encodes"
        );
    }
    let _ = with_next(json!({}), next);
}

//! Lifecycle policies, repository creation templates, account settings and pull-time
//! update exclusions.

use super::*;
use crate::storage_class::StorageClass;

/// `lifecyclePolicyText`: 100 to 30,720 characters.
pub(super) fn lifecycle_text(i: &Input, required: bool) -> Result<Option<&str>, ApiError> {
    let text = if required {
        Some(i.str_req("lifecyclePolicyText")?)
    } else {
        i.str_opt("lifecyclePolicyText")?
    };
    if let Some(t) = text {
        check_len_between("lifecyclePolicyText", t.chars().count(), 100, 30_720)?;
    }
    Ok(text)
}

pub(super) async fn put_lifecycle_policy(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let text = lifecycle_text(i, true)?.unwrap_or_default();
    service.put_lifecycle_policy(ctx, &name, text).await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
    }))
}

pub(super) async fn lifecycle_policy(
    service: &Service,
    ctx: &Context,
    i: &Input,
    delete: bool,
) -> OpResult {
    let name = i.repository_name()?;
    let info = service.lifecycle_policy(ctx, &name, delete).await?;
    let mut out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": info.text,
    });
    // ECR always says when the policy last ran: the epoch when it never has.
    if let Some(o) = out.as_object_mut() {
        o.insert(
            "lastEvaluatedAt".into(),
            seconds(info.last_evaluated_at.unwrap_or(0)),
        );
    }
    Ok(out)
}

pub(super) async fn start_lifecycle_policy_preview(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let text = lifecycle_text(i, false)?;
    let text = service.start_lifecycle_preview(ctx, &name, text).await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
        "status": "IN_PROGRESS",
    }))
}

pub(super) async fn get_lifecycle_policy_preview(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let limit = i.max_results(100, 100)? as usize;
    let after = i.next_token()?;
    let tagged = i.tag_status()?;
    let wanted = i.image_ids("imageIds", false)?;
    let preview = service.lifecycle_preview(ctx, &name).await?;
    let expiring = preview
        .results
        .iter()
        .filter(|r| r.action == "EXPIRE")
        .count();
    let transitioning = preview.results.len() - expiring;
    let selected: Vec<_> = preview
        .results
        .iter()
        .filter(|r| tagged.is_none_or(|t| t != r.tags.is_empty()))
        .filter(|r| {
            wanted.as_ref().is_none_or(|ids| {
                ids.iter().any(|id| {
                    id.digest.as_deref() == Some(r.digest.as_str())
                        || id.tag.as_ref().is_some_and(|t| r.tags.contains(t))
                })
            })
        })
        .collect();
    let (page, next) = page_after(&selected, after.as_deref(), limit, |r| r.digest.as_str());
    let results: Vec<Value> = page
        .iter()
        .map(|r| {
            let mut action = json!({ "type": r.action });
            if r.action == "TRANSITION" {
                action["targetStorageClass"] = json!(StorageClass::Archive.as_str());
            }
            let mut o = json!({
                "imageDigest": r.digest,
                "imagePushedAt": seconds(r.pushed_at),
                "action": action,
                "appliedRulePriority": r.rule_priority,
                "storageClass": r.storage_class,
            });
            if !r.tags.is_empty() {
                o["imageTags"] = json!(r.tags);
            }
            o
        })
        .collect();
    let mut summary = json!({ "expiringImageTotalCount": expiring });
    if transitioning > 0 {
        summary["transitioningImageTotalCounts"] = json!([{ "targetStorageClass": StorageClass::Archive.as_str(), "imageTotalCount": transitioning }]);
    }
    let out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": preview.policy_text,
        "status": "COMPLETE",
        "previewResults": results,
        "summary": summary,
    });
    Ok(with_next(out, next))
}

pub(super) fn template_prefix(i: &Input) -> Result<String, ApiError> {
    let raw = i.str_req("prefix")?;
    crate::service::normalize_prefix(raw).ok_or_else(|| {
        ApiError::invalid(
            "prefix",
            "must satisfy regular expression '^((?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?|ROOT)$'",
        )
    })
}

pub(super) fn template_input(i: &Input, ctx: &Context) -> Result<TemplateInput, ApiError> {
    let m = mutability(i)?;
    let tags = i
        .array_opt("resourceTags")?
        .map(|_| resource_tags(i, "resourceTags"))
        .transpose()?;
    let applied_for = i.strings("appliedFor", 3)?;
    if let Some(d) = i.str_opt("description")? {
        check_len("description", d.chars().count().max(1), 256)?;
    }
    let repository_policy = i.str_opt("repositoryPolicy")?.map(str::to_owned);
    let lifecycle_policy = i.str_opt("lifecyclePolicy")?.map(str::to_owned);
    Ok(TemplateInput {
        description: i.str_opt("description")?.map(str::to_owned),
        encryption: encryption(i, ctx)?,
        resource_tags: tags,
        mutability: m,
        repository_policy,
        lifecycle_policy,
        applied_for,
        custom_role_arn: i.str_opt("customRoleArn")?.map(str::to_owned),
    })
}

pub(super) fn template_json(t: &CreationTemplate) -> Value {
    let mut o = json!({
        "prefix": t.prefix,
        "encryptionConfiguration": { "encryptionType": t.encryption_type },
        "resourceTags": t.resource_tags.as_pairs().iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
        "imageTagMutability": t.image_tag_mutability,
        "appliedFor": t.applied_for.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "createdAt": seconds(t.created_at),
        "updatedAt": seconds(t.updated_at),
    });
    if let Some(k) = &t.kms_key {
        o["encryptionConfiguration"]["kmsKey"] = json!(k);
    }
    if let Some(ex) = &t.mutability_exclusions {
        o["imageTagMutabilityExclusionFilters"] = serde_json::from_str(ex).unwrap_or(Value::Null);
    }
    for (key, value) in [
        ("description", &t.description),
        ("repositoryPolicy", &t.repository_policy),
        ("lifecyclePolicy", &t.lifecycle_policy),
        ("customRoleArn", &t.custom_role_arn),
    ] {
        if let Some(v) = value {
            o[key] = json!(v);
        }
    }
    o
}

pub(super) async fn create_template(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = template_prefix(i)?;
    let input = template_input(i, ctx)?;
    let t = service
        .create_creation_template(ctx, &prefix, input)
        .await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryCreationTemplate": template_json(&t) }),
    )
}

pub(super) async fn update_template(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = template_prefix(i)?;
    let input = template_input(i, ctx)?;
    let t = service
        .update_creation_template(ctx, &prefix, input)
        .await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryCreationTemplate": template_json(&t) }),
    )
}

pub(super) async fn delete_template(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = template_prefix(i)?;
    let t = service.delete_creation_template(ctx, &prefix).await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryCreationTemplate": template_json(&t) }),
    )
}

pub(super) async fn describe_templates(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefixes = i
        .strings("prefixes", 100)?
        .map(|list| {
            list.iter()
                .map(|p| {
                    crate::service::normalize_prefix(p)
                        .ok_or_else(|| ApiError::invalid("prefixes", "Invalid prefix"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let limit = i.max_results(1000, 1000)? as usize;
    let after = i.next_token()?;
    let all = service
        .describe_creation_templates(ctx, prefixes.as_deref())
        .await?;
    let (page, next) = page_after(&all, after.as_deref(), limit, |t| t.prefix.as_str());
    let out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryCreationTemplates": page.iter().map(template_json).collect::<Vec<_>>(),
    });
    Ok(with_next(out, next))
}

pub(super) async fn get_account_setting(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.str_req("name")?;
    let value = service.account_setting(ctx, name).await?;
    Ok(json!({ "name": name, "value": value }))
}

pub(super) async fn put_account_setting(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.str_req("name")?;
    let value = i.str_req("value")?;
    service.put_account_setting(ctx, name, value).await?;
    Ok(json!({ "name": name, "value": value }))
}

pub(super) async fn register_exclusion(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let arn = i.str_req("principalArn")?;
    let created = service.register_pull_time_exclusion(ctx, arn).await?;
    Ok(json!({ "principalArn": arn, "createdAt": seconds(created) }))
}

pub(super) async fn deregister_exclusion(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let arn = i.str_req("principalArn")?;
    service.deregister_pull_time_exclusion(ctx, arn).await?;
    Ok(json!({ "principalArn": arn }))
}

pub(super) async fn list_exclusions(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let limit = i.max_results(1000, 1000)? as usize;
    let after = i.next_token()?;
    let all = service.pull_time_exclusions(ctx).await?;
    let (page, next) = page_after(&all, after.as_deref(), limit, String::as_str);
    Ok(with_next(json!({ "pullTimeUpdateExclusions": page }), next))
}

//! Repositories: create, describe, delete, their settings (mutability, scanning,
//! encryption) and resource tags, and the registry itself.

use super::*;

pub(super) async fn create_repository(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let tag_mutability = mutability(i)?.unwrap_or_default();
    let scan_on_push = match i.get("imageScanningConfiguration") {
        Some(c) => c
            .get("scanOnPush")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        None => false,
    };
    let (encryption_type, kms_key) = encryption(i, ctx)?.unwrap_or(("AES256".to_owned(), None));
    let settings = RepositorySettings {
        tag_mutability,
        scan_on_push,
        encryption_type,
        kms_key,
    };
    let tags = resource_tags(i, "tags")?;
    let repo = service
        .create_repository_with(ctx, &name, &settings, &tags)
        .await?;
    Ok(json!({ "repository": repository_json(service, ctx, &repo) }))
}

pub(super) async fn describe_repositories(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let names = i.strings("repositoryNames", 100)?;
    let paging = i.get("maxResults").is_some() || i.get("nextToken").is_some();
    if names.is_some() && paging {
        return Err(ApiError::invalid(
            "repositoryNames",
            "maxResults and nextToken cannot be used together with repositoryNames",
        ));
    }
    let names = names
        .map(|n| {
            n.iter()
                .map(|s| parse_repository_name("repositoryNames", s))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let limit = i.max_results(1000, 100)?;
    let after = i.next_token()?;
    let page = service
        .describe_repositories(ctx, names.as_deref(), after.as_deref(), limit)
        .await?;
    let repos: Vec<Value> = page
        .items
        .iter()
        .map(|r| repository_json(service, ctx, r))
        .collect();
    Ok(with_next(json!({ "repositories": repos }), page.next))
}

pub(super) async fn delete_repository(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let force = i.bool_opt("force")?.unwrap_or(false);
    let repo = service.delete_repository(ctx, &name, force).await?;
    Ok(json!({ "repository": repository_json(service, ctx, &repo) }))
}

pub(super) async fn put_image_tag_mutability(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let m = mutability(i)?
        .ok_or_else(|| ApiError::invalid("imageTagMutability", "Member must not be null"))?;
    service.put_image_tag_mutability(ctx, &name, &m).await?;
    let mut out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "imageTagMutability": m.mode().as_str(),
    });
    if let (Some(e), Some(o)) = (exclusions_json(&m), out.as_object_mut()) {
        o.insert("imageTagMutabilityExclusionFilters".into(), e);
    }
    Ok(out)
}

pub(super) async fn put_image_scanning_configuration(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let config = i.get("imageScanningConfiguration").ok_or_else(|| {
        ApiError::invalid("imageScanningConfiguration", "Member must not be null")
    })?;
    let scan_on_push = config
        .get("scanOnPush")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    service
        .put_image_scanning_configuration(ctx, &name, scan_on_push)
        .await?;
    Ok(json!({
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "imageScanningConfiguration": { "scanOnPush": scan_on_push },
    }))
}

pub(super) async fn tag_resource(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let (ctx, name) = repository_from_arn(ctx, i.str_req("resourceArn")?)?;
    if i.get("tags").is_none() {
        return Err(ApiError::invalid("tags", "Member must not be null"));
    }
    let tags = resource_tags(i, "tags")?;
    service.tag_resource(&ctx, &name, &tags).await?;
    Ok(json!({}))
}

pub(super) async fn untag_resource(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let (ctx, name) = repository_from_arn(ctx, i.str_req("resourceArn")?)?;
    let keys = i
        .strings("tagKeys", 200)?
        .ok_or_else(|| ApiError::invalid("tagKeys", "Member must not be null"))?;
    service.untag_resource(&ctx, &name, &keys).await?;
    Ok(json!({}))
}

pub(super) async fn list_tags_for_resource(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let (ctx, name) = repository_from_arn(ctx, i.str_req("resourceArn")?)?;
    let tags: Vec<Value> = service
        .list_resource_tags(&ctx, &name)
        .await?
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(json!({ "tags": tags }))
}

pub(super) async fn describe_registry(service: &Service, ctx: &Context) -> OpResult {
    let config = service.describe_registry(ctx).await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "replicationConfiguration": super::replication::config_json(&config),
    }))
}

/// `encryptionConfiguration`, validated: (type, KMS key), or None when absent.
pub(super) fn encryption(
    i: &Input,
    ctx: &Context,
) -> Result<Option<(String, Option<String>)>, ApiError> {
    let Some(c) = i.get("encryptionConfiguration") else {
        return Ok(None);
    };
    let t = c
        .get("encryptionType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let key = c.get("kmsKey").and_then(Value::as_str).map(str::to_owned);
    Ok(Some(Service::encryption_settings(ctx, t, key)?))
}

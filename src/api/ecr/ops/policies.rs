//! Repository and registry policies.

use super::*;

/// `policyText`: required, 1 to 10,240 characters.
pub(super) fn policy_text(i: &Input) -> Result<&str, ApiError> {
    let text = i.str_req("policyText")?;
    if text.is_empty() || text.chars().count() > 10_240 {
        return Err(ApiError::invalid(
            "policyText",
            "Member must have length less than or equal to 10240",
        ));
    }
    Ok(text)
}

pub(super) async fn set_repository_policy(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let text = policy_text(i)?;
    let force = i.bool_opt("force")?.unwrap_or(false);
    service
        .set_repository_policy(ctx, &name, text, force)
        .await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryName": name.as_str(), "policyText": text }),
    )
}

pub(super) async fn repository_policy(
    service: &Service,
    ctx: &Context,
    i: &Input,
    delete: bool,
) -> OpResult {
    let name = i.repository_name()?;
    let text = service.repository_policy(ctx, &name, delete).await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryName": name.as_str(), "policyText": text }),
    )
}

pub(super) async fn put_registry_policy(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let text = policy_text(i)?;
    service.put_registry_policy(ctx, text).await?;
    Ok(json!({ "registryId": ctx.registry.account_id, "policyText": text }))
}

pub(super) async fn registry_policy(service: &Service, ctx: &Context, delete: bool) -> OpResult {
    let text = service.registry_policy_text(ctx, delete).await?;
    Ok(json!({ "registryId": ctx.registry.account_id, "policyText": text }))
}

//! Repository and registry policies: stored as given, validated as IAM would, and read
//! by authorization through the policy cache.

use super::*;

impl Service {
    // ---- repository and registry policies ----

    /// SetRepositoryPolicy. Without `force`, a policy that would stop the caller from
    /// setting the policy again is refused, to prevent an accidental lock-out.
    pub async fn set_repository_policy(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        text: &str,
        force: bool,
    ) -> Result<Repository> {
        self.authorize(ctx, Action::SetRepositoryPolicy, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.check_resource_policy(text, "Invalid repository policy provided")
            .await?;
        if !force {
            let policy = crate::iam::Policy::parse(text, crate::iam::PolicyKind::Resource)
                .map_err(|e| Error::InvalidParameter(e.0))?;
            if !self.would_keep_policy_access(ctx, &repo, policy).await? {
                return Err(Error::InvalidParameter(
                    "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'The policy would prevent the caller from setting the repository policy in the future; use force to set it anyway'".into(),
                ));
            }
        }
        self.meta.set_repository_policy(repo.id, Some(text)).await?;
        Ok(repo)
    }

    /// GetRepositoryPolicy, or with `delete` DeleteRepositoryPolicy (returning the text).
    pub async fn repository_policy(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        delete: bool,
    ) -> Result<String> {
        let action = if delete {
            Action::DeleteRepositoryPolicy
        } else {
            Action::GetRepositoryPolicy
        };
        self.authorize(ctx, action, name).await?;
        let repo = self.repository(ctx, name).await?;
        let text = self
            .meta
            .repository_policy_text(repo.id)
            .await?
            .ok_or_else(|| Error::RepositoryPolicyNotFound {
                name: name.to_string(),
                registry_id: ctx.registry.account_id.clone(),
            })?;
        if delete {
            self.meta.set_repository_policy(repo.id, None).await?;
        }
        Ok(text)
    }

    pub async fn put_registry_policy(&self, ctx: &Context, text: &str) -> Result<()> {
        self.authorize_registry(ctx, Action::PutRegistryPolicy)
            .await?;
        self.check_resource_policy(text, "Invalid registry policy provided")
            .await?;
        self.meta
            .set_registry_policy(&ctx.registry, Some(text))
            .await?;
        Ok(())
    }

    /// GetRegistryPolicy, or with `delete` DeleteRegistryPolicy (returning the text).
    pub async fn registry_policy_text(&self, ctx: &Context, delete: bool) -> Result<String> {
        let action = if delete {
            Action::DeleteRegistryPolicy
        } else {
            Action::GetRegistryPolicy
        };
        self.authorize_registry(ctx, action).await?;
        let text = self
            .meta
            .registry_policy(&ctx.registry)
            .await?
            .ok_or_else(|| Error::RegistryPolicyNotFound(ctx.registry.account_id.clone()))?;
        if delete {
            self.meta.set_registry_policy(&ctx.registry, None).await?;
        }
        Ok(text)
    }

    /// A repository or registry policy: valid, ECR actions only, naming principals that
    /// exist. ECR gives one message for every fault.
    pub(super) async fn check_resource_policy(&self, text: &str, message: &str) -> Result<()> {
        let invalid = || {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: '{message}'"
            ))
        };
        crate::iam::Policy::parse(text, crate::iam::PolicyKind::Resource).map_err(|_| invalid())?;
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|_| invalid())?;
        for arn in super::iam::principal_arns(&doc) {
            let names_identity = arn.contains(":user/") || arn.contains(":role/");
            if names_identity && self.meta.identity_by_arn(&arn).await?.is_none() {
                return Err(invalid());
            }
        }
        Ok(())
    }
}

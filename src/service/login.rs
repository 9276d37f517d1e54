//! GetAuthorizationToken: registry passwords for the caller's registries.

use super::*;
use crate::aws::AccountId;

/// GetAuthorizationToken's answer for one registry.
pub struct AuthorizationData {
    pub token: String,
    pub expires_at: i64,
    pub proxy_endpoint: String,
}

impl Service {
    // ---- login ----

    /// One authorization token per requested registry (or the caller's own). The token is
    /// valid in every registry of the region; the registry ids only pick `proxyEndpoint`.
    pub async fn authorization_tokens(
        &self,
        ctx: &Context,
        auth: &crate::auth::Authenticator,
        registry_ids: &[AccountId],
    ) -> Result<Vec<AuthorizationData>> {
        self.authorize_registry(ctx, Action::GetAuthorizationToken)
            .await?;
        let now = clock::now_ms() / 1000;
        let (password, expires_at) = auth.issue_token(&ctx.principal, &ctx.registry.region, now);
        let token = crate::auth::token::authorization_token(&password);
        let own = [ctx.registry.account_id.clone()];
        let ids = if registry_ids.is_empty() {
            &own[..]
        } else {
            registry_ids
        };
        Ok(ids
            .iter()
            .map(|id| AuthorizationData {
                token: token.clone(),
                expires_at,
                proxy_endpoint: self
                    .options
                    .public
                    .registry_origin(id, &ctx.registry.region),
            })
            .collect())
    }
}

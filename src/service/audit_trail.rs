//! Looking up the audit trail (CloudTrail's LookupEvents): the records of the caller's
//! account and region, for the console. `berth admin events` reads the store directly.

use super::*;
use crate::meta::AuditQuery;

/// The most records one lookup returns.
pub const MAX_EVENTS: i64 = 1000;

impl Service {
    /// Records matching `query`, newest first, as CloudTrail JSON; only the caller's
    /// account and region, whatever the query says. Authorized as
    /// `cloudtrail:LookupEvents`.
    pub async fn lookup_events(&self, ctx: &Context, query: AuditQuery) -> Result<Vec<String>> {
        self.authorize_iam(
            &ctx.principal,
            ctx.source_ip.as_deref(),
            "cloudtrail:LookupEvents",
            "*",
            &ctx.registry.account_id,
            None,
        )
        .await?;
        let query = AuditQuery {
            account_id: Some(ctx.registry.account_id.to_string()),
            region: Some(ctx.registry.region.to_string()),
            limit: query.limit.clamp(1, MAX_EVENTS),
            ..query
        };
        Ok(self.meta.audit_records(&query).await?)
    }
}

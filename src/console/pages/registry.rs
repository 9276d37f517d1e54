//! The registry's page: what applies to every repository of this account and region —
//! scanning configuration, pull-through cache rules, replication rules, repository
//! creation templates — each shown as far as the principal may describe it.

use askama::Template;
use axum::body::Body;
use axum::http::Response;

use super::{field, frame, time, Flash, Frame};
use crate::console::{render, Signed};
use crate::service::{Error, Service};

pub struct CacheRuleRow {
    pub prefix: String,
    pub upstream_url: String,
    pub upstream_registry: &'static str,
    pub upstream_prefix: String,
    pub credential_arn: String,
    pub created: String,
}

pub struct ReplicationRow {
    pub destinations: String,
    pub filters: String,
    pub deletes: bool,
}

pub struct TemplateRow {
    pub prefix: String,
    pub description: String,
    pub applied_for: String,
    pub mutability: String,
    pub has_lifecycle: bool,
    pub has_policy: bool,
}

#[derive(Template)]
#[template(path = "console/registry.html")]
pub struct RegistryPage {
    pub frame: Frame,
    pub account: String,
    pub region: String,
    /// (scan type, rules as JSON; empty without rules)
    pub scanning: Result<(String, String), String>,
    pub cache_rules: Result<Vec<CacheRuleRow>, String>,
    pub replication: Result<Vec<ReplicationRow>, String>,
    pub templates: Result<Vec<TemplateRow>, String>,
}

/// A section's rows, or why they cannot be shown (a denial is no page error: another
/// section may be allowed).
fn section<T, U>(r: Result<T, Error>, rows: impl FnOnce(T) -> U) -> Result<U, String> {
    r.map(rows).map_err(|e| super::message_of(&e))
}

pub async fn registry(service: &Service, signed: &Signed, flash: Flash) -> Response<Body> {
    let ctx = &signed.ctx;
    let scanning = section(service.registry_scanning(ctx).await, |s| {
        let scan_type = serde_json::to_value(s.scan_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let rules = if s.rules.is_empty() {
            String::new()
        } else {
            serde_json::to_string_pretty(&s.rules).unwrap_or_default()
        };
        (scan_type, rules)
    });
    let cache_rules = section(service.describe_cache_rules(ctx, None).await, |rules| {
        rules
            .into_iter()
            .map(|r| CacheRuleRow {
                upstream_registry: r.upstream_registry.map_or("", |u| u.as_str()),
                prefix: r.prefix,
                upstream_url: r.upstream_url,
                upstream_prefix: r.upstream_prefix,
                credential_arn: r.credential_arn.unwrap_or_default(),
                created: time(r.created_at),
            })
            .collect()
    });
    let replication = section(service.describe_registry(ctx).await, |config| {
        config
            .rules
            .iter()
            .map(|r| ReplicationRow {
                destinations: r
                    .destinations
                    .iter()
                    .map(|d| format!("{} · {}", d.registry_id, d.region))
                    .collect::<Vec<_>>()
                    .join(", "),
                filters: r
                    .repository_filters
                    .iter()
                    .map(|f| f.filter.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                deletes: r.delete_replication.is_some_and(|d| d.enabled),
            })
            .collect()
    });
    let templates = section(service.describe_creation_templates(ctx, None).await, |ts| {
        ts.into_iter()
            .map(|t| TemplateRow {
                prefix: t.prefix,
                description: t.description.unwrap_or_default(),
                applied_for: t
                    .applied_for
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                mutability: t.image_tag_mutability,
                has_lifecycle: t.lifecycle_policy.is_some(),
                has_policy: t.repository_policy.is_some(),
            })
            .collect()
    });
    let page = RegistryPage {
        frame: frame(signed, flash),
        account: ctx.registry.account_id.to_string(),
        region: ctx.registry.region.to_string(),
        scanning,
        cache_rules,
        replication,
        templates,
    };
    render(page.frame.status, &page)
}

/// The registry page's delete buttons: a pull through cache rule
/// (DeletePullThroughCacheRule) or a creation template
/// (DeleteRepositoryCreationTemplate), by prefix.
pub async fn registry_form(
    service: &Service,
    signed: &Signed,
    form: &[(String, String)],
) -> Response<Body> {
    let prefix = field(form, "prefix").unwrap_or("").to_owned();
    let ctx = &signed.ctx;
    let done = match field(form, "action") {
        Some("delete_cache_rule") => {
            let params = serde_json::json!({ "ecrRepositoryPrefix": prefix });
            signed.audit(service, "DeletePullThroughCacheRule", None, params);
            service
                .delete_cache_rule(ctx, &prefix)
                .await
                .map(|_| format!("Deleted the pull through cache rule {prefix}."))
        }
        _ => {
            let params = serde_json::json!({ "prefix": prefix });
            signed.audit(service, "DeleteRepositoryCreationTemplate", None, params);
            service
                .delete_creation_template(ctx, &prefix)
                .await
                .map(|_| format!("Deleted the repository creation template {prefix}."))
        }
    };
    let flash = signed.outcome(done);
    registry(service, signed, flash).await
}

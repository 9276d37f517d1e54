//! The policy editors: a repository's policy (SetRepositoryPolicy) and the registry's
//! (PutRegistryPolicy), each validated as the API validates it, with its message.

use askama::Template;
use axum::body::Body;
use axum::http::Response;

use super::{field, frame, text_field, Flash, Frame};
use crate::console::{render, Signed};
use crate::oci::RepositoryName;
use crate::service::{Error, Service};

/// What an editor offers when there is no policy: pulls by the account (repository),
/// or replication into this registry (registry).
fn example(account: &str, repository: bool) -> String {
    if !repository {
        return format!(
            r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{
      "Sid": "ReplicationAccess",
      "Effect": "Allow",
      "Principal": {{ "AWS": "arn:aws:iam::{account}:root" }},
      "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
      "Resource": "*"
    }}
  ]
}}"#
        );
    }
    format!(
        r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{
      "Sid": "AllowPull",
      "Effect": "Allow",
      "Principal": {{ "AWS": "arn:aws:iam::{account}:root" }},
      "Action": [
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability"
      ]
    }}
  ]
}}"#
    )
}

#[derive(Template)]
#[template(path = "console/policy.html")]
pub struct PolicyPage {
    pub frame: Frame,
    /// The repository whose policy this is; `None`: the registry's.
    pub repository: Option<String>,
    pub action: String,
    pub text: String,
    pub saved: bool,
}

fn policy_page(
    frame: Frame,
    repository: Option<&RepositoryName>,
    stored: Result<String, Error>,
    text: Option<String>,
    account: &str,
) -> Response<Body> {
    let mut frame = frame;
    let saved = match stored {
        Ok(t) => Some(t),
        Err(Error::RepositoryPolicyNotFound { .. } | Error::RegistryPolicyNotFound(_)) => None,
        Err(e) => {
            frame.fail(&e);
            None
        }
    };
    let action = match repository {
        Some(name) => format!("/console/repositories/{name}/-/policy"),
        None => "/console/registry/policy".to_owned(),
    };
    let page = PolicyPage {
        frame,
        repository: repository.map(|n| n.to_string()),
        action,
        saved: saved.is_some(),
        text: text
            .or(saved)
            .unwrap_or_else(|| example(account, repository.is_some())),
    };
    render(page.frame.status, &page)
}

async fn repository_page(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    text: Option<String>,
    flash: Flash,
) -> Response<Body> {
    let stored = service.repository_policy(&signed.ctx, name, false).await;
    let account = signed.ctx.registry.account_id.to_string();
    policy_page(frame(signed, flash), Some(name), stored, text, &account)
}

pub async fn repository_policy(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
) -> Response<Body> {
    repository_page(service, signed, name, None, Flash::default()).await
}

/// The repository editor's buttons: `save` (with `force` to allow a lock-out) or `delete`.
pub async fn repository_policy_form(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    form: &[(String, String)],
) -> Response<Body> {
    let ctx = &signed.ctx;
    if field(form, "action") == Some("delete") {
        let only_name = serde_json::json!({ "repositoryName": name.as_str() });
        signed.audit(service, "DeleteRepositoryPolicy", Some(name), only_name);
        let flash = signed.outcome(
            service
                .repository_policy(ctx, name, true)
                .await
                .map(|_| "Deleted the repository policy."),
        );
        return repository_page(service, signed, name, None, flash).await;
    }
    let text = text_field(form, "policy");
    let force = field(form, "force") == Some("true");
    signed.audit(
        service,
        "SetRepositoryPolicy",
        Some(name),
        serde_json::json!({ "repositoryName": name.as_str(), "policyText": text, "force": force }),
    );
    let flash = signed.outcome(
        service
            .set_repository_policy(ctx, name, &text, force)
            .await
            .map(|_| "Saved the repository policy."),
    );
    repository_page(service, signed, name, Some(text), flash).await
}

pub async fn registry_policy(service: &Service, signed: &Signed) -> Response<Body> {
    registry_policy_page(service, signed, None, Flash::default()).await
}

async fn registry_policy_page(
    service: &Service,
    signed: &Signed,
    text: Option<String>,
    flash: Flash,
) -> Response<Body> {
    let stored = service.registry_policy_text(&signed.ctx, false).await;
    let account = signed.ctx.registry.account_id.to_string();
    policy_page(frame(signed, flash), None, stored, text, &account)
}

/// The registry editor's buttons: `save` or `delete`.
pub async fn registry_policy_form(
    service: &Service,
    signed: &Signed,
    form: &[(String, String)],
) -> Response<Body> {
    let ctx = &signed.ctx;
    if field(form, "action") == Some("delete") {
        signed.audit(service, "DeleteRegistryPolicy", None, serde_json::json!({}));
        let flash = signed.outcome(
            service
                .registry_policy_text(ctx, true)
                .await
                .map(|_| "Deleted the registry policy."),
        );
        return registry_policy_page(service, signed, None, flash).await;
    }
    let text = text_field(form, "policy");
    signed.audit(
        service,
        "PutRegistryPolicy",
        None,
        serde_json::json!({ "policyText": text }),
    );
    let flash = signed.outcome(
        service
            .put_registry_policy(ctx, &text)
            .await
            .map(|_| "Saved the registry policy."),
    );
    registry_policy_page(service, signed, Some(text), flash).await
}

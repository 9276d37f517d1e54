//! A repository's lifecycle policy: the editor, a preview of what the text in it would
//! expire or archive now (StartLifecyclePolicyPreview, then GetLifecyclePolicyPreview),
//! saving it (PutLifecyclePolicy) and deleting it.

use askama::Template;
use axum::body::Body;
use axum::http::Response;

use super::{field, frame, text_field, time, Flash, Frame};
use crate::console::{render, Signed};
use crate::oci::RepositoryName;
use crate::service::{Error, Preview, Service};

/// What the editor offers when the repository has no policy: ECR's first example.
const EXAMPLE: &str = r#"{
  "rules": [
    {
      "rulePriority": 1,
      "description": "Expire untagged images older than 14 days",
      "selection": {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 14
      },
      "action": { "type": "expire" }
    }
  ]
}"#;

pub struct PreviewRow {
    pub tags: String,
    pub digest: String,
    pub pushed: String,
    pub action: String,
    pub rule_priority: u32,
    pub storage_class: &'static str,
}

#[derive(Template)]
#[template(path = "console/lifecycle.html")]
pub struct LifecyclePage {
    pub frame: Frame,
    pub repository: String,
    pub text: String,
    /// Whether the repository has a policy saved.
    pub saved: bool,
    pub last_evaluated: String,
    /// The preview's results, when a preview was asked for (or is stored).
    pub preview: Option<Vec<PreviewRow>>,
}

fn preview_rows(p: &Preview) -> Vec<PreviewRow> {
    p.results
        .iter()
        .map(|r| PreviewRow {
            tags: r.tags.join(", "),
            digest: r.digest.clone(),
            pushed: time(r.pushed_at),
            action: r.action.clone(),
            rule_priority: r.rule_priority,
            storage_class: r.storage_class.as_str(),
        })
        .collect()
}

/// The lifecycle page: the saved policy (or `text` the form sent), and a preview.
async fn page(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    text: Option<String>,
    preview: Option<Preview>,
    flash: Flash,
) -> Response<Body> {
    let mut frame = frame(signed, flash);
    let saved = match service.lifecycle_policy(&signed.ctx, name, false).await {
        Ok(info) => Some(info),
        Err(Error::Ecr(crate::service::EcrErrorKind::LifecyclePolicyNotFound, _)) => None,
        Err(e) => {
            frame.fail(&e);
            None
        }
    };
    let page = LifecyclePage {
        frame,
        repository: name.to_string(),
        text: text
            .or_else(|| saved.as_ref().map(|s| s.text.clone()))
            .unwrap_or_else(|| EXAMPLE.to_owned()),
        saved: saved.is_some(),
        last_evaluated: saved
            .and_then(|s| s.last_evaluated_at)
            .map(time)
            .unwrap_or_else(|| "never".into()),
        preview: preview.as_ref().map(preview_rows),
    };
    render(page.frame.status, &page)
}

pub async fn lifecycle(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
) -> Response<Body> {
    page(service, signed, name, None, None, Flash::default()).await
}

/// The editor's buttons: `preview`, `save` or `delete`.
pub async fn lifecycle_form(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    form: &[(String, String)],
) -> Response<Body> {
    let text = text_field(form, "policy");
    let ctx = &signed.ctx;
    let with_text =
        serde_json::json!({ "repositoryName": name.as_str(), "lifecyclePolicyText": text });
    match field(form, "action") {
        Some("preview") => {
            signed.audit(
                service,
                "StartLifecyclePolicyPreview",
                Some(name),
                with_text,
            );
            let previewed = match service
                .start_lifecycle_preview(ctx, name, Some(&text))
                .await
            {
                Ok(_) => service.lifecycle_preview(ctx, name).await,
                Err(e) => Err(e),
            };
            match previewed {
                Ok(p) => {
                    let n = p.results.len();
                    let flash = Flash::notice(format!(
                        "Preview: the policy would act on {n} image{} now.",
                        if n == 1 { "" } else { "s" }
                    ));
                    page(service, signed, name, Some(text), Some(p), flash).await
                }
                Err(e) => {
                    let flash = signed.failed(&e);
                    page(service, signed, name, Some(text), None, flash).await
                }
            }
        }
        Some("delete") => {
            let only_name = serde_json::json!({ "repositoryName": name.as_str() });
            signed.audit(service, "DeleteLifecyclePolicy", Some(name), only_name);
            let flash = signed.outcome(
                service
                    .lifecycle_policy(ctx, name, true)
                    .await
                    .map(|_| "Deleted the lifecycle policy."),
            );
            page(service, signed, name, None, None, flash).await
        }
        _ => {
            signed.audit(service, "PutLifecyclePolicy", Some(name), with_text);
            let flash = signed.outcome(
                service
                    .put_lifecycle_policy(ctx, name, &text)
                    .await
                    .map(|_| "Saved the lifecycle policy."),
            );
            page(service, signed, name, Some(text), None, flash).await
        }
    }
}

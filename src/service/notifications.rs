//! Event notifications: outbox events as EventBridge's ECR events, posted to webhooks.
//!
//! | outbox event                  | detail-type                      |
//! |-------------------------------|----------------------------------|
//! | push, tag move                | ECR Image Action (PUSH); a manifest with a subject: ECR Referrer Action; an image brought by a pull-through cache rule: ECR Pull Through Cache Action |
//! | delete, untag, replica delete | ECR Image Action (DELETE)        |
//! | scan recorded                 | ECR Image Scan                   |
//! | replication to a destination  | ECR Replication Action, in the destination's account and region |
//!
//! An event's id is derived from its outbox position, so a repeated delivery carries
//! the same id.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{Result, Service};
use crate::meta::{Event, EventKind, ScanState};
use crate::notify::WebhookSettings;
use crate::oci::Digest;

/// One event, ready to post.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: String,
    pub account: String,
    pub detail_type: &'static str,
    /// The whole EventBridge event, as JSON text.
    pub body: String,
}

/// A UUID-shaped id from the outbox position and the event's index within it.
fn event_id(seq: i64, index: usize) -> String {
    let h = Sha256::digest(format!("berth-event:{seq}:{index}").as_bytes());
    let x = hex::encode(&h[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// EventBridge's envelope.
fn envelope(
    id: &str,
    detail_type: &str,
    account: &str,
    region: &str,
    at_ms: i64,
    resources: Vec<String>,
    detail: Value,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": detail_type,
        "source": "aws.ecr",
        "account": account,
        "time": crate::audit::iso_time(at_ms),
        "region": region,
        "resources": resources,
        "detail": detail,
    })
}

/// What one outbox event becomes, before the envelope.
struct Shape {
    detail_type: &'static str,
    account: String,
    region: String,
    resources: Vec<String>,
    detail: Value,
}

impl Service {
    /// The notifications an outbox event makes (none for most internal kinds).
    pub async fn notifications_for(&self, event: &Event) -> Result<Vec<Notification>> {
        let shapes = match event.kind {
            EventKind::ImagePushed | EventKind::TagMoved => self.push_shape(event).await?,
            EventKind::ImageDeleted | EventKind::TagDeleted | EventKind::ReplicaDeleted => {
                vec![self.image_action(event, "DELETE", None)]
            }
            EventKind::ScanCompleted => self.scan_shape(event).await?,
            EventKind::ReplicationFinished => replication_shape(event),
            EventKind::ScanRequested
            | EventKind::RescanRequested
            | EventKind::SignRequested
            | EventKind::ImageReplicated => Vec::new(),
        };
        Ok(shapes
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let id = event_id(event.seq, i);
                let body = envelope(
                    &id,
                    s.detail_type,
                    &s.account,
                    &s.region,
                    event.created_at,
                    s.resources,
                    s.detail,
                )
                .to_string();
                Notification {
                    id,
                    account: s.account,
                    detail_type: s.detail_type,
                    body,
                }
            })
            .collect())
    }

    fn image_action(&self, event: &Event, action: &str, media: Option<(&str, &str)>) -> Shape {
        let mut detail = json!({
            "result": "SUCCESS",
            "repository-name": event.repository_name,
            "image-digest": event.digest,
            "action-type": action,
        });
        if let Some(tag) = &event.tag {
            detail["image-tag"] = json!(tag);
        }
        if let Some((manifest, artifact)) = media {
            detail["manifest-media-type"] = json!(manifest);
            detail["artifact-media-type"] = json!(artifact);
        }
        Shape {
            detail_type: "ECR Image Action",
            account: event.registry.account_id.to_string(),
            region: event.registry.region.to_string(),
            resources: Vec::new(),
            detail,
        }
    }

    /// A push: a referrer's, a pull-through cache's import, or a plain image's.
    async fn push_shape(&self, event: &Event) -> Result<Vec<Shape>> {
        let Ok(digest) = event.digest.parse::<Digest>() else {
            return Ok(Vec::new());
        };
        let stored = self
            .meta
            .manifest_by_digest(event.repository_id, &digest)
            .await?;
        let parsed = stored
            .as_ref()
            .and_then(|m| crate::oci::manifest::parse(&m.body, Some(&m.media_type)).ok());
        let media = parsed.as_ref().map(|p| {
            (
                p.media_type.clone(),
                p.artifact_type
                    .clone()
                    .or_else(|| p.config_media_type.clone())
                    .unwrap_or_default(),
            )
        });
        let media_ref = media.as_ref().map(|(m, a)| (m.as_str(), a.as_str()));
        let mut shape = self.image_action(event, "PUSH", media_ref);
        if parsed.as_ref().is_some_and(|p| p.subject.is_some()) {
            shape.detail_type = "ECR Referrer Action";
            return Ok(vec![shape]);
        }
        if let Some(rule) = self.cache_rule_of(event).await? {
            return Ok(vec![self.cache_shape(event, &rule)]);
        }
        Ok(vec![shape])
    }

    async fn cache_rule_of(&self, event: &Event) -> Result<Option<super::CacheRule>> {
        self.cache_rule_for(&event.registry, &event.repository_name)
            .await
    }

    fn cache_shape(&self, event: &Event, rule: &super::CacheRule) -> Shape {
        let mut detail = json!({
            "rule-version": "1",
            "sync-status": "SUCCESS",
            "ecr-repository-prefix": rule.prefix,
            "repository-name": event.repository_name,
            "upstream-registry-url": rule.upstream_url,
            "image-digest": event.digest,
        });
        if let Some(tag) = &event.tag {
            detail["image-tag"] = json!(tag);
        }
        Shape {
            detail_type: "ECR Pull Through Cache Action",
            account: event.registry.account_id.to_string(),
            region: event.registry.region.to_string(),
            resources: vec![super::authz::repository_arn(
                &event.registry,
                &event.repository_name,
            )],
            detail,
        }
    }

    /// A recorded scan: its status, counts of findings by severity, the image's tags.
    async fn scan_shape(&self, event: &Event) -> Result<Vec<Shape>> {
        let Some(ScanState::Done(result)) = self
            .meta
            .scan_state(event.repository_id, &event.digest)
            .await?
        else {
            return Ok(Vec::new());
        };
        let counts: serde_json::Map<String, Value> = result
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
            .collect();
        let tags = self
            .meta
            .tags_of(event.repository_id, &event.digest)
            .await?;
        Ok(vec![Shape {
            detail_type: "ECR Image Scan",
            account: event.registry.account_id.to_string(),
            region: event.registry.region.to_string(),
            resources: vec![super::authz::repository_arn(
                &event.registry,
                &event.repository_name,
            )],
            detail: json!({
                "scan-status": result.status.as_str(),
                "repository-name": event.repository_name,
                "finding-severity-counts": counts,
                "image-digest": event.digest,
                "image-tags": tags,
            }),
        }])
    }

    /// Post an outbox event's notifications that `hook` wants: each is retried with
    /// backoff until it is taken or `max_attempts` posts failed (then it is kept as a
    /// dead letter). Only a failing store is an error (the consumer tries again).
    pub async fn notify_webhook(
        &self,
        hook: &WebhookSettings,
        key: Option<&[u8]>,
        event: &Event,
    ) -> Result<()> {
        let metrics = crate::observe::metrics::metrics();
        let timeout = std::time::Duration::from_secs(hook.timeout_seconds);
        for n in self.notifications_for(event).await? {
            if !hook.wants(&n.account, n.detail_type) {
                continue;
            }
            let mut attempt = 0;
            let failure = loop {
                attempt += 1;
                let posted = crate::notify::delivery::post(
                    self.upstream.http(),
                    &hook.url,
                    &n.id,
                    &n.body,
                    key,
                    timeout,
                )
                .await;
                match posted {
                    Ok(()) => {
                        metrics.delivery(&hook.name, "delivered");
                        break None;
                    }
                    Err(e) => {
                        metrics.delivery(&hook.name, "failed");
                        tracing::warn!(
                            webhook = hook.name,
                            event_id = n.id,
                            attempt,
                            error = e,
                            "webhook post failed"
                        );
                        if attempt >= hook.max_attempts {
                            break Some(e);
                        }
                        tokio::time::sleep(hook.backoff(attempt)).await;
                    }
                }
            };
            if let Some(last_error) = failure {
                metrics.delivery(&hook.name, "dead_letter");
                self.meta
                    .insert_dead_letter(&crate::meta::DeadLetter {
                        id: 0,
                        webhook: hook.name.clone(),
                        event_id: n.id.clone(),
                        body: n.body.clone(),
                        attempts: i64::from(attempt),
                        last_error,
                        failed_at: crate::clock::now_ms(),
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// The HMAC key of a webhook: its secret's SecretString (read with the system's
    /// rights, as the deployment's operator configured it).
    pub async fn webhook_key(&self, hook: &WebhookSettings) -> Result<Option<Vec<u8>>> {
        let Some(arn) = &hook.secret else {
            return Ok(None);
        };
        // arn:aws:secretsmanager:<region>:<account>:secret:<name>
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        let registry = match (
            parts.get(4).and_then(|a| crate::aws::AccountId::parse(a)),
            parts.get(3).and_then(|r| crate::aws::Region::parse(r)),
        ) {
            (Some(account_id), Some(region)) => crate::meta::RegistryKey { account_id, region },
            _ => {
                return Err(super::Error::Internal(format!(
                    "webhook {}: secret {arn} is not a secret ARN",
                    hook.name
                )))
            }
        };
        match self.secret_for_service(&registry, arn).await? {
            Some(super::secrets_manager::SecretValue::String(text)) => Ok(Some(text.into_bytes())),
            _ => Err(super::Error::Internal(format!(
                "webhook {}: the secret {arn} is missing or not text",
                hook.name
            ))),
        }
    }
}

/// A replication's end, as the destination sees it.
fn replication_shape(event: &Event) -> Vec<Shape> {
    let Some(detail) = event
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
    else {
        return Vec::new();
    };
    let (Some(account), Some(region), Some(status)) = (
        detail["account"].as_str(),
        detail["region"].as_str(),
        detail["status"].as_str(),
    ) else {
        return Vec::new();
    };
    let result = if status == "COMPLETE" {
        "SUCCESS"
    } else {
        "FAILED"
    };
    let mut d = json!({
        "result": result,
        "repository-name": event.repository_name,
        "image-digest": event.digest,
        "source-account": event.registry.account_id,
        "action-type": "REPLICATE",
        "source-region": event.registry.region,
    });
    if let Some(tag) = &event.tag {
        d["image-tag"] = json!(tag);
    }
    if let Some(code) = detail["failureCode"].as_str() {
        d["failure-code"] = json!(code);
    }
    vec![Shape {
        detail_type: "ECR Replication Action",
        account: account.to_owned(),
        region: region.to_owned(),
        resources: vec![
            crate::aws::Arn::repository(account, region, &event.repository_name).to_string(),
        ],
        detail: d,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(event_id(7, 0), event_id(7, 0));
        assert_ne!(event_id(7, 0), event_id(7, 1));
        assert_ne!(event_id(7, 0), event_id(8, 0));
        assert_eq!(event_id(7, 0).len(), 36);
    }
}

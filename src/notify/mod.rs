//! Event notifications: EventBridge-shaped events posted to webhooks.
//!
//! Each `[[webhooks]]` entry of the config file is an outbox consumer of its own
//! (`outbox:webhook:<name>`), so every webhook has its own cursor: events reach it in
//! the order they were written (so, per repository, in the order things happened), at
//! least once. A failed post is retried with backoff, holding back the events after it;
//! after `max_attempts` the event is kept as a dead letter and the next one goes.
//! The events' shapes are built by the service (`service/notifications.rs`); this
//! module posts them.

pub mod delivery;

use serde::Deserialize;

/// One webhook (`[[webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Names the webhook's consumer, its dead letters and its metrics.
    pub name: String,
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Only events of this account (default: every account).
    pub account_id: Option<String>,
    /// Only these detail types, e.g. `["ECR Image Action"]` (default: all).
    #[serde(default)]
    pub detail_types: Vec<String>,
    /// A Secrets Manager secret (ARN) whose SecretString is the HMAC key events are
    /// signed with; unsigned without one.
    pub secret: Option<String>,
    /// Posts of one event before it becomes a dead letter.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The first retry's delay; each later one doubles, up to `retry_max_ms`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// How long one post may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_attempts() -> u32 {
    10
}
fn default_retry_initial() -> u64 {
    1000
}
fn default_retry_max() -> u64 {
    300_000
}
fn default_timeout() -> u64 {
    10
}

impl WebhookSettings {
    /// Check every entry, and that names are distinct.
    pub fn validate_all(hooks: &[WebhookSettings]) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for h in hooks {
            if h.name.is_empty()
                || !h
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "webhook name '{}' must be letters, digits, '-' or '_'",
                    h.name
                ));
            }
            if !names.insert(h.name.as_str()) {
                return Err(format!("two webhooks are named {}", h.name));
            }
            if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                return Err(format!("webhook {}: url must be http(s)", h.name));
            }
            if h.max_attempts == 0 || h.retry_initial_ms == 0 || h.timeout_seconds == 0 {
                return Err(format!(
                    "webhook {}: max_attempts, retry_initial_ms and timeout_seconds must be at least 1",
                    h.name
                ));
            }
        }
        Ok(())
    }

    /// Whether an event of `account` and `detail_type` goes to this webhook.
    pub fn wants(&self, account: &str, detail_type: &str) -> bool {
        self.account_id.as_deref().is_none_or(|a| a == account)
            && (self.detail_types.is_empty() || self.detail_types.iter().any(|t| t == detail_type))
    }

    /// The delay before retry `attempt` (1: the first retry).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(30);
        let ms = self
            .retry_initial_ms
            .saturating_mul(factor)
            .min(self.retry_max_ms.max(self.retry_initial_ms));
        std::time::Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> WebhookSettings {
        toml::from_str("name = \"ci\"\nurl = \"http://127.0.0.1:1/\"").expect("parses")
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut h = hook();
        h.retry_initial_ms = 100;
        h.retry_max_ms = 1000;
        let ms: Vec<u128> = (1..=6).map(|a| h.backoff(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn filters_by_account_and_detail_type() {
        let mut h = hook();
        assert!(h.wants("111111111111", "ECR Image Scan"));
        h.account_id = Some("111111111111".into());
        h.detail_types = vec!["ECR Image Action".into()];
        assert!(h.wants("111111111111", "ECR Image Action"));
        assert!(!h.wants("111111111111", "ECR Image Scan"));
        assert!(!h.wants("222222222222", "ECR Image Action"));
    }

    #[test]
    fn names_and_urls_are_checked() {
        let mut h = hook();
        assert!(WebhookSettings::validate_all(&[h.clone()]).is_ok());
        assert!(WebhookSettings::validate_all(&[h.clone(), h.clone()]).is_err());
        h.url = "ftp://x".into();
        assert!(WebhookSettings::validate_all(&[h]).is_err());
    }
}

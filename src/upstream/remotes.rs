//! Remote replication targets, declared in the config file (`[[replication.remotes]]`)
//! beside ECR's own replication configuration, whose shapes stay ECR's: another Berth
//! or ECR, or any OCI registry, that a registry's matching images are pushed to.

use serde::Deserialize;

/// One remote and what goes to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteRule {
    /// Names the remote in logs and in the queue.
    pub name: String,
    /// `http(s)://host[:port]` of the remote registry.
    pub endpoint: String,
    /// The source registry (defaults: the server's account and region).
    pub account_id: Option<String>,
    pub region: Option<String>,
    /// Only repositories whose name starts with this (default: all).
    pub repository_prefix: Option<String>,
    /// Only tags matching this wildcard pattern (`*` any run); untagged images are not
    /// sent when it is set.
    pub tag_pattern: Option<String>,
    /// A Secrets Manager secret (ARN) of the source registry with the remote's
    /// credentials: `{"username", "accessToken"}` (or `"password"`) for Basic or a
    /// token service, or `{"accessKeyId", "secretAccessKey"}` for another Berth or ECR
    /// (Berth logs in with GetAuthorizationToken in `login_region`).
    pub credentials_secret: Option<String>,
    pub login_region: Option<String>,
}

impl RemoteRule {
    /// Whether an image of `repository` with `tag` (None: untagged) goes to this remote.
    pub fn matches(&self, repository: &str, tag: Option<&str>) -> bool {
        let repo_ok = self
            .repository_prefix
            .as_deref()
            .is_none_or(|p| repository.starts_with(p));
        let tag_ok = match (&self.tag_pattern, tag) {
            (None, _) => true,
            (Some(p), Some(t)) => crate::oci::name::tag_pattern_matches(p, t),
            (Some(_), None) => false,
        };
        repo_ok && tag_ok
    }

    /// Check what the config file says.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a remote needs a name".into());
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!(
                "remote {}: endpoint must be an http(s) URL",
                self.name
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_filter_by_prefix_and_tag_pattern() {
        let r = RemoteRule {
            name: "dr".into(),
            endpoint: "http://x".into(),
            account_id: None,
            region: None,
            repository_prefix: Some("prod/".into()),
            tag_pattern: Some("v*".into()),
            credentials_secret: None,
            login_region: None,
        };
        assert!(r.matches("prod/api", Some("v1.2")));
        assert!(!r.matches("prod/api", Some("latest")));
        assert!(!r.matches("prod/api", None));
        assert!(!r.matches("dev/api", Some("v1")));
    }
}

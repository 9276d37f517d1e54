//! Remote replication: images pushed to registries outside the deployment (another
//! Berth or ECR, or any OCI registry), as the config file's `[[replication.remotes]]`
//! say, with a repository prefix and a tag pattern.
//!
//! The replication consumer queues a push per remote, image and tag (a row in the
//! store, so a restart or another node continues it); the job `replication-remote`
//! sends what is due, over the network, and on failure tries again later with
//! exponential backoff (1 s doubling to 5 min). A remote that is down holds its queue;
//! once back, the queue drains in order. Pushing what the remote has already changes
//! nothing there, so a push repeated after a crash duplicates nothing.

use super::*;
use crate::meta::{Event, RemoteItem};
use crate::upstream::remotes::RemoteRule;
use crate::upstream::{Credentials, PushAuth, Target, UpstreamError};

/// Queued pushes sent per run of the job.
const BATCH: i64 = 100;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 300_000;

/// When to try again after `attempts` failures.
fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    1000i64.saturating_mul(1 << exp).min(MAX_BACKOFF_MS)
}

impl Service {
    /// The remotes `event`'s image goes to (the rule's source registry is the event's).
    fn remotes_for(&self, event: &Event) -> Vec<&RemoteRule> {
        self.options
            .remotes
            .iter()
            .filter(|r| {
                r.account_id
                    .as_deref()
                    .is_none_or(|a| a == event.registry.account_id.as_str())
                    && r.region
                        .as_deref()
                        .is_none_or(|g| g == event.registry.region.as_str())
                    && r.matches(&event.repository_name, event.tag.as_deref())
            })
            .collect()
    }

    /// The consumer's part: queue the pushes an image push or tag move asks for.
    pub(super) async fn queue_remote_pushes(&self, event: &Event) -> Result<()> {
        let items: Vec<RemoteItem> = self
            .remotes_for(event)
            .into_iter()
            .map(|r| RemoteItem {
                remote: r.name.clone(),
                registry: event.registry.clone(),
                repository_id: event.repository_id,
                repository_name: event.repository_name.clone(),
                digest: event.digest.clone(),
                tag: event.tag.clone().unwrap_or_default(),
                attempts: 0,
                last_error: None,
            })
            .collect();
        self.meta.enqueue_remote(&items, clock::now_ms()).await?;
        Ok(())
    }

    /// Whether a queued push is due (a read, before the job's lease is taken).
    pub async fn remote_pushes_due(&self) -> Result<bool> {
        if self.options.remotes.is_empty() {
            return Ok(false);
        }
        Ok(!self.meta.due_remote(clock::now_ms(), 1).await?.is_empty())
    }

    /// Send the queued pushes that are due (the job `replication-remote`); how many
    /// reached their remote.
    pub async fn run_remote_pushes(&self) -> Result<usize> {
        let mut sent = 0;
        loop {
            let due = self.meta.due_remote(clock::now_ms(), BATCH).await?;
            if due.is_empty() {
                return Ok(sent);
            }
            let mut progressed = false;
            for item in due {
                let Some(rule) = self.options.remotes.iter().find(|r| r.name == item.remote) else {
                    // The remote left the configuration: its queue goes with it.
                    self.meta.remote_done(&item).await?;
                    continue;
                };
                match self.push_remote(rule, &item).await {
                    Ok(()) => {
                        self.meta.remote_done(&item).await?;
                        sent += 1;
                        progressed = true;
                    }
                    Err(e @ (Error::Busy | Error::StorageFull)) => return Err(e),
                    Err(e) => {
                        let wait = backoff_ms(item.attempts);
                        tracing::warn!(remote = rule.name, digest = item.digest, tag = item.tag, attempts = item.attempts + 1, retry_in_ms = wait, error = %e, "remote replication failed; will retry");
                        self.meta
                            .remote_retry(&item, clock::now_ms() + wait, &e.to_string())
                            .await?;
                    }
                }
            }
            if !progressed {
                return Ok(sent);
            }
        }
    }

    /// Push one queued image (and tag) to its remote.
    async fn push_remote(&self, rule: &RemoteRule, item: &RemoteItem) -> Result<()> {
        let repo = match item.repository_name.parse::<RepositoryName>() {
            Ok(name) => self
                .meta
                .repository(&item.registry, &name)
                .await?
                .filter(|r| r.id == item.repository_id),
            Err(_) => None,
        };
        let Some(repo) = repo else {
            return Ok(()); // the repository is gone: nothing to send
        };
        let Ok(digest) = item.digest.parse::<Digest>() else {
            return Ok(());
        };
        let Some(m) = self.meta.manifest_by_digest(repo.id, &digest).await? else {
            return Ok(()); // deleted since
        };
        let registry = item.registry.clone();
        let target = self.remote_target(rule, &registry).await?;
        let name = repo.name.as_str();
        let auth = self
            .upstream
            .push_auth(&target, name)
            .await
            .map_err(Error::Upstream)?;
        let ctx = Context {
            registry,
            principal: Principal::system("remote replication"),
            source_ip: None,
        };
        Box::pin(self.push_manifest_tree(&ctx, &target, &auth, &repo, &m)).await?;
        let reference = if item.tag.is_empty() {
            item.digest.clone()
        } else {
            item.tag.clone()
        };
        self.upstream
            .push_manifest(
                &target,
                &auth,
                name,
                &reference,
                &m.media_type,
                m.body.clone(),
            )
            .await
            .map_err(Error::Upstream)?;
        tracing::info!(
            remote = rule.name,
            repository = name,
            reference,
            "replicated to a remote"
        );
        Ok(())
    }

    /// Send what `m` references that the remote lacks: an index's children (each by
    /// digest, with their blobs), a manifest's blobs.
    async fn push_manifest_tree(
        &self,
        ctx: &Context,
        target: &Target,
        auth: &PushAuth,
        repo: &Repository,
        m: &StoredManifest,
    ) -> Result<()> {
        let parsed = manifest::parse(&m.body, Some(&m.media_type))
            .map_err(|e| Error::ManifestInvalid(e.0))?;
        let name = repo.name.as_str();
        for child in &parsed.manifests {
            let Some(c) = self.meta.manifest_by_digest(repo.id, child).await? else {
                continue;
            };
            let d = child.to_string();
            if self
                .upstream
                .manifest_present(target, auth, name, &d, &c.media_type)
                .await
                .map_err(Error::Upstream)?
            {
                continue;
            }
            Box::pin(self.push_manifest_tree(ctx, target, auth, repo, &c)).await?;
            self.upstream
                .push_manifest(target, auth, name, &d, &c.media_type, c.body.clone())
                .await
                .map_err(Error::Upstream)?;
        }
        for blob in &parsed.blobs {
            let d = blob.to_string();
            if self
                .upstream
                .blob_present(target, auth, name, &d)
                .await
                .map_err(Error::Upstream)?
            {
                continue;
            }
            let (size, stream) = self.blob_bytes(ctx, &repo.name, blob).await?;
            self.upstream
                .push_blob(target, auth, name, &d, size, stream)
                .await
                .map_err(Error::Upstream)?;
        }
        Ok(())
    }

    /// Where a rule's pushes go and with which credentials (from its secret).
    async fn remote_target(&self, rule: &RemoteRule, registry: &RegistryKey) -> Result<Target> {
        let endpoint = rule.endpoint.trim_end_matches('/').to_owned();
        let Some(arn) = &rule.credentials_secret else {
            return Ok(Target {
                endpoint,
                credentials: None,
            });
        };
        let Some(secrets_manager::SecretValue::String(text)) =
            self.secret_for_service(registry, arn).await?
        else {
            return Err(Error::Upstream(UpstreamError::AccessDenied(format!(
                "the secret {arn} of remote {} is missing or not text",
                rule.name
            ))));
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let s = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let credentials = match (s("accessKeyId"), s("secretAccessKey"), s("username")) {
            (Some(key), Some(secret), _) => {
                let region = rule
                    .login_region
                    .clone()
                    .unwrap_or_else(|| registry.region.to_string());
                let password = self
                    .upstream
                    .ecr_login(&endpoint, &region, &key, &secret)
                    .await
                    .map_err(Error::Upstream)?;
                Credentials {
                    username: "AWS".into(),
                    secret: password,
                }
            }
            (_, _, Some(username)) => Credentials {
                username,
                secret: s("accessToken").or_else(|| s("password")).unwrap_or_default(),
            },
            _ => {
                return Err(Error::Upstream(UpstreamError::AccessDenied(format!(
                    "the secret {arn} holds neither username/accessToken nor accessKeyId/secretAccessKey"
                ))))
            }
        };
        Ok(Target {
            endpoint,
            credentials: Some(credentials),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(1), 2000);
        assert_eq!(backoff_ms(5), 32_000);
        assert_eq!(backoff_ms(9), 300_000);
        assert_eq!(backoff_ms(60), 300_000);
    }
}

//! Replication: a registry's configuration (PutReplicationConfiguration, shown by
//! DescribeRegistry), the outbox consumer that copies each push, tag move and (with
//! `deleteReplication`) deletion to the matching destinations, and
//! DescribeImageReplicationStatus.
//!
//! Within one deployment a replica is a metadata copy: blobs are content-addressed in
//! one store, so the destination repository gets links to them and a copy of each
//! manifest, stored through the same path as a push (tag immutability, scan on push).
//! A copy's own changes are recorded as replication's (`EventKind::ImageReplicated`), so
//! they are not replicated on: no chains, no loops.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;
use crate::meta::{
    Destination, DocumentKind, Event, EventKind, ReplicationRecord, ReplicationState,
};

/// The outbox consumer that replicates (its job is `outbox:replication`).
pub const REPLICATION_CONSUMER: &str = "replication";

/// ECR's limit on distinct destinations across all rules.
pub const MAX_DESTINATIONS: usize = 25;

/// A registry's replication configuration, stored as ECR's JSON shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationConfig {
    pub rules: Vec<ReplicationRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationRule {
    pub destinations: Vec<RuleDestination>,
    /// Repository name prefixes (`PREFIX_MATCH`); none: every repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repository_filters: Vec<RepositoryFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_replication: Option<DeleteReplication>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleDestination {
    pub region: String,
    pub registry_id: String,
}

impl RuleDestination {
    pub fn destination(&self) -> Destination {
        Destination {
            account_id: self.registry_id.clone(),
            region: self.region.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryFilter {
    pub filter: String,
    pub filter_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteReplication {
    pub enabled: bool,
}

/// A destination a repository replicates to, and whether deletions follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub destination: Destination,
    pub delete_replication: bool,
}

impl ReplicationRule {
    fn matches(&self, repository: &str) -> bool {
        self.repository_filters.is_empty()
            || self
                .repository_filters
                .iter()
                .any(|f| repository.starts_with(&f.filter))
    }
}

impl ReplicationConfig {
    /// Where `repository` replicates to, each destination once (deletions follow if
    /// any matching rule says so), in the order the rules name them.
    pub fn targets(&self, repository: &str) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.matches(repository)) {
            let deletes = rule.delete_replication.is_some_and(|d| d.enabled);
            for d in &rule.destinations {
                let destination = d.destination();
                match out.iter_mut().find(|t| t.destination == destination) {
                    Some(t) => t.delete_replication |= deletes,
                    None => out.push(Target {
                        destination,
                        delete_replication: deletes,
                    }),
                }
            }
        }
        out
    }

    /// Whether any rule names `destination`.
    pub fn names(&self, destination: &Destination) -> bool {
        self.rules
            .iter()
            .flat_map(|r| &r.destinations)
            .any(|d| d.destination() == *destination)
    }
}

/// Why a replication failed: Berth's failure codes (ECR documents none; see
/// docs/compatibility.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReplicationFailure {
    /// The destination's registry policy does not let the source account replicate
    /// (`ecr:ReplicateImage`, and `ecr:CreateRepository` for a new repository).
    PermissionDenied,
    /// The destination tag is immutable and names another image.
    TagImmutable,
    /// The image was deleted from the source before it was replicated.
    ImageNotFound,
    /// A blob or child manifest the image references is gone from the source.
    ContentMissing,
    /// Images an index references failed (their codes are the sub-image codes).
    SubImageFailed,
    /// The destination repository could not be created (an invalid template).
    RepositoryCreationFailed,
}

impl ReplicationFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationFailure::PermissionDenied => "PERMISSION_DENIED",
            ReplicationFailure::TagImmutable => "IMAGE_TAG_IMMUTABLE",
            ReplicationFailure::ImageNotFound => "IMAGE_NOT_FOUND",
            ReplicationFailure::ContentMissing => "REFERENCED_CONTENT_MISSING",
            ReplicationFailure::SubImageFailed => "SUB_IMAGE_REPLICATION_FAILED",
            ReplicationFailure::RepositoryCreationFailed => "REPOSITORY_CREATION_FAILED",
        }
    }
}

/// What one replication of an image came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replicated {
    pub failure: Option<ReplicationFailure>,
    /// For an index: the distinct codes of its children that failed.
    pub sub_failures: Vec<ReplicationFailure>,
}

impl Replicated {
    fn failed(f: ReplicationFailure) -> Replicated {
        Replicated {
            failure: Some(f),
            sub_failures: Vec::new(),
        }
    }

    pub fn record(
        &self,
        repository_id: i64,
        digest: &str,
        destination: &Destination,
    ) -> ReplicationRecord {
        ReplicationRecord {
            repository_id,
            digest: digest.to_owned(),
            destination: destination.clone(),
            status: if self.failure.is_some() {
                "FAILED"
            } else {
                "COMPLETE"
            },
            failure_code: self.failure.map(|f| f.as_str().to_owned()),
        }
    }
}

/// An image's replication to one destination, as DescribeImageReplicationStatus shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReplication {
    pub destination: Destination,
    pub status: String,
    pub failure_code: Option<String>,
}

/// The contexts a replication acts in at its destination.
struct Replicator {
    /// Decides what the source account may do there (its root, for another account;
    /// the system within the same account, which needs no permission).
    checked: Context,
    /// Stores the copy once the checks passed.
    system: Context,
    cross_account: bool,
}

impl Service {
    // ---- configuration ----

    pub async fn put_replication_configuration(
        &self,
        ctx: &Context,
        config: ReplicationConfig,
    ) -> Result<ReplicationConfig> {
        self.authorize_registry(ctx, Action::PutReplicationConfiguration)
            .await?;
        let mut distinct: Vec<Destination> = Vec::new();
        for d in config.rules.iter().flat_map(|r| &r.destinations) {
            let dest = d.destination();
            if dest.account_id == ctx.registry.account_id.as_str()
                && dest.region == ctx.registry.region.as_str()
            {
                return Err(Error::InvalidParameter(
                    "Invalid parameter at 'replicationConfiguration' failed to satisfy constraint: 'Replication destination cannot be the same as the source registry'".into(),
                ));
            }
            if !distinct.contains(&dest) {
                distinct.push(dest);
            }
        }
        if distinct.len() > MAX_DESTINATIONS {
            return Err(Error::InvalidParameter(format!(
                "Invalid parameter at 'replicationConfiguration' failed to satisfy constraint: 'A replication configuration can have at most {MAX_DESTINATIONS} unique destinations'"
            )));
        }
        let body = serde_json::to_string(&config)
            .map_err(|e| Error::Internal(format!("replication configuration: {e}")))?;
        self.meta
            .put_registry_document(
                &ctx.registry,
                DocumentKind::Replication,
                &body,
                clock::now_ms(),
            )
            .await?;
        Ok(config)
    }

    /// DescribeRegistry's answer: the registry's replication configuration.
    pub async fn describe_registry(&self, ctx: &Context) -> Result<Arc<ReplicationConfig>> {
        self.authorize_registry(ctx, Action::DescribeRegistry)
            .await?;
        self.replication_config(&ctx.registry).await
    }

    /// A registry's configuration (empty if it has none), cached.
    pub(super) async fn replication_config(
        &self,
        reg: &RegistryKey,
    ) -> Result<Arc<ReplicationConfig>> {
        if let Some(c) = self.cache.replication(reg) {
            return Ok(c);
        }
        let seen = self.cache.epoch();
        let config = match self
            .meta
            .registry_document(reg, DocumentKind::Replication)
            .await?
        {
            Some(body) => serde_json::from_str(&body)
                .map_err(|e| Error::Internal(format!("stored replication configuration: {e}")))?,
            None => ReplicationConfig::default(),
        };
        let config = Arc::new(config);
        self.cache.put_replication(seen, reg, config.clone());
        Ok(config)
    }

    // ---- status ----

    pub async fn describe_image_replication_status(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &ImageId,
    ) -> Result<(ImageId, Vec<ImageReplication>)> {
        let (repo, shown) = self
            .image_for_status(ctx, name, id, Action::DescribeImageReplicationStatus)
            .await?;
        let digest = shown.digest.as_deref().unwrap_or_default();
        let recorded = self.meta.replication_states(repo.id, digest).await?;
        let config = self.replication_config(&ctx.registry).await?;
        let pending = self
            .meta
            .change_pending(&format!("outbox:{REPLICATION_CONSUMER}"), repo.id, digest)
            .await?;
        let statuses = merge_statuses(recorded, &config.targets(name.as_str()), pending);
        Ok((shown, statuses))
    }

    // ---- the consumer ----

    /// The replication job's work for one outbox event. Idempotent: events are
    /// delivered at least once, and a copy of what is there already changes nothing.
    pub async fn replicate_for_event(&self, event: &Event) -> Result<()> {
        let deletion = match event.kind {
            EventKind::ImagePushed | EventKind::TagMoved => false,
            EventKind::ImageDeleted | EventKind::TagDeleted => true,
            _ => return Ok(()),
        };
        if !deletion {
            self.queue_remote_pushes(event).await?;
        }
        let config = self.replication_config(&event.registry).await?;
        let targets = config.targets(&event.repository_name);
        if targets.is_empty() {
            return Ok(());
        }
        let Ok(name) = event.repository_name.parse::<RepositoryName>() else {
            return Ok(());
        };
        if deletion {
            for t in targets.iter().filter(|t| t.delete_replication) {
                self.replicate_deletion(event, &name, &t.destination)
                    .await?;
            }
            return Ok(());
        }
        let Some(repo) = self
            .meta
            .repository(&event.registry, &name)
            .await?
            .filter(|r| r.id == event.repository_id)
        else {
            return Ok(()); // the repository was deleted since
        };
        let tag = event.tag.as_deref().and_then(|t| t.parse::<Tag>().ok());
        let system = Principal::system("replication");
        let mut records = Vec::with_capacity(targets.len());
        for t in &targets {
            let r = self
                .replicate_image(
                    &event.registry,
                    &repo,
                    &event.digest,
                    tag.as_ref(),
                    &t.destination,
                    &system,
                )
                .await?;
            if let Some(f) = r.failure {
                tracing::warn!(repository = %name, digest = event.digest, destination = ?t.destination, failure = f.as_str(), "replication failed");
            }
            records.push(r.record(repo.id, &event.digest, &t.destination));
        }
        let source = crate::meta::EventSource {
            registry: &event.registry,
            repository_id: repo.id,
            repository_name: &event.repository_name,
            replicated: false,
        };
        self.meta
            .record_replications(&source, event.tag.as_deref(), &records, clock::now_ms())
            .await?;
        Ok(())
    }

    /// Copy one image (with `tag`, if given) to `destination`. An error is the store's
    /// (the caller tries again); what the image or the destination refuses is a failure.
    pub(super) async fn replicate_image(
        &self,
        source: &RegistryKey,
        repo: &Repository,
        digest: &str,
        tag: Option<&Tag>,
        destination: &Destination,
        system: &Principal,
    ) -> Result<Replicated> {
        let Ok(d) = digest.parse::<Digest>() else {
            return Ok(Replicated::failed(ReplicationFailure::ImageNotFound));
        };
        let Some(manifest) = self.meta.manifest_by_digest(repo.id, &d).await? else {
            return Ok(Replicated::failed(ReplicationFailure::ImageNotFound));
        };
        let Some(at) = self.replicator(source, destination, system) else {
            return Ok(Replicated::failed(ReplicationFailure::PermissionDenied));
        };
        let target = match self.replica_repository(&at, &repo.name).await {
            Ok(t) => t,
            Err(e) => return replication_failure(e),
        };
        self.copy_image(&at, repo, &target, &manifest, tag).await
    }

    fn replicator(
        &self,
        source: &RegistryKey,
        destination: &Destination,
        system: &Principal,
    ) -> Option<Replicator> {
        let registry = RegistryKey {
            account_id: crate::aws::AccountId::parse(&destination.account_id)?,
            region: crate::aws::Region::parse(&destination.region)?,
        };
        let cross_account = registry.account_id != source.account_id;
        let checked = Context {
            registry: registry.clone(),
            principal: if cross_account {
                Principal::system_as_root(&source.account_id, "cross-account replication")
            } else {
                system.clone()
            },
            source_ip: None,
        };
        Some(Replicator {
            checked,
            system: Context {
                registry,
                principal: system.clone(),
                source_ip: None,
            },
            cross_account,
        })
    }

    /// The destination repository, created (from the REPLICATION template that
    /// matches, else with defaults) if missing. Another account needs its registry
    /// policy to allow `ecr:ReplicateImage`, and `ecr:CreateRepository` to create.
    async fn replica_repository(
        &self,
        at: &Replicator,
        name: &RepositoryName,
    ) -> Result<Repository> {
        if at.cross_account {
            self.authorize(&at.checked, Action::ReplicateImage, name)
                .await?;
        }
        if let Some(r) = self.find_repository(&at.system, name).await? {
            return Ok(r);
        }
        if let Some(r) = self
            .create_from_template(&at.checked, name, AppliedFor::Replication)
            .await?
        {
            return Ok(r);
        }
        self.authorize_creation(&at.checked, name, &[]).await?;
        self.create_default_repository(&at.system, name).await
    }

    /// Copy a manifest, its blob links and (for an index) its children, then store it
    /// as a push would.
    async fn copy_image(
        &self,
        at: &Replicator,
        source: &Repository,
        target: &Repository,
        m: &StoredManifest,
        tag: Option<&Tag>,
    ) -> Result<Replicated> {
        if m.archived {
            return Ok(Replicated::failed(ReplicationFailure::ImageNotFound));
        }
        let Ok(parsed) = manifest::parse(&m.body, Some(&m.media_type)) else {
            return Ok(Replicated::failed(ReplicationFailure::ContentMissing));
        };
        let mut subs: Vec<ReplicationFailure> = Vec::new();
        for child in &parsed.manifests {
            if self
                .meta
                .manifest_by_digest(target.id, child)
                .await?
                .is_some()
            {
                continue;
            }
            let outcome = match self.meta.manifest_by_digest(source.id, child).await? {
                Some(c) => Box::pin(self.copy_image(at, source, target, &c, None)).await?,
                None => Replicated::failed(ReplicationFailure::ContentMissing),
            };
            if let Some(f) = outcome.failure {
                if !subs.contains(&f) {
                    subs.push(f);
                }
            }
        }
        if !subs.is_empty() {
            return Ok(Replicated {
                failure: Some(ReplicationFailure::SubImageFailed),
                sub_failures: subs,
            });
        }
        let blobs: Vec<String> = parsed.blobs.iter().map(ToString::to_string).collect();
        let mut unique = blobs.clone();
        unique.sort();
        unique.dedup();
        let linked = self
            .meta
            .link_blobs(target.id, &unique, clock::now_ms())
            .await?;
        if linked < unique.len() {
            return Ok(Replicated::failed(ReplicationFailure::ContentMissing));
        }
        let reference = match (tag, m.digest.parse::<Digest>()) {
            (Some(t), _) => Reference::Tag(t.clone()),
            (None, Ok(d)) => Reference::Digest(d),
            (None, Err(_)) => return Ok(Replicated::failed(ReplicationFailure::ImageNotFound)),
        };
        let stored = self
            .store_manifest(
                &at.system,
                &target.name,
                &reference,
                Some(&m.media_type),
                &m.body,
                PushPath::Replication,
            )
            .await;
        match stored {
            Ok(_) => Ok(Replicated::default()),
            Err(e) => replication_failure(e),
        }
    }

    /// With `deleteReplication`: remove the deleted image, or the removed tag (if it
    /// still names the same image), from the destination.
    async fn replicate_deletion(
        &self,
        event: &Event,
        name: &RepositoryName,
        destination: &Destination,
    ) -> Result<()> {
        let Some(at) = self.replicator(
            &event.registry,
            destination,
            &Principal::system("replicated deletion"),
        ) else {
            return Ok(());
        };
        if at.cross_account
            && self
                .authorize(&at.checked, Action::ReplicateImage, name)
                .await
                .is_err()
        {
            return Ok(());
        }
        let Some(target) = self.find_repository(&at.system, name).await? else {
            return Ok(());
        };
        let source = EventSource {
            registry: &at.system.registry,
            repository_id: target.id,
            repository_name: target.name.as_str(),
            replicated: true,
        };
        let Ok(digest) = event.digest.parse::<Digest>() else {
            return Ok(());
        };
        match event.tag.as_deref().map(str::parse::<Tag>) {
            Some(Ok(tag)) => {
                let current = self.meta.manifest_by_tag(target.id, &tag).await?;
                if current.is_some_and(|m| m.digest == event.digest) {
                    self.meta.delete_tag(&source, &tag).await?;
                }
            }
            Some(Err(_)) => {}
            None => {
                // A manifest an index still references stays (as on the source).
                self.meta.delete_manifest(&source, &digest).await?;
            }
        }
        Ok(())
    }
}

/// A service error met while replicating: a failure the image or the destination
/// causes, or (Err) a store error the job tries again.
fn replication_failure(e: Error) -> Result<Replicated> {
    let f = match e {
        Error::AccessDenied(_) => ReplicationFailure::PermissionDenied,
        Error::TagImmutable { .. } => ReplicationFailure::TagImmutable,
        Error::ManifestBlobsMissing { .. } | Error::ManifestChildrenMissing { .. } => {
            ReplicationFailure::ContentMissing
        }
        Error::InvalidParameter(_) | Error::Ecr(..) => ReplicationFailure::RepositoryCreationFailed,
        other => return Err(other),
    };
    Ok(Replicated::failed(f))
}

/// What DescribeImageReplicationStatus shows: each recorded outcome, and IN_PROGRESS
/// for a destination the image now replicates to while its push waits in the outbox.
fn merge_statuses(
    recorded: Vec<ReplicationState>,
    targets: &[Target],
    pending: bool,
) -> Vec<ImageReplication> {
    let mut by_dest: BTreeMap<Destination, ImageReplication> = BTreeMap::new();
    for r in recorded {
        by_dest.insert(
            r.destination.clone(),
            ImageReplication {
                destination: r.destination,
                status: r.status,
                failure_code: r.failure_code,
            },
        );
    }
    for t in targets {
        if pending {
            by_dest.insert(
                t.destination.clone(),
                ImageReplication {
                    destination: t.destination.clone(),
                    status: "IN_PROGRESS".into(),
                    failure_code: None,
                },
            );
        }
    }
    by_dest.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(account: &str, region: &str) -> RuleDestination {
        RuleDestination {
            region: region.into(),
            registry_id: account.into(),
        }
    }

    fn config() -> ReplicationConfig {
        ReplicationConfig {
            rules: vec![
                ReplicationRule {
                    destinations: vec![dest("111111111111", "eu-west-1")],
                    repository_filters: vec![RepositoryFilter {
                        filter: "prod".into(),
                        filter_type: "PREFIX_MATCH".into(),
                    }],
                    delete_replication: Some(DeleteReplication { enabled: true }),
                },
                ReplicationRule {
                    destinations: vec![
                        dest("111111111111", "eu-west-1"),
                        dest("222222222222", "us-west-2"),
                    ],
                    repository_filters: vec![],
                    delete_replication: None,
                },
            ],
        }
    }

    #[test]
    fn targets_are_distinct_and_deletions_follow_any_rule() {
        let t = config().targets("prod/api");
        assert_eq!(t.len(), 2);
        assert!(t[0].delete_replication);
        assert!(!t[1].delete_replication);
        let t = config().targets("dev/api");
        assert_eq!(t.len(), 2);
        assert!(!t[0].delete_replication, "only the prefix rule deletes");
    }

    #[test]
    fn the_stored_shape_is_ecrs() {
        let json = serde_json::to_value(config()).expect("json");
        assert_eq!(
            json["rules"][0]["repositoryFilters"][0]["filterType"],
            "PREFIX_MATCH"
        );
        assert_eq!(json["rules"][0]["deleteReplication"]["enabled"], true);
        assert!(json["rules"][1].get("deleteReplication").is_none());
        assert!(json["rules"][1].get("repositoryFilters").is_none());
    }

    #[test]
    fn a_pending_push_shows_in_progress_over_an_earlier_outcome() {
        let targets = config().targets("prod/api");
        let recorded = vec![ReplicationState {
            destination: targets[0].destination.clone(),
            status: "COMPLETE".into(),
            failure_code: None,
        }];
        let done = merge_statuses(recorded.clone(), &targets, false);
        assert_eq!(done.len(), 1, "only recorded outcomes when nothing waits");
        let waiting = merge_statuses(recorded, &targets, true);
        assert_eq!(waiting.len(), 2);
        assert!(waiting.iter().all(|s| s.status == "IN_PROGRESS"));
    }
}

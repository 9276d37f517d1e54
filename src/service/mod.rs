//! The operation layer: one function per operation, shared by every front end.
//!
//! Each function names the ECR IAM action it is authorized as (spec §5.3), checks it via
//! [`Service::authorize`], then acts on the metadata and blob stores. Front ends (the OCI
//! registry, the ECR JSON API, IAM/STS) only translate requests into these calls. The
//! operations live in modules by domain: repositories, manifests, images, layers,
//! uploads, policies, login, iam, scanning, lifecycle, templates, gc, settings.

mod audit_trail;
mod authz;
mod backfill;
mod cache;
mod cached_pulls;
mod error;
mod gc;
mod iam;
mod images;
mod layers;
mod lifecycle;
mod login;
mod login_profiles;
mod manifests;
mod notifications;
mod paging;
mod policies;
mod provisioning;
mod pull_through;
mod remote_replication;
mod replication;
mod repositories;
mod scanner;
mod scanning;
pub mod secrets_manager;
mod settings;
mod signals;
mod signer;
mod signing;
mod templates;
mod uploads;
mod usage;
mod vulndb;

use std::sync::Arc;

use bytes::Bytes;

pub use backfill::{BackfillStatus, ResultStatus};
pub use error::{EcrErrorKind, Error, IamErrorKind, Result};
pub use iam::{IamCaller, NewIdentity};
pub use images::{ImageFailure, ImageFilter, ImageId};
pub use layers::{BlobDownload, DownloadBody, LayerCheck};
pub use lifecycle::{LifecyclePolicyInfo, Preview, PreviewResult};
pub use login::AuthorizationData;
pub use login_profiles::LoginProfile;
pub(crate) use manifests::PushPath;
pub use manifests::PutManifest;
use manifests::{converted_manifest, event_source};
pub use notifications::Notification;
pub use paging::{page_after, Listing};
pub use provisioning::KeyImport;
pub use pull_through::{CacheExpiry, CacheRule, NewCacheRule, RuleValidation};
pub use replication::{
    DeleteReplication, ImageReplication, ReplicationConfig, ReplicationRule, RepositoryFilter,
    RuleDestination, REPLICATION_CONSUMER,
};
pub use repositories::MAX_RESOURCE_TAGS;
pub use scanning::{RegistryScanning, RepositoryScanning};
pub use signer::{
    profile_arn, valid_profile_name, SignerErrorKind, ValidityUnit, DEFAULT_VALIDITY,
};
pub use signing::{SigningConfig, SigningFilter, SigningRule};
pub use templates::{normalize_prefix, AppliedFor, CreationTemplate, TemplateInput};
pub use uploads::PART_SIZE;
pub use usage::{CostReport, Month, RepositoryCost, TransferTarget, UsageSettings};

use cache::ReadCache;

use crate::blobs::{self, BlobReader, BlobStore};
use crate::clock;
use crate::meta::{
    DeleteOutcome, EventSource, MetaStore, NewManifest, PutManifestOutcome, Referrer, RegistryKey,
    Repository, StoredManifest,
};
use crate::oci::convert;
use crate::oci::manifest::{self, MAX_MANIFEST_BYTES};
use crate::oci::{Digest, Reference, RepositoryName, Tag};
use crate::public_url::PublicUrl;

/// The ECR IAM actions operations are authorized as (`ecr:<Action>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    BatchCheckLayerAvailability,
    BatchDeleteImage,
    BatchGetImage,
    CompleteLayerUpload,
    CreateRepository,
    DeleteRepository,
    DescribeImages,
    DescribeRegistry,
    DescribeRepositories,
    GetAuthorizationToken,
    GetDownloadUrlForLayer,
    InitiateLayerUpload,
    ListImages,
    ListTagsForResource,
    PutImage,
    PutImageScanningConfiguration,
    PutImageTagMutability,
    TagResource,
    UntagResource,
    UploadLayerPart,
    SetRepositoryPolicy,
    GetRepositoryPolicy,
    DeleteRepositoryPolicy,
    PutRegistryPolicy,
    GetRegistryPolicy,
    DeleteRegistryPolicy,
    PutLifecyclePolicy,
    GetLifecyclePolicy,
    DeleteLifecyclePolicy,
    StartLifecyclePolicyPreview,
    GetLifecyclePolicyPreview,
    CreateRepositoryCreationTemplate,
    DescribeRepositoryCreationTemplates,
    UpdateRepositoryCreationTemplate,
    DeleteRepositoryCreationTemplate,
    UpdateImageStorageClass,
    GetAccountSetting,
    PutAccountSetting,
    RegisterPullTimeUpdateExclusion,
    DeregisterPullTimeUpdateExclusion,
    ListPullTimeUpdateExclusions,
    StartImageScan,
    DescribeImageScanFindings,
    PutRegistryScanningConfiguration,
    GetRegistryScanningConfiguration,
    BatchGetRepositoryScanningConfiguration,
    CreatePullThroughCacheRule,
    DescribePullThroughCacheRules,
    UpdatePullThroughCacheRule,
    DeletePullThroughCacheRule,
    ValidatePullThroughCacheRule,
    /// A pull that brings an image from a pull-through cache's upstream.
    BatchImportUpstreamImage,
    PutReplicationConfiguration,
    DescribeImageReplicationStatus,
    /// Another account's replication into this registry (its registry policy decides).
    ReplicateImage,
    StartReplicationBackfill,
    StopReplicationBackfill,
    ListReplicationBackfills,
    DescribeReplicationBackfillResults,
    PutSigningConfiguration,
    GetSigningConfiguration,
    DeleteSigningConfiguration,
    DescribeImageSigningStatus,
}

impl Action {
    pub fn name(self) -> String {
        format!("{self:?}")
    }
}

pub use crate::auth::Principal;

/// The registry a request addresses and who makes it.
#[derive(Debug, Clone)]
pub struct Context {
    pub registry: RegistryKey,
    pub principal: Principal,
    /// The client's address (`aws:SourceIp`), when the request came over the network.
    pub source_ip: Option<String>,
}

/// Options of the operation layer.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create a missing repository on first push (plain-OCI convenience; off, as on ECR).
    pub create_on_push: bool,
    /// Where clients reach Berth: every address it advertises is built from it.
    pub public: PublicUrl,
    /// The garbage collector's grace period (ms): a blob HEAD refreshes a link older
    /// than a quarter of it, so the manifest that follows finds the link still there.
    pub gc_grace_ms: i64,
    /// Answer blob GETs with a redirect to the blob store's presigned URL, where it has
    /// them (object storage), instead of sending the bytes.
    pub blob_redirect: bool,
    /// The pull-through cache's upstreams and timings.
    pub pull_through: crate::upstream::CacheSettings,
    /// Where blobs fetched from upstreams are spooled while clients read them.
    pub spool_dir: std::path::PathBuf,
    /// Remote registries replication pushes to (`[[replication.remotes]]`).
    pub remotes: Vec<crate::upstream::remotes::RemoteRule>,
    /// What the audit trail records.
    pub audit: crate::audit::AuditSettings,
    /// Prices and sampling of the usage report.
    pub usage: UsageSettings,
}

/// A byte range as a client asks for it, before the blob size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start-` or `start-end` (inclusive).
    From { start: u64, end: Option<u64> },
    /// `-n`: the last n bytes.
    Last(u64),
}

impl ByteRange {
    /// The inclusive range within a blob of `size` bytes, or `None` if unsatisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { start, end } => {
                let end = end.unwrap_or(u64::MAX).min(size.checked_sub(1)?);
                (start <= end).then_some((start, end))
            }
            ByteRange::Last(n) => {
                let n = n.min(size);
                (n > 0).then(|| (size - n, size - 1))
            }
        }
    }
}

/// ECR refreshes `lastRecordedPullTime` at most once a day.
const PULL_RECORD_INTERVAL_MS: i64 = 24 * 3600 * 1000;

/// When this process last recorded a pull of each image.
#[derive(Default)]
struct PullRecorder(std::sync::Mutex<std::collections::HashMap<(i64, String), i64>>);

impl PullRecorder {
    /// Whether a pull at `now` should be written (and note it if so).
    fn due(&self, repository_id: i64, digest: &str, now: i64) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let key = (repository_id, digest.to_owned());
        if m.get(&key)
            .is_some_and(|&t| now - t < PULL_RECORD_INTERVAL_MS)
        {
            return false;
        }
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(key, now);
        true
    }

    /// Undo `due`: the pull was not recorded after all.
    fn forget(&self, repository_id: i64, digest: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&(repository_id, digest.to_owned()));
        }
    }
}

/// Page size when a client gives none.
const DEFAULT_PAGE: u32 = 1000;
/// Largest page a client may ask for.
const MAX_PAGE: u32 = 10_000;

pub struct Service {
    meta: Arc<MetaStore>,
    blobs: Arc<dyn BlobStore>,
    options: Options,
    cache: Arc<ReadCache>,
    pulls: Arc<PullRecorder>,
    policies: Arc<authz::PolicyCache>,
    /// The pull-through cache's client to upstream registries (and its token cache).
    upstream: Arc<crate::upstream::Client>,
    /// Upstream fetches in progress on this node (cached_pulls.rs).
    fetches: Arc<cached_pulls::Fetches>,
    /// The deployment's signing CA, read once (it never changes once created).
    signing_ca: tokio::sync::OnceCell<crate::signing::KeyAndCert>,
    /// This process's audit trail writer.
    audit: crate::audit::AuditLog,
    /// Bytes this node's pulls sent, not yet in the store.
    transfer: usage::TransferMeter,
    /// This service, for the background work a request starts (upstream fetches) that
    /// must outlive the request.
    me: std::sync::Weak<Service>,
}

impl Service {
    pub fn new(meta: MetaStore, blobs: Arc<dyn BlobStore>, options: Options) -> Arc<Service> {
        // Alone, caches keep entries until a change drops them; beside other nodes,
        // which notify their changes, only for seconds (see cache.rs).
        let meta_single_node = meta.is_single_node();
        let sharing = match (meta_single_node, meta.hears_other_writers()) {
            (true, _) => cache::Sharing::Alone,
            (false, true) => cache::Sharing::Notified,
            (false, false) => cache::Sharing::Unheard,
        };
        let cache = Arc::new(ReadCache::new(sharing));
        let policies = Arc::new(authz::PolicyCache::new(meta_single_node));
        // The caches hear of every change from the store itself (meta/changes.rs).
        meta.changes().subscribe(cache.clone());
        meta.changes().subscribe(policies.clone());
        let meta = Arc::new(meta);
        let audit = crate::audit::AuditLog::start(meta.clone(), options.audit.clone(), |n| {
            crate::observe::metrics::metrics().audit_records(n)
        });
        Arc::new_cyclic(|me| Service {
            meta,
            audit,
            transfer: usage::TransferMeter::default(),
            blobs,
            options,
            cache,
            pulls: Arc::new(PullRecorder::default()),
            policies,
            upstream: Arc::new(crate::upstream::Client::new()),
            fetches: Arc::new(cached_pulls::Fetches::default()),
            signing_ca: tokio::sync::OnceCell::new(),
            me: me.clone(),
        })
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// Where clients reach this deployment.
    pub fn public_url(&self) -> &PublicUrl {
        &self.options.public
    }

    pub fn audit(&self) -> &crate::audit::AuditLog {
        &self.audit
    }

    /// Note a pull for DescribeImages' `lastRecordedPullTime`: at most one write per image
    /// per day, off the request's path.
    /// Principals registered with RegisterPullTimeUpdateExclusion are not recorded.
    fn record_pull(&self, ctx: &Context, repo: &Repository, digest: &str) {
        let now = clock::now_ms();
        if !self.pulls.due(repo.id, digest, now) {
            return;
        }
        let meta = self.meta.clone();
        let pulls = self.pulls.clone();
        let (id, digest) = (repo.id, digest.to_owned());
        let registry = ctx.registry.clone();
        let arns: Vec<String> = ctx
            .principal
            .caller()
            .map(|c| vec![c.principal_arn, c.arn])
            .unwrap_or_default();
        tokio::spawn(async move {
            let record = async {
                let excluded = meta.pull_time_exclusions(&registry).await?;
                if arns.iter().any(|a| excluded.contains(a)) {
                    pulls.forget(id, &digest);
                    return Ok(());
                }
                meta.record_pull(id, &digest, now, now - PULL_RECORD_INTERVAL_MS)
                    .await
            };
            if let Err(e) = record.await {
                tracing::warn!(error = %e, "recording a pull failed");
            }
        });
    }

    fn not_found(ctx: &Context, name: &RepositoryName) -> Error {
        Error::RepositoryNotFound {
            name: name.to_string(),
            registry_id: ctx.registry.account_id.clone(),
        }
    }

    async fn repository(&self, ctx: &Context, name: &RepositoryName) -> Result<Repository> {
        self.find_repository(ctx, name)
            .await?
            .ok_or_else(|| Self::not_found(ctx, name))
    }

    pub(super) async fn find_repository(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<Option<Repository>> {
        if let Some(repo) = self.cache.repository(&ctx.registry, name.as_str()) {
            return Ok(Some(repo));
        }
        let found = self.meta.repository(&ctx.registry, name).await?;
        if let Some(repo) = &found {
            self.cache.put_repository(&ctx.registry, repo);
        }
        Ok(found)
    }

    /// The repository a push goes to; created here only when create-on-push is enabled.
    async fn repository_for_push(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<Repository> {
        if let Some(repo) = self.find_repository(ctx, name).await? {
            return Ok(repo);
        }
        if !self.options.create_on_push {
            return match self
                .create_from_template(ctx, name, AppliedFor::CreateOnPush)
                .await?
            {
                Some(repo) => Ok(repo),
                None => Err(Self::not_found(ctx, name)),
            };
        }
        self.authorize(ctx, Action::CreateRepository, name).await?;
        self.create_default_repository(ctx, name).await
    }

    /// Create a repository with default settings (the caller authorized it); one
    /// created concurrently by another request is that one.
    async fn create_default_repository(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<Repository> {
        let created = self
            .meta
            .create_repository(
                &ctx.registry,
                name,
                &Default::default(),
                &[],
                clock::now_ms(),
            )
            .await?;
        match created {
            Some(repo) => Ok(repo),
            None => self.repository(ctx, name).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange;

    #[test]
    fn ranges_resolve_against_size() {
        let r = |start, end| ByteRange::From { start, end };
        assert_eq!(r(0, Some(9)).resolve(100), Some((0, 9)));
        assert_eq!(r(90, None).resolve(100), Some((90, 99)));
        assert_eq!(r(90, Some(500)).resolve(100), Some((90, 99)));
        assert_eq!(r(100, None).resolve(100), None);
        assert_eq!(r(5, Some(4)).resolve(100), None);
        assert_eq!(ByteRange::Last(10).resolve(100), Some((90, 99)));
        assert_eq!(ByteRange::Last(500).resolve(100), Some((0, 99)));
        assert_eq!(ByteRange::Last(0).resolve(100), None);
        assert_eq!(r(0, None).resolve(0), None);
    }
}

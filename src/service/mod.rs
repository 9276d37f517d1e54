//! The operation layer: one function per registry operation, shared by every front end.
//!
//! Each function names the ECR IAM action it is authorized as (spec §5.3), checks it via
//! [`Service::authorize`], then acts on the metadata and blob stores. Front ends (the OCI
//! registry today, the ECR JSON API next) only translate requests into these calls.

mod authz;
mod cache;
mod ecr;
mod error;
mod gc;
mod iam;
mod lifecycle;
mod paging;
mod provisioning;
mod scanning;
mod settings;
mod signals;
mod templates;
mod uploads;

use std::sync::Arc;

use bytes::Bytes;

pub use ecr::{ImageFailure, ImageFilter, ImageId, LayerCheck, PART_SIZE};
pub use error::{EcrErrorKind, Error, IamErrorKind, Result};
pub use iam::{IamCaller, NewIdentity};
pub use paging::{page_after, Listing};
pub use provisioning::KeyImport;
pub use scanning::{RegistryScanning, RepositoryScanning};
pub use templates::{
    normalize_prefix, AppliedFor, CreationTemplate, TemplateInput, INVALID_APPLIED_FOR,
};

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

/// A blob opened for reading: total size, the range served (if partial), and the bytes.
pub struct BlobDownload {
    pub size: u64,
    pub range: Option<(u64, u64)>,
    pub reader: BlobReader,
}

pub struct PutManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub media_type: String,
}

/// Which front end a push came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushPath {
    Registry,
    Api,
}

/// `m` converted to a type in `accepted` (Docker schema 2 ↔ OCI), if that can be done
/// faithfully. It is served, never stored: its digest is that of the converted bytes.
fn converted_manifest(m: &StoredManifest, accepted: &[String]) -> Option<StoredManifest> {
    let target = convert::target_for(&m.media_type, accepted)?;
    let body = convert::convert(&m.body, &m.media_type, target)?;
    Some(StoredManifest {
        digest: Digest::sha256_of(&body).to_string(),
        media_type: target.to_owned(),
        body: Bytes::from(body),
        archived: m.archived,
    })
}

/// The repository a change is recorded against in the outbox.
fn event_source<'a>(ctx: &'a Context, repo: &'a Repository) -> EventSource<'a> {
    EventSource {
        registry: &ctx.registry,
        repository_id: repo.id,
        repository_name: repo.name.as_str(),
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
    parts: uploads::PartLedger,
    pulls: Arc<PullRecorder>,
    policies: Arc<authz::PolicyCache>,
}

impl Service {
    pub fn new(meta: MetaStore, blobs: Arc<dyn BlobStore>, options: Options) -> Service {
        // Caching is safe only while this process is the metadata's only writer.
        let meta_single_node = meta.is_single_node();
        let cache = Arc::new(ReadCache::new(meta_single_node));
        let policies = Arc::new(authz::PolicyCache::new(meta_single_node));
        // The caches hear of every change from the store itself (meta/changes.rs).
        meta.changes().subscribe(cache.clone());
        meta.changes().subscribe(policies.clone());
        Service {
            meta: Arc::new(meta),
            blobs,
            options,
            cache,
            parts: uploads::PartLedger::default(),
            pulls: Arc::new(PullRecorder::default()),
            policies,
        }
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
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
            return match self.create_from_template(ctx, name).await? {
                Some(repo) => Ok(repo),
                None => Err(Self::not_found(ctx, name)),
            };
        }
        self.authorize(ctx, Action::CreateRepository, name).await?;
        match self
            .meta
            .create_repository(
                &ctx.registry,
                name,
                &Default::default(),
                &[],
                clock::now_ms(),
            )
            .await?
        {
            Some(repo) => Ok(repo),
            // Created concurrently by another push: use that one.
            None => self.repository(ctx, name).await,
        }
    }

    // ---- repositories ----

    /// Repository names of the caller's registry (the `_catalog` endpoint).
    pub async fn catalog(
        &self,
        ctx: &Context,
        last: Option<&RepositoryName>,
        n: Option<u32>,
    ) -> Result<Listing<String>> {
        self.authorize_registry(ctx, Action::DescribeRepositories)
            .await?;
        let limit = n.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
        if limit == 0 {
            return Ok(Listing::empty());
        }
        let items = self
            .meta
            .repository_names(
                &ctx.registry,
                last.map_or("", RepositoryName::as_str),
                i64::from(limit) + 1,
            )
            .await?;
        Ok(Listing::from_overfetch(items, limit, Clone::clone))
    }

    // ---- blobs ----

    /// Size of a blob linked in the repository.
    pub async fn blob_size(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<u64> {
        self.authorize(ctx, Action::BatchCheckLayerAvailability, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.checked_link_size(&repo, digest).await
    }

    /// The size of a linked blob a client is about to rely on in a manifest: the link is
    /// refreshed (at most every quarter grace period) before its existence is read, so
    /// the garbage collector either removed it already (404: the client uploads) or
    /// will leave it alone for most of a grace period.
    pub(super) async fn checked_link_size(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<u64> {
        let now = clock::now_ms();
        let fresh_since = now - self.options.gc_grace_ms / 4;
        let key = digest.to_string();
        if let Some(size) = self.cache.link_touched_since(repo.id, &key, fresh_since) {
            return Ok(size);
        }
        let seen = self.cache.generation(repo.id);
        // Read first: a missing or recently refreshed link needs no write.
        let (size, linked_at) = self
            .meta
            .link_state(repo.id, &key)
            .await?
            .ok_or(Error::BlobNotFound)?;
        let touched = if linked_at >= fresh_since {
            linked_at
        } else {
            self.meta
                .touch_link(repo.id, &key, now, fresh_since)
                .await?;
            // Read again: the collector may have removed the link before the refresh.
            self.stored_link_size(repo, digest).await?;
            now
        };
        let size = u64::try_from(size).map_err(|_| Error::Internal("negative blob size".into()))?;
        self.cache
            .put_link_touched(repo.id, seen, key, size, touched);
        Ok(size)
    }

    async fn linked_size(&self, repo: &Repository, digest: &Digest) -> Result<u64> {
        let key = digest.to_string();
        if let Some(size) = self.cache.link(repo.id, &key) {
            return Ok(size);
        }
        let seen = self.cache.generation(repo.id);
        let size = self.stored_link_size(repo, digest).await?;
        self.cache.put_link(repo.id, seen, key, size);
        Ok(size)
    }

    /// A link's blob size from the metadata store (no cache).
    async fn stored_link_size(&self, repo: &Repository, digest: &Digest) -> Result<u64> {
        let size = self
            .meta
            .linked_blob_size(repo.id, digest)
            .await?
            .ok_or(Error::BlobNotFound)?;
        u64::try_from(size).map_err(|_| Error::Internal("negative blob size".into()))
    }

    pub async fn download_blob(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobDownload> {
        self.authorize(ctx, Action::GetDownloadUrlForLayer, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        let size = self.linked_size(&repo, digest).await?;
        let range = match range {
            Some(r) => Some(r.resolve(size).ok_or(Error::RangeNotSatisfiable { size })?),
            None => None,
        };
        let reader = self.blobs.read(digest, range).await.map_err(|e| match e {
            // A link without bytes is damage, not a client error.
            blobs::Error::NotFound => {
                Error::Internal(format!("blob {digest} is linked but missing"))
            }
            other => other.into(),
        })?;
        Ok(BlobDownload {
            size,
            range,
            reader,
        })
    }

    /// Remove a blob from one repository (the bytes stay while other links exist).
    pub async fn delete_blob(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<()> {
        self.authorize(ctx, Action::BatchDeleteImage, name).await?;
        let repo = self.repository(ctx, name).await?;
        match self.meta.unlink_blob(repo.id, digest).await? {
            DeleteOutcome::Deleted => Ok(()),
            DeleteOutcome::NotFound => Err(Error::BlobNotFound),
            DeleteOutcome::Referenced => Err(Error::BlobReferenced),
        }
    }

    // ---- manifests and tags ----

    /// The registry's manifest PUT.
    pub async fn put_manifest(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: &Bytes,
    ) -> Result<PutManifest> {
        self.store_manifest(ctx, name, reference, content_type, body, PushPath::Registry)
            .await
    }

    /// Store a manifest for either front end: validation, reference checks, tag
    /// immutability. `path` only changes what an unchanged re-push answers.
    pub(crate) async fn store_manifest(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: &Bytes,
        path: PushPath,
    ) -> Result<PutManifest> {
        self.authorize(ctx, Action::PutImage, name).await?;
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(Error::ManifestTooLarge);
        }
        let parsed =
            manifest::parse(body, content_type).map_err(|e| Error::ManifestInvalid(e.0))?;
        let (digest, tag) = match reference {
            Reference::Digest(d) => {
                if d.algorithm().digest(body) != *d {
                    return Err(Error::DigestMismatch);
                }
                (d.clone(), None)
            }
            Reference::Tag(t) => (Digest::sha256_of(body), Some(t)),
        };
        let repo = self.repository_for_push(ctx, name).await?;
        let image_size = if parsed.kind.is_index() {
            let children: Vec<String> = parsed.manifests.iter().map(ToString::to_string).collect();
            self.meta
                .image_sizes(repo.id, &children)
                .await?
                .into_iter()
                .max()
                .unwrap_or(0)
        } else {
            parsed.layers_size
        };
        let scan_unless_since = self
            .scan_on_push_cutoff(ctx, &repo, &parsed.media_type)
            .await?;
        let new = NewManifest {
            digest: &digest,
            media_type: &parsed.media_type,
            body,
            artifact_type: parsed.artifact_type.as_deref(),
            subject: parsed.subject.as_ref(),
            annotations: parsed.annotations.as_deref(),
            blobs: &parsed.blobs,
            manifests: &parsed.manifests,
            tag,
            tag_immutable: tag.is_some_and(|t| repo.settings.tag_mutability.is_immutable(t)),
            image_size,
            config_media_type: parsed.config_media_type.as_deref(),
            now_ms: clock::now_ms(),
            source: EventSource {
                registry: &ctx.registry,
                repository_id: repo.id,
                repository_name: name.as_str(),
            },
            scan_unless_since,
        };
        // Invalidated when this scope ends, even if the request is dropped mid-write.
        let registry_id = ctx.registry.account_id.clone();
        match self.meta.put_manifest(repo.id, &new).await? {
            PutManifestOutcome::Stored {
                new_image,
                tag_changed,
            } => {
                // The API refuses a push that changes nothing; docker's re-push succeeds.
                let unchanged = !new_image && (tag.is_none() || !tag_changed);
                if path == PushPath::Api && unchanged {
                    return Err(Error::ImageAlreadyExists {
                        digest: digest.to_string(),
                        tag: tag.map(ToString::to_string),
                        name: name.to_string(),
                        registry_id,
                    });
                }
                Ok(PutManifest {
                    digest,
                    subject: parsed.subject,
                    media_type: parsed.media_type,
                })
            }
            PutManifestOutcome::TagImmutable => Err(Error::TagImmutable {
                tag: tag.map(ToString::to_string).unwrap_or_default(),
                name: name.to_string(),
            }),
            PutManifestOutcome::MissingBlobs(digests) => Err(Error::ManifestBlobsMissing {
                digests,
                name: name.to_string(),
                registry_id,
            }),
            PutManifestOutcome::MissingManifests(digests) => Err(Error::ManifestChildrenMissing {
                digests,
                name: name.to_string(),
                registry_id,
            }),
        }
    }

    /// A manifest by tag or digest, if its media type is one the client accepts.
    pub async fn get_manifest(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        reference: &Reference,
        accepted: &[String],
    ) -> Result<Arc<StoredManifest>> {
        self.authorize(ctx, Action::BatchGetImage, name).await?;
        let repo = self.repository(ctx, name).await?;
        let m = self.find_manifest(&repo, reference).await?;
        if m.archived {
            return Err(Error::ImageArchived);
        }
        if manifest::is_acceptable(&m.media_type, accepted) {
            self.record_pull(ctx, &repo, &m.digest);
            return Ok(m);
        }
        // As ECR: by tag, a manifest the client cannot take may be converted for it.
        let converted = match reference {
            Reference::Tag(_) => converted_manifest(&m, accepted),
            Reference::Digest(_) => None,
        };
        let Some(converted) = converted else {
            return Err(Error::ManifestNotAcceptable(m.media_type.clone()));
        };
        self.record_pull(ctx, &repo, &m.digest);
        Ok(Arc::new(converted))
    }

    async fn find_manifest(
        &self,
        repo: &Repository,
        reference: &Reference,
    ) -> Result<Arc<StoredManifest>> {
        let key = reference.to_string();
        if let Some(m) = self.cache.manifest(repo.id, &key) {
            return Ok(m);
        }
        let seen = self.cache.generation(repo.id);
        let found = match reference {
            Reference::Tag(t) => self.meta.manifest_by_tag(repo.id, t).await?,
            Reference::Digest(d) => self.meta.manifest_by_digest(repo.id, d).await?,
        };
        let m = Arc::new(found.ok_or(Error::ManifestNotFound)?);
        self.cache.put_manifest(repo.id, seen, key, m.clone());
        Ok(m)
    }

    /// Delete by digest (the manifest and its tags) or by tag (the tag only).
    pub async fn delete_manifest(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        self.authorize(ctx, Action::BatchDeleteImage, name).await?;
        let repo = self.repository(ctx, name).await?;
        let source = event_source(ctx, &repo);
        let outcome = match reference {
            Reference::Digest(d) => self.meta.delete_manifest(&source, d).await?,
            Reference::Tag(t) => {
                if self.meta.delete_tag(&source, t).await? {
                    DeleteOutcome::Deleted
                } else {
                    DeleteOutcome::NotFound
                }
            }
        };
        match outcome {
            DeleteOutcome::Deleted => Ok(()),
            DeleteOutcome::NotFound => Err(Error::ManifestNotFound),
            DeleteOutcome::Referenced => Err(Error::ManifestReferenced),
        }
    }

    pub async fn list_tags(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        last: Option<&Tag>,
        n: Option<u32>,
    ) -> Result<Listing<String>> {
        self.authorize(ctx, Action::ListImages, name).await?;
        let repo = self.repository(ctx, name).await?;
        let limit = n.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
        if limit == 0 {
            return Ok(Listing::empty());
        }
        let items = self
            .meta
            .tag_names(repo.id, last.map_or("", Tag::as_str), i64::from(limit) + 1)
            .await?;
        Ok(Listing::from_overfetch(items, limit, Clone::clone))
    }

    /// Manifests in the repository whose subject is `digest`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        self.authorize(ctx, Action::BatchGetImage, name).await?;
        let repo = self.repository(ctx, name).await?;
        let mut all = self.meta.referrers(repo.id, digest).await?;
        if let Some(t) = artifact_type {
            all.retain(|r| r.artifact_type.as_deref() == Some(t));
        }
        Ok(all)
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

//! The pull-through cache's data path: what a pull of something a cache repository
//! does not have yet does.
//!
//! - **Manifests.** The first pull of a tag or digest fetches the manifest from the
//!   rule's upstream and records it in `upstream_manifests`, where every node finds it;
//!   the client gets it at once. An import then brings the whole image (an index's
//!   children, every blob) and stores it, so the image appears in the repository
//!   complete or not at all. A tag is asked for again once its re-check interval has
//!   passed; an upstream that is down then leaves the cached image served.
//! - **Blobs.** Each upstream blob is fetched once: by one task per node, which spools
//!   it to a local file while clients on the node read that file as it grows (the first
//!   pull streams), then stores it; across nodes, by whoever holds the fetch's lease,
//!   while other nodes wait for the stored blob.
//!
//! Leases are rows of the `jobs` table, renewed while the fetch runs: a node that dies
//! mid-fetch loses its lease and another node's next pull takes the work over.

use crate::observe::metrics::CacheResult;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt};
use std::panic::AssertUnwindSafe;
use tokio::sync::watch;

use super::pull_through::{is_cache_session, CacheRule, Source};
use super::templates::AppliedFor;
use super::*;
use crate::auth::Principal;
use crate::meta::UpstreamManifest;
use crate::upstream::{FetchedManifest, UpstreamError};

/// How long a fetch's lease lasts unless renewed; it is renewed every third of that.
const FETCH_LEASE_MS: i64 = 30_000;
/// After an upstream failed a tag's re-check, how long until it is asked again.
const RETRY_AFTER_MS: i64 = 60_000;
/// The longest pause between looks at another node's fetch.
const MAX_POLL: Duration = Duration::from_millis(500);
/// How many blobs one import fetches at once.
const IMPORT_PARALLELISM: usize = 4;
/// Bytes gathered from the upstream before they are written to the spool file and
/// announced to the clients reading it.
const SPOOL_BATCH: usize = 1024 * 1024;
/// Batches between a fetch and the upload session storing it (bounds memory).
const STORE_QUEUE: usize = 4;
/// Bytes read from a spool file per chunk sent to a client.
const SPOOL_CHUNK: usize = 1024 * 1024;

/// The state of one blob's fetch, as clients on this node see it.
#[derive(Debug, Clone)]
enum Progress {
    /// Waiting for the upstream (or for another node's fetch).
    Starting,
    /// Being spooled: `written` of `length` bytes are in the file at `spool`;
    /// `verified` once all are and they match the digest (clients hold back the end
    /// of the blob until then, so bytes that do not match never make a complete answer).
    Streaming {
        length: u64,
        written: u64,
        spool: Arc<PathBuf>,
        verified: bool,
    },
    /// Stored and linked in the repository.
    Stored,
    Failed(UpstreamFailure),
}

/// Why a fetch failed, cloneable for every waiting client.
#[derive(Debug, Clone)]
enum UpstreamFailure {
    Upstream(UpstreamError),
    Other(String),
}

impl From<UpstreamFailure> for Error {
    fn from(f: UpstreamFailure) -> Error {
        match f {
            UpstreamFailure::Upstream(UpstreamError::NotFound) => Error::BlobNotFound,
            UpstreamFailure::Upstream(u) => Error::Upstream(u),
            UpstreamFailure::Other(m) => Error::Internal(m),
        }
    }
}

struct Inflight {
    progress: watch::Receiver<Progress>,
}

/// Fetches and imports in progress on this node.
pub(super) struct Fetches {
    /// This node as a lease holder.
    holder: String,
    blobs: Mutex<HashMap<(i64, String), Arc<Inflight>>>,
    imports: Mutex<HashSet<(i64, String)>>,
}

impl Default for Fetches {
    fn default() -> Self {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        Fetches {
            holder: format!("pull-through@{}:{}", std::process::id(), &nonce[..12]),
            blobs: Mutex::new(HashMap::new()),
            imports: Mutex::new(HashSet::new()),
        }
    }
}

impl Fetches {
    /// A lease holder name for one attempt: a lease taken again by the same holder is
    /// renewed, so two tasks of this node must not share one.
    fn attempt(&self) -> String {
        format!("{}:{}", self.holder, uuid::Uuid::new_v4().simple())
    }
}

/// A task aborted when this is dropped (on every path out, a panic's included).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a cache repository's pull needs to reach the upstream.
#[derive(Clone)]
struct Origin {
    registry: RegistryKey,
    repo: Repository,
    rule: CacheRule,
    /// The upstream repository the cache repository stands for.
    path: String,
}

fn system_context(registry: &RegistryKey) -> Context {
    Context {
        registry: registry.clone(),
        principal: Principal::system("pull-through cache import"),
        source_ip: None,
    }
}

impl Service {
    /// The rule covering `name` and the upstream repository it maps to, if any.
    async fn cache_origin(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<Option<(CacheRule, String)>> {
        if is_cache_session(ctx) {
            return Ok(None);
        }
        let Some(rule) = self.cache_rule_for(&ctx.registry, name.as_str()).await? else {
            return Ok(None);
        };
        Ok(rule.upstream_repository(name.as_str()).map(|p| (rule, p)))
    }

    /// A manifest by tag or digest, from the repository or, in a cache repository that
    /// lacks it (or whose tag is due for a re-check), from the upstream.
    pub(super) async fn manifest_or_upstream(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        reference: &Reference,
    ) -> Result<(Repository, Arc<StoredManifest>)> {
        let repo = self.find_repository(ctx, name).await?;
        let local = match &repo {
            Some(r) => match self.find_manifest(r, reference).await {
                Ok(m) => Some(m),
                Err(Error::ManifestNotFound) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let origin = match self.cache_origin(ctx, name).await? {
            Some(o) => o,
            None => {
                let repo = repo.ok_or_else(|| Self::not_found(ctx, name))?;
                return Ok((repo, local.ok_or(Error::ManifestNotFound)?));
            }
        };
        if let (Some(repo), Some(m)) = (&repo, &local) {
            let recheck =
                matches!(reference, Reference::Tag(_)) && self.tag_due(repo, reference).await?;
            // A caller who may not bring images in still pulls what is cached.
            let may_import = recheck
                && self
                    .authorize(ctx, Action::BatchImportUpstreamImage, name)
                    .await
                    .is_ok();
            if !may_import {
                pull_through_lookup(CacheResult::Hit);
                return Ok((repo.clone(), m.clone()));
            }
        } else {
            self.authorize(ctx, Action::BatchImportUpstreamImage, name)
                .await?;
        }
        let repo = match repo {
            Some(r) => r,
            None => self.create_cache_repository(ctx, name).await?,
        };
        let origin = Origin {
            registry: ctx.registry.clone(),
            repo,
            rule: origin.0,
            path: origin.1,
        };
        pull_through_lookup(CacheResult::Miss);
        match self
            .upstream_manifest_once(&origin, &reference.to_string())
            .await
        {
            Ok(m) => {
                let tag = match reference {
                    Reference::Tag(t) => Some(t.clone()),
                    Reference::Digest(_) => None,
                };
                let stored_digest = local.as_ref().map(|l| l.digest.clone());
                if stored_digest.as_deref() != Some(m.digest.as_str()) {
                    self.start_import(&origin, m.clone(), tag);
                }
                let served = StoredManifest {
                    digest: m.digest,
                    media_type: m.media_type,
                    body: Bytes::from(m.body),
                    archived: false,
                };
                Ok((origin.repo, Arc::new(served)))
            }
            // The upstream is down or refuses: what is cached is still served.
            Err(e) => match local {
                Some(m) => {
                    tracing::warn!(repository = %name, error = %e, "upstream unavailable; serving the cached image");
                    Ok((origin.repo, m))
                }
                None => Err(e),
            },
        }
    }

    /// Whether a cached tag was last checked against the upstream longer ago than the
    /// re-check interval.
    async fn tag_due(&self, repo: &Repository, reference: &Reference) -> Result<bool> {
        let interval = self.recheck_ms();
        let checked = self
            .meta
            .upstream_manifest(repo.id, &reference.to_string())
            .await?;
        Ok(checked.is_none_or(|m| clock::now_ms() - m.checked_at >= interval))
    }

    fn recheck_ms(&self) -> i64 {
        i64::try_from(self.options.pull_through.tag_recheck.as_millis()).unwrap_or(i64::MAX)
    }

    /// The repository a first pull creates: from the PULL_THROUGH_CACHE template that
    /// covers it, else with default settings. Needs `ecr:CreateRepository`.
    async fn create_cache_repository(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<Repository> {
        if let Some(repo) = self
            .create_from_template(ctx, name, AppliedFor::PullThroughCache)
            .await?
        {
            return Ok(repo);
        }
        self.authorize_creation(ctx, name, &[]).await?;
        self.create_default_repository(ctx, name).await
    }

    /// What the upstream serves for `reference`: the recorded answer if it is fresh
    /// (a digest's never goes stale), else fetched by exactly one node, which records
    /// it for the others.
    async fn upstream_manifest_once(
        &self,
        origin: &Origin,
        reference: &str,
    ) -> Result<UpstreamManifest> {
        let is_digest = reference.contains(':');
        let started = clock::now_ms();
        let fresh = |m: &UpstreamManifest| {
            is_digest || started - m.checked_at < self.recheck_ms() || m.checked_at >= started
        };
        let job = format!("upstream-manifest:{}:{reference}", origin.repo.id);
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(m) = self
                .meta
                .upstream_manifest(origin.repo.id, reference)
                .await?
            {
                if fresh(&m) {
                    return Ok(m);
                }
            }
            let now = clock::now_ms();
            if let Some(lease) = self
                .meta
                .take_lease(&job, &self.fetches.attempt(), now, now + FETCH_LEASE_MS)
                .await?
            {
                let _renew = self.keep_lease(lease.clone());
                // Another node may have recorded it between the look above and the
                // lease (and let the lease go).
                let known = self.meta.upstream_manifest(origin.repo.id, reference).await;
                let fetched = match known {
                    Ok(Some(m)) if fresh(&m) => Ok(m),
                    Ok(known) => {
                        let fetched = self.fetch_manifest(origin, reference).await;
                        if let (Err(_), Some(old)) = (&fetched, known) {
                            // The upstream failed a re-check: what it served before counts
                            // as checked for a minute, so the pulls waiting behind this
                            // one serve the cached image instead of each trying in turn.
                            let retry = UpstreamManifest {
                                checked_at: clock::now_ms() - self.recheck_ms() + RETRY_AFTER_MS,
                                ..old
                            };
                            let _ = self
                                .meta
                                .put_upstream_manifest(origin.repo.id, reference, &retry)
                                .await;
                        }
                        fetched
                    }
                    Err(e) => Err(e.into()),
                };
                let _ = self.meta.end_lease(&lease).await;
                return fetched;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Fetch a manifest from the upstream and record it under its reference (and its
    /// digest, when fetched by tag).
    async fn fetch_manifest(&self, origin: &Origin, reference: &str) -> Result<UpstreamManifest> {
        tracing::info!(repository = %origin.repo.name, reference, upstream = origin.rule.upstream_url, "fetching a manifest from the upstream");
        let fetched: FetchedManifest =
            match self.upstream_source(&origin.registry, &origin.rule).await? {
                Source::Registry(target) => self
                    .upstream
                    .manifest(&target, &origin.path, reference)
                    .await
                    .map_err(|e| match e {
                        UpstreamError::NotFound => Error::ManifestNotFound,
                        other => Error::Upstream(other),
                    })?,
                Source::Deployment(ctx) => {
                    self.deployment_manifest(&ctx, &origin.path, reference)
                        .await?
                }
            };
        let m = UpstreamManifest {
            digest: fetched.digest.to_string(),
            media_type: fetched.media_type,
            body: fetched.body.to_vec(),
            checked_at: clock::now_ms(),
        };
        self.meta
            .put_upstream_manifest(origin.repo.id, reference, &m)
            .await?;
        if m.digest != reference {
            self.meta
                .put_upstream_manifest(origin.repo.id, &m.digest, &m)
                .await?;
        }
        Ok(m)
    }

    /// A manifest from another registry of this deployment, read as the rule's role.
    async fn deployment_manifest(
        &self,
        ctx: &Context,
        path: &str,
        reference: &str,
    ) -> Result<FetchedManifest> {
        let name: RepositoryName = path.parse().map_err(|_| Error::ManifestNotFound)?;
        let reference: Reference = reference.parse().map_err(|_| Error::ManifestNotFound)?;
        let accepted: Vec<String> = [
            manifest::OCI_INDEX,
            manifest::DOCKER_LIST,
            manifest::OCI_MANIFEST,
            manifest::DOCKER_SCHEMA2,
        ]
        .map(str::to_owned)
        .to_vec();
        let m = Box::pin(self.get_manifest(ctx, &name, &reference, &accepted))
            .await
            .map_err(deployment_error)?;
        Ok(FetchedManifest {
            media_type: m.media_type.clone(),
            body: m.body.clone(),
            digest: m.digest.parse().map_err(|_| Error::InvalidDigest)?,
        })
    }

    /// Import an image in the background, unless this node already is; across nodes
    /// the import's lease decides.
    fn start_import(&self, origin: &Origin, m: UpstreamManifest, tag: Option<Tag>) {
        let key = (
            origin.repo.id,
            format!("{}:{}", m.digest, tag.as_ref().map_or("", |t| t.as_str())),
        );
        let Ok(mut imports) = self.fetches.imports.lock() else {
            return;
        };
        if !imports.insert(key.clone()) {
            return;
        }
        drop(imports);
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let origin = origin.clone();
        tokio::spawn(async move {
            let job = format!("upstream-import:{}:{}", key.0, key.1);
            let now = clock::now_ms();
            let lease = me
                .meta
                .take_lease(&job, &me.fetches.attempt(), now, now + FETCH_LEASE_MS)
                .await;
            if let Ok(Some(lease)) = lease {
                let renew = me.keep_lease(lease.clone());
                let imported = async {
                    me.import(&origin, &m, tag.as_ref()).await?;
                    let subject: Digest = m.digest.parse().map_err(|_| Error::InvalidDigest)?;
                    me.import_referrers(&origin, &subject).await
                };
                match AssertUnwindSafe(imported).catch_unwind().await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(repository = %origin.repo.name, digest = m.digest, error = %e, "importing an upstream image failed")
                    }
                    Err(_) => {
                        tracing::error!(repository = %origin.repo.name, digest = m.digest, "importing an upstream image panicked")
                    }
                }
                drop(renew);
                let _ = me.meta.end_lease(&lease).await;
            }
            if let Ok(mut imports) = me.fetches.imports.lock() {
                imports.remove(&key);
            }
        });
    }

    /// Renew a lease every third of its life while the returned guard lives (a
    /// transient store error is retried; a lease taken over ends the renewals).
    fn keep_lease(&self, lease: crate::meta::Lease) -> AbortOnDrop {
        let meta = self.meta.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((FETCH_LEASE_MS / 3) as u64)).await;
                let now = clock::now_ms();
                if let Ok(false) = meta.renew_lease(&lease, now, now + FETCH_LEASE_MS).await {
                    return;
                }
            }
        }))
    }

    /// Bring everything an upstream manifest needs into the repository, then store it.
    async fn import(&self, origin: &Origin, m: &UpstreamManifest, tag: Option<&Tag>) -> Result<()> {
        let parsed = manifest::parse(&m.body, Some(&m.media_type))
            .map_err(|e| Error::ManifestInvalid(e.0))?;
        for child in &parsed.manifests {
            if self
                .meta
                .manifest_by_digest(origin.repo.id, child)
                .await?
                .is_some()
            {
                continue;
            }
            let cm = self
                .upstream_manifest_once(origin, &child.to_string())
                .await?;
            Box::pin(self.import(origin, &cm, None)).await?;
        }
        let blobs = parsed.blobs.clone();
        let results: Vec<Result<()>> = futures_util::stream::iter(blobs)
            .map(|d| async move { self.cached_blob(origin, &d).await })
            .buffer_unordered(IMPORT_PARALLELISM)
            .collect()
            .await;
        for r in results {
            r?;
        }
        let ctx = system_context(&origin.registry);
        let reference = match tag {
            Some(t) => Reference::Tag(t.clone()),
            None => Reference::Digest(m.digest.parse().map_err(|_| Error::InvalidDigest)?),
        };
        let body = Bytes::from(m.body.clone());
        self.store_manifest(
            &ctx,
            &origin.repo.name,
            &reference,
            Some(&m.media_type),
            &body,
            PushPath::Registry,
        )
        .await?;
        Ok(())
    }

    /// Bring the referrers of a cached image (signatures, SBOMs) from the upstream, and
    /// note when, so that listing them asks the upstream again only once the re-check
    /// interval has passed.
    async fn import_referrers(&self, origin: &Origin, subject: &Digest) -> Result<()> {
        let found: Vec<Digest> = match self.upstream_source(&origin.registry, &origin.rule).await? {
            Source::Registry(target) => self
                .upstream
                .referrers(&target, &origin.path, subject)
                .await
                .map_err(Error::Upstream)?,
            Source::Deployment(ctx) => {
                let name: RepositoryName =
                    origin.path.parse().map_err(|_| Error::ManifestNotFound)?;
                Box::pin(self.referrers(&ctx, &name, subject, None))
                    .await
                    .map_err(deployment_error)?
                    .iter()
                    .filter_map(|r| r.digest.parse().ok())
                    .collect()
            }
        };
        for d in found {
            if self
                .meta
                .manifest_by_digest(origin.repo.id, &d)
                .await?
                .is_some()
            {
                continue;
            }
            let m = self.upstream_manifest_once(origin, &d.to_string()).await?;
            Box::pin(self.import(origin, &m, None)).await?;
        }
        let checked = UpstreamManifest {
            digest: subject.to_string(),
            media_type: String::new(),
            body: Vec::new(),
            checked_at: clock::now_ms(),
        };
        self.meta
            .put_upstream_manifest(origin.repo.id, &referrers_key(subject), &checked)
            .await?;
        Ok(())
    }

    /// Before a cache repository's referrers are listed: ask the upstream for new ones
    /// if the last look is older than the re-check interval. What the upstream cannot
    /// answer leaves the cached list as it is.
    pub(super) async fn refresh_referrers(
        &self,
        ctx: &Context,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<()> {
        let Some((rule, path)) = self.cache_origin(ctx, &repo.name).await? else {
            return Ok(());
        };
        // Only a caller who may bring images in makes the cache ask, and only about an
        // image it holds.
        if self
            .authorize(ctx, Action::BatchImportUpstreamImage, &repo.name)
            .await
            .is_err()
            || self
                .meta
                .manifest_by_digest(repo.id, subject)
                .await?
                .is_none()
        {
            return Ok(());
        }
        let last = self
            .meta
            .upstream_manifest(repo.id, &referrers_key(subject))
            .await?;
        if last.is_some_and(|m| clock::now_ms() - m.checked_at < self.recheck_ms()) {
            return Ok(());
        }
        let origin = Origin {
            registry: ctx.registry.clone(),
            repo: repo.clone(),
            rule,
            path,
        };
        if let Err(e) = self.import_referrers(&origin, subject).await {
            tracing::warn!(repository = %repo.name, subject = %subject, error = %e, "listing upstream referrers failed; serving the cached ones");
        }
        Ok(())
    }

    /// Wait until a blob is stored in the cache repository, fetching it if no one is.
    async fn cached_blob(&self, origin: &Origin, digest: &Digest) -> Result<()> {
        if self
            .meta
            .linked_blob(origin.repo.id, digest)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let inflight = self.blob_fetch(origin, digest);
        let mut rx = inflight.progress.clone();
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                Progress::Stored => return Ok(()),
                Progress::Failed(f) => return Err(f.into()),
                Progress::Starting | Progress::Streaming { .. } => {}
            }
            if rx.changed().await.is_err() {
                return self.linked_or_lost(origin, digest).await;
            }
        }
    }

    /// After a fetch's task ended without saying so: the blob is there, or it failed.
    async fn linked_or_lost(&self, origin: &Origin, digest: &Digest) -> Result<()> {
        match self.meta.linked_blob(origin.repo.id, digest).await? {
            Some(_) => Ok(()),
            None => Err(Error::Internal(format!(
                "the fetch of {digest} ended unfinished"
            ))),
        }
    }

    /// This node's fetch of a blob: joined if running, started otherwise.
    fn blob_fetch(&self, origin: &Origin, digest: &Digest) -> Arc<Inflight> {
        let key = (origin.repo.id, digest.to_string());
        let mut blobs = match self.fetches.blobs.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(f) = blobs.get(&key) {
            return f.clone();
        }
        let (tx, rx) = watch::channel(Progress::Starting);
        let spool = self
            .options
            .spool_dir
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let inflight = Arc::new(Inflight { progress: rx });
        blobs.insert(key.clone(), inflight.clone());
        drop(blobs);
        match self.me.upgrade() {
            Some(me) => {
                let origin = origin.clone();
                let digest = digest.clone();
                tokio::spawn(async move {
                    let run = me.run_blob_fetch(&origin, &digest, &spool, &tx);
                    let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(UpstreamFailure::Other("the fetch panicked".into())),
                    };
                    if let Ok(mut blobs) = me.fetches.blobs.lock() {
                        blobs.remove(&key);
                    }
                    tx.send_replace(match outcome {
                        Ok(()) => Progress::Stored,
                        Err(f) => Progress::Failed(f),
                    });
                });
            }
            None => {
                tx.send_replace(Progress::Failed(UpstreamFailure::Other(
                    "the service is shutting down".into(),
                )));
            }
        }
        inflight
    }

    /// One node's part in fetching a blob: fetch it under the lease, or wait while
    /// another node holds the lease, until the blob is linked.
    async fn run_blob_fetch(
        &self,
        origin: &Origin,
        digest: &Digest,
        spool: &std::path::Path,
        tx: &watch::Sender<Progress>,
    ) -> std::result::Result<(), UpstreamFailure> {
        let other = |e: Error| UpstreamFailure::Other(e.to_string());
        let job = format!("upstream-blob:{}:{digest}", origin.repo.id);
        let mut pause = Duration::from_millis(20);
        loop {
            let linked = self.meta.linked_blob(origin.repo.id, digest).await;
            if linked.map_err(|e| other(e.into()))?.is_some() {
                return Ok(());
            }
            let now = clock::now_ms();
            let lease = self
                .meta
                .take_lease(&job, &self.fetches.attempt(), now, now + FETCH_LEASE_MS)
                .await
                .map_err(|e| other(e.into()))?;
            if let Some(lease) = lease {
                // Stored by another node between the look above and the lease?
                let linked = self.meta.linked_blob(origin.repo.id, digest).await;
                if linked.map_err(|e| other(e.into()))?.is_some() {
                    let _ = self.meta.end_lease(&lease).await;
                    return Ok(());
                }
                let renew = self.keep_lease(lease.clone());
                let fetched = self.fetch_blob(origin, digest, spool, tx).await;
                drop(renew);
                let _ = self.meta.end_lease(&lease).await;
                return fetched;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Spool a blob from the upstream (clients read the spool as it grows), check its
    /// digest, and store it in the cache repository.
    async fn fetch_blob(
        &self,
        origin: &Origin,
        digest: &Digest,
        spool: &std::path::Path,
        tx: &watch::Sender<Progress>,
    ) -> std::result::Result<(), UpstreamFailure> {
        let other = |m: String| UpstreamFailure::Other(m);
        let failure = |e: Error| match deployment_error(e) {
            Error::Upstream(u) => UpstreamFailure::Upstream(u),
            Error::ManifestNotFound => UpstreamFailure::Upstream(UpstreamError::NotFound),
            e => other(e.to_string()),
        };
        let source = self
            .upstream_source(&origin.registry, &origin.rule)
            .await
            .map_err(failure)?;
        let (length, mut body) = match source {
            Source::Registry(target) => {
                let (length, body) = self
                    .upstream
                    .blob(&target, &origin.path, digest)
                    .await
                    .map_err(UpstreamFailure::Upstream)?;
                let length = length.ok_or_else(|| {
                    UpstreamFailure::Upstream(UpstreamError::Invalid(
                        "the upstream sent a blob without its length".into(),
                    ))
                })?;
                (length, body)
            }
            Source::Deployment(ctx) => {
                let name: RepositoryName = origin
                    .path
                    .parse()
                    .map_err(|_| UpstreamFailure::Upstream(UpstreamError::NotFound))?;
                Box::pin(self.blob_bytes(&ctx, &name, digest))
                    .await
                    .map_err(failure)?
            }
        };
        let (key, stored) = self
            .open_session(&origin.repo)
            .await
            .map_err(|e| other(e.to_string()))?;
        // Where the store stages on this disk, the bytes are written once, into the
        // session's own file, which clients read as it grows; elsewhere they go to a
        // spool file for the clients and, at the same time, into the session.
        let outcome = match self.blobs.local_staging(key) {
            Some(staging) => {
                self.fetch_into_staging(&mut body, length, key, &stored, digest, staging, tx)
                    .await
            }
            None => {
                let fetched = self
                    .fetch_beside_store(&mut body, length, key, stored, digest, spool, tx)
                    .await;
                let _ = tokio::fs::remove_file(spool).await;
                fetched
            }
        };
        if outcome.is_err() {
            self.discard_session(key).await;
        }
        outcome
    }

    /// Append the upstream's bytes to the session's local staging file, then finish the
    /// session (which hashes the file and publishes it only if the digest matches).
    #[allow(clippy::too_many_arguments)]
    async fn fetch_into_staging(
        &self,
        body: &mut crate::blobs::ByteStream,
        length: u64,
        key: crate::blobs::UploadKey,
        stored: &crate::meta::StoredUpload,
        digest: &Digest,
        staging: PathBuf,
        tx: &watch::Sender<Progress>,
    ) -> std::result::Result<(), UpstreamFailure> {
        let other = |m: String| UpstreamFailure::Other(m);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&staging)
            .map_err(|e| other(format!("opening a staging file: {e}")))?;
        let staging = Arc::new(staging);
        spool_and_feed(body, file, length, digest, None, tx, &staging).await?;
        stored_outcome(
            self.finish_session(key, stored, digest, None, None).await,
            digest,
        )
    }

    /// Spool the upstream's bytes for this node's clients while an upload session
    /// stores them.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_beside_store(
        &self,
        body: &mut crate::blobs::ByteStream,
        length: u64,
        key: crate::blobs::UploadKey,
        stored: crate::meta::StoredUpload,
        digest: &Digest,
        spool: &std::path::Path,
        tx: &watch::Sender<Progress>,
    ) -> std::result::Result<(), UpstreamFailure> {
        let other = |m: String| UpstreamFailure::Other(m);
        if let Some(dir) = spool.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| other(format!("creating the spool directory: {e}")))?;
        }
        let file = std::fs::File::create(spool)
            .map_err(|e| other(format!("creating a spool file: {e}")))?;
        let (feed, store) = self.store_in_background(key, stored, digest)?;
        let path = Arc::new(spool.to_path_buf());
        let streamed = spool_and_feed(body, file, length, digest, Some(&feed), tx, &path).await;
        if let Err(e) = &streamed {
            // The store must not publish what it got: end its body with the error.
            let _ = feed
                .send(Err(std::io::Error::other(format!("{e:?}"))))
                .await;
        }
        drop(feed);
        let stored = store
            .await
            .map_err(|e| other(format!("the store task failed: {e}")))?;
        streamed?;
        stored_outcome(stored, digest)
    }

    /// Finish an upload session from a channel, in a task of its own: the sender feeds
    /// it batches; dropping the sender ends the body.
    #[allow(clippy::type_complexity)]
    fn store_in_background(
        &self,
        key: crate::blobs::UploadKey,
        stored: crate::meta::StoredUpload,
        digest: &Digest,
    ) -> std::result::Result<
        (
            tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
            tokio::task::JoinHandle<Result<u64>>,
        ),
        UpstreamFailure,
    > {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| UpstreamFailure::Other("the service is shutting down".into()))?;
        let (feed, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(STORE_QUEUE);
        let body: crate::blobs::ByteStream =
            Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }));
        let digest = digest.clone();
        let store = tokio::spawn(async move {
            me.finish_session(key, &stored, &digest, Some(0), Some(body))
                .await
        });
        Ok((feed, store))
    }

    /// Drop an upload session a failed fetch leaves (what is left, the collector takes).
    async fn discard_session(&self, key: crate::blobs::UploadKey) {
        if let Ok(stored) = self.stored_session(key).await {
            let _ = self.end_session(key, &stored).await;
        }
    }

    /// A blob a cache repository lacks: served from this node's fetch as it arrives
    /// (a ranged request waits for the stored blob).
    pub(super) async fn pull_blob(
        &self,
        ctx: &Context,
        repo: &Repository,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobDownload>> {
        let Some((rule, path)) = self.cache_origin(ctx, &repo.name).await? else {
            return Ok(None);
        };
        self.authorize(ctx, Action::BatchImportUpstreamImage, &repo.name)
            .await?;
        let origin = Origin {
            registry: ctx.registry.clone(),
            repo: repo.clone(),
            rule,
            path,
        };
        let inflight = self.blob_fetch(&origin, digest);
        let mut rx = inflight.progress.clone();
        // Once the spool file is gone (published, or cleaned up), only the end is
        // waited for: then the stored blob is read.
        let mut spool_gone = false;
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                Progress::Stored => return Ok(None),
                Progress::Failed(f) => return Err(f.into()),
                Progress::Streaming { length, spool, .. } if range.is_none() && !spool_gone => {
                    if let Some(body) = spool_stream(&inflight, length, &spool).await {
                        return Ok(Some(BlobDownload {
                            size: length,
                            range: None,
                            body: DownloadBody::Bytes(BlobReader { stream: body }),
                        }));
                    }
                    spool_gone = true;
                }
                Progress::Starting | Progress::Streaming { .. } => {}
            }
            if rx.changed().await.is_err() {
                return Ok(None);
            }
        }
    }
}

/// A pull of a cache repository: served from what is cached (hit), or asked of the
/// upstream (miss).
fn pull_through_lookup(result: CacheResult) {
    crate::observe::metrics::metrics().cache_lookup("pull_through", result);
}

/// An error of a read from another registry of this deployment, as the cache reports
/// it: what is missing there is missing upstream; a denial is the upstream's.
fn deployment_error(e: Error) -> Error {
    match e {
        Error::RepositoryNotFound { .. } | Error::ManifestNotFound | Error::ImageArchived => {
            Error::ManifestNotFound
        }
        Error::BlobNotFound => Error::Upstream(UpstreamError::NotFound),
        Error::AccessDenied(m) => Error::Upstream(UpstreamError::AccessDenied(m)),
        other => other,
    }
}

/// What the end of a fetch's upload session means for the fetch.
fn stored_outcome(
    stored: Result<u64>,
    digest: &Digest,
) -> std::result::Result<(), UpstreamFailure> {
    match stored {
        Ok(_) => Ok(()),
        Err(Error::DigestMismatch) => Err(mismatch(digest)),
        Err(e) => Err(UpstreamFailure::Other(e.to_string())),
    }
}

fn mismatch(digest: &Digest) -> UpstreamFailure {
    UpstreamFailure::Upstream(UpstreamError::Invalid(format!(
        "the upstream's bytes for {digest} do not match it"
    )))
}

/// Copy an upstream body to the spool file and to the store's feed, in batches; a
/// batch is announced to this node's clients once the file holds it.
#[allow(clippy::too_many_arguments)]
async fn spool_and_feed(
    body: &mut crate::blobs::ByteStream,
    file: std::fs::File,
    length: u64,
    digest: &Digest,
    feed: Option<&tokio::sync::mpsc::Sender<std::io::Result<Bytes>>>,
    tx: &watch::Sender<Progress>,
    spool: &Arc<PathBuf>,
) -> std::result::Result<(), UpstreamFailure> {
    let other = |m: String| UpstreamFailure::Other(m);
    let mut file = Some(file);
    let mut written = 0u64;
    // The chunks as they came, written without gathering them into one buffer.
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0usize;
    let mut hasher = digest.algorithm().hasher();
    loop {
        let chunk = match body.next().await {
            Some(chunk) => Some(chunk.map_err(|e| {
                UpstreamFailure::Upstream(UpstreamError::Unavailable(format!(
                    "the blob's transfer broke off: {e}"
                )))
            })?),
            None => None,
        };
        if let Some(chunk) = chunk.clone() {
            if written + (pending_len + chunk.len()) as u64 > length {
                return Err(UpstreamFailure::Upstream(UpstreamError::Invalid(
                    "the upstream sent more bytes than it announced".into(),
                )));
            }
            pending_len += chunk.len();
            hasher.update(&chunk);
            pending.push(chunk);
            if pending_len < SPOOL_BATCH {
                continue;
            }
        }
        let batch = std::mem::take(&mut pending);
        let mut f = file
            .take()
            .ok_or_else(|| other("the spool file is gone".into()))?;
        let (f, batch) = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            for b in &batch {
                f.write_all(b)?;
            }
            Ok::<_, std::io::Error>((f, batch))
        })
        .await
        .map_err(|e| other(format!("writing a spool file: {e}")))?
        .map_err(|e| other(format!("writing a spool file: {e}")))?;
        file = Some(f);
        written += pending_len as u64;
        pending_len = 0;
        tx.send_replace(Progress::Streaming {
            length,
            written,
            spool: spool.clone(),
            verified: false,
        });
        if let Some(feed) = feed {
            for b in batch {
                if feed.send(Ok(b)).await.is_err() {
                    // The store stopped early (it failed): the caller reports its error.
                    return Ok(());
                }
            }
        }
        if chunk.is_none() {
            break;
        }
    }
    if written != length {
        return Err(UpstreamFailure::Upstream(UpstreamError::Invalid(format!(
            "the upstream sent {written} of the {length} bytes it announced"
        ))));
    }
    if hasher.finish() != *digest {
        return Err(mismatch(digest));
    }
    tx.send_replace(Progress::Streaming {
        length,
        written,
        spool: spool.clone(),
        verified: true,
    });
    Ok(())
}

/// The `upstream_manifests` reference that records when a subject's referrers were
/// last asked for.
fn referrers_key(subject: &Digest) -> String {
    format!("referrers:{subject}")
}

/// A client's read of a spool file while it grows: it waits for bytes the fetch has
/// not written yet, and fails if the fetch does. `None` if the spool is gone already.
async fn spool_stream(
    inflight: &Inflight,
    length: u64,
    spool: &std::path::Path,
) -> Option<crate::blobs::ByteStream> {
    let file = std::fs::File::open(spool).ok()?;
    let rx = inflight.progress.clone();
    let state = (file, rx, 0u64);
    let stream = futures_util::stream::unfold(Some(state), move |state| async move {
        let (mut file, mut rx, pos) = state?;
        if pos >= length {
            return None;
        }
        loop {
            let available = match &*rx.borrow_and_update() {
                // The blob's last byte only once it is verified.
                Progress::Streaming {
                    written, verified, ..
                } if !verified => (*written).min(length.saturating_sub(1)),
                Progress::Streaming { written, .. } => *written,
                Progress::Stored => length,
                Progress::Failed(f) => {
                    let e = std::io::Error::other(format!("upstream fetch failed: {f:?}"));
                    return Some((Err(e), None));
                }
                Progress::Starting => 0,
            };
            if available > pos {
                let want = usize::try_from((available - pos).min(SPOOL_CHUNK as u64))
                    .unwrap_or(SPOOL_CHUNK);
                // Reads are sequential: the file's position is `pos`. read_to_end
                // fills the buffer's spare capacity without zeroing it first.
                let read = tokio::task::spawn_blocking(move || {
                    use std::io::Read as _;
                    let mut buf = Vec::with_capacity(want);
                    let n = (&mut file).take(want as u64).read_to_end(&mut buf)?;
                    if n < want {
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                    }
                    Ok((file, buf))
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                return match read {
                    Ok((file, buf)) => {
                        let next = pos + want as u64;
                        Some((Ok(Bytes::from(buf)), Some((file, rx, next))))
                    }
                    Err(e) => Some((Err(e), None)),
                };
            }
            if rx.changed().await.is_err() {
                // The fetch task is gone without a final word: only Stored ends well.
                if !matches!(&*rx.borrow(), Progress::Stored) {
                    let e = std::io::Error::other("upstream fetch ended unfinished");
                    return Some((Err(e), None));
                }
            }
        }
    });
    Some(Box::pin(stream))
}

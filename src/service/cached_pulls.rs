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

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use super::pull_through::{CacheRule, Source};
use super::templates::AppliedFor;
use super::*;
use crate::auth::Principal;
use crate::meta::UpstreamManifest;
use crate::upstream::{FetchedManifest, UpstreamError};

/// How long a fetch's lease lasts unless renewed; it is renewed every third of that.
const FETCH_LEASE_MS: i64 = 30_000;
/// The longest pause between looks at another node's fetch.
const MAX_POLL: Duration = Duration::from_millis(500);
/// How many blobs one import fetches at once.
const IMPORT_PARALLELISM: usize = 4;
/// Bytes read from a spool file per chunk sent to a client.
const SPOOL_CHUNK: usize = 256 * 1024;

/// The state of one blob's fetch, as clients on this node see it.
#[derive(Debug, Clone)]
enum Progress {
    /// Waiting for the upstream (or for another node's fetch).
    Starting,
    /// Being spooled: `written` of `length` bytes are in the spool file.
    Streaming {
        length: u64,
        written: u64,
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
    spool: PathBuf,
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
            if !recheck {
                return Ok((repo.clone(), m.clone()));
            }
        }
        self.authorize(ctx, Action::BatchImportUpstreamImage, name)
            .await?;
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
                // Another node may have recorded it between the look above and the
                // lease (and let the lease go).
                let fetched = match self.meta.upstream_manifest(origin.repo.id, reference).await {
                    Ok(Some(m)) if fresh(&m) => Ok(m),
                    Ok(_) => self.fetch_manifest(origin, reference).await,
                    Err(e) => Err(e.into()),
                };
                self.meta.end_lease(&lease).await?;
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
                if let Err(e) = imported.await {
                    tracing::warn!(repository = %origin.repo.name, digest = m.digest, error = %e, "importing an upstream image failed");
                }
                renew.abort();
                let _ = me.meta.end_lease(&lease).await;
            }
            if let Ok(mut imports) = me.fetches.imports.lock() {
                imports.remove(&key);
            }
        });
    }

    /// Renew a lease every third of its life until the returned task is aborted.
    fn keep_lease(&self, lease: crate::meta::Lease) -> tokio::task::JoinHandle<()> {
        let meta = self.meta.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((FETCH_LEASE_MS / 3) as u64)).await;
                let now = clock::now_ms();
                if !matches!(
                    meta.renew_lease(&lease, now, now + FETCH_LEASE_MS).await,
                    Ok(true)
                ) {
                    return;
                }
            }
        })
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
        let inflight = Arc::new(Inflight {
            spool: spool.clone(),
            progress: rx,
        });
        blobs.insert(key.clone(), inflight.clone());
        drop(blobs);
        match self.me.upgrade() {
            Some(me) => {
                let origin = origin.clone();
                let digest = digest.clone();
                tokio::spawn(async move {
                    let outcome = me.run_blob_fetch(&origin, &digest, &spool, &tx).await;
                    let _ = tokio::fs::remove_file(&spool).await;
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
                renew.abort();
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
        if let Some(dir) = spool.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| other(format!("creating the spool directory: {e}")))?;
        }
        let mut file = tokio::fs::File::create(spool)
            .await
            .map_err(|e| other(format!("creating a spool file: {e}")))?;
        tx.send_replace(Progress::Streaming { length, written: 0 });
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                UpstreamFailure::Upstream(UpstreamError::Unavailable(format!(
                    "the blob's transfer broke off: {e}"
                )))
            })?;
            if written + chunk.len() as u64 > length {
                return Err(UpstreamFailure::Upstream(UpstreamError::Invalid(
                    "the upstream sent more bytes than it announced".into(),
                )));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| other(format!("writing a spool file: {e}")))?;
            hasher.update(&chunk);
            written += chunk.len() as u64;
            tx.send_replace(Progress::Streaming { length, written });
        }
        file.flush()
            .await
            .map_err(|e| other(format!("writing a spool file: {e}")))?;
        let computed = format!("sha256:{}", hex::encode(hasher.finalize()));
        if written != length || computed != digest.to_string() {
            return Err(UpstreamFailure::Upstream(UpstreamError::Invalid(format!(
                "the upstream's bytes for {digest} do not match it"
            ))));
        }
        let file = tokio::fs::File::open(spool)
            .await
            .map_err(|e| other(format!("reopening a spool file: {e}")))?;
        let stream: crate::blobs::ByteStream = Box::pin(
            tokio_util::io::ReaderStream::with_capacity(file, SPOOL_CHUNK),
        );
        let (key, stored) = self
            .open_session(&origin.repo)
            .await
            .map_err(|e| other(e.to_string()))?;
        self.finish_session(key, &stored, digest, Some(0), Some(stream))
            .await
            .map_err(|e| other(e.to_string()))?;
        Ok(())
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
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                Progress::Stored => return Ok(None),
                Progress::Failed(f) => return Err(f.into()),
                Progress::Streaming { length, .. } if range.is_none() => {
                    match spool_stream(&inflight, length).await {
                        Some(body) => {
                            return Ok(Some(BlobDownload {
                                size: length,
                                range: None,
                                body: DownloadBody::Bytes(BlobReader { stream: body }),
                            }))
                        }
                        // Stored and cleaned up meanwhile: read the stored blob.
                        None => return Ok(None),
                    }
                }
                Progress::Starting | Progress::Streaming { .. } => {}
            }
            if rx.changed().await.is_err() {
                return Ok(None);
            }
        }
    }
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

/// The `upstream_manifests` reference that records when a subject's referrers were
/// last asked for.
fn referrers_key(subject: &Digest) -> String {
    format!("referrers:{subject}")
}

/// A client's read of a spool file while it grows: it waits for bytes the fetch has
/// not written yet, and fails if the fetch does. `None` if the spool is gone already.
async fn spool_stream(inflight: &Inflight, length: u64) -> Option<crate::blobs::ByteStream> {
    let file = tokio::fs::File::open(&inflight.spool).await.ok()?;
    let rx = inflight.progress.clone();
    let state = (file, rx, 0u64);
    let stream = futures_util::stream::unfold(Some(state), move |state| async move {
        let (mut file, mut rx, pos) = state?;
        if pos >= length {
            return None;
        }
        loop {
            let available = match &*rx.borrow_and_update() {
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
                let mut buf = vec![0u8; want];
                let read = async {
                    file.seek(std::io::SeekFrom::Start(pos)).await?;
                    file.read_exact(&mut buf).await
                };
                return match read.await {
                    Ok(_) => {
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

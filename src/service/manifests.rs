//! Manifests and tags: the one path that stores a manifest (the registry's PUT and
//! ECR's PutImage), reads it back (converting schema 2 ↔ OCI when asked), deletes it, and
//! lists tags and referrers.

use super::*;

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
    /// Replication storing a copy (its change is not replicated on).
    Replication,
    /// Managed signing storing a signature (a referrer, replicated with its image).
    Signing,
}

/// `m` converted to a type in `accepted` (Docker schema 2 ↔ OCI), if that can be done
/// faithfully. It is served, never stored: its digest is that of the converted bytes.
pub(super) fn converted_manifest(
    m: &StoredManifest,
    accepted: &[String],
) -> Option<StoredManifest> {
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
pub(super) fn event_source<'a>(ctx: &'a Context, repo: &'a Repository) -> EventSource<'a> {
    EventSource {
        registry: &ctx.registry,
        repository_id: repo.id,
        repository_name: repo.name.as_str(),
        replicated: false,
    }
}

impl Service {
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
        let signing = match path {
            PushPath::Registry | PushPath::Api => {
                self.signing_requests(ctx, name, parsed.subject.is_some())
                    .await?
            }
            PushPath::Replication | PushPath::Signing => Vec::new(),
        };
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
                replicated: path == PushPath::Replication,
            },
            scan_unless_since,
            signing: &signing,
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
        let (repo, m) = self.manifest_or_upstream(ctx, name, reference).await?;
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

    pub(super) async fn find_manifest(
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
        self.refresh_referrers(ctx, &repo, digest).await?;
        let mut all = self.meta.referrers(repo.id, digest).await?;
        if let Some(t) = artifact_type {
            all.retain(|r| r.artifact_type.as_deref() == Some(t));
        }
        Ok(all)
    }
}

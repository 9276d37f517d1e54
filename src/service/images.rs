//! ECR's image operations: PutImage, BatchGetImage, BatchDeleteImage, ListImages,
//! DescribeImages, ListImageReferrers and UpdateImageStorageClass, over the manifests
//! and tags of manifests.rs.

use super::*;
use crate::meta::{ImageDetail, ImageRow, StatusFilter};
use crate::storage_class::StorageClass;

/// A requested image: by digest, by tag, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageId {
    pub digest: Option<String>,
    pub tag: Option<String>,
}

/// Why one image of a batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFailure {
    pub id: ImageId,
    pub code: &'static str,
    pub reason: String,
}

pub struct FoundImage {
    pub id: ImageId,
    pub manifest: Arc<StoredManifest>,
}

/// Where an image lookup by id landed.
enum Resolved {
    Found(Arc<StoredManifest>),
    Failed(ImageFailure),
}

fn failure(id: &ImageId, code: &'static str, reason: &str) -> ImageFailure {
    ImageFailure {
        id: id.clone(),
        code,
        reason: reason.to_owned(),
    }
}

/// ListImages' and DescribeImages' `filter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageFilter {
    /// Some(true): tagged only; Some(false): untagged only.
    pub tagged: Option<bool>,
    pub status: StatusFilter,
}

impl Service {
    // ---- images ----

    /// PutImage: the registry's manifest PUT with the API's stricter answers.
    pub async fn put_image(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        manifest: &str,
        media_type: Option<&str>,
        tag: Option<&Tag>,
        digest: Option<&Digest>,
    ) -> Result<(Digest, Arc<StoredManifest>)> {
        let body = Bytes::copy_from_slice(manifest.as_bytes());
        let computed = Digest::sha256_of(&body);
        if let Some(d) = digest {
            if d.algorithm().digest(&body) != *d {
                return Err(Error::ImageDigestMismatch {
                    given: d.to_string(),
                    computed: computed.to_string(),
                });
            }
        }
        let reference = match tag {
            Some(t) => Reference::Tag(t.clone()),
            None => Reference::Digest(digest.cloned().unwrap_or_else(|| computed.clone())),
        };
        let put = self
            .store_manifest(
                ctx,
                name,
                &reference,
                media_type,
                &body,
                super::PushPath::Api,
            )
            .await?;
        let stored = Arc::new(StoredManifest {
            digest: put.digest.to_string(),
            media_type: put.media_type.clone(),
            body,
            archived: false,
        });
        Ok((put.digest, stored))
    }

    /// One image that must exist: ImageNotFoundException otherwise (DescribeImages with
    /// ids, UpdateImageStorageClass), InvalidParameterException for a malformed id.
    pub(super) async fn resolve_one(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        repo: &Repository,
        id: &ImageId,
    ) -> Result<Arc<StoredManifest>> {
        match self.resolve(repo, id).await? {
            Resolved::Found(m) => Ok(m),
            Resolved::Failed(f) if f.code == "ImageNotFound" => Err(Error::ImageNotFound {
                digest: id.digest.clone(),
                tag: id.tag.clone(),
                name: name.to_string(),
                registry_id: ctx.registry.account_id.clone(),
            }),
            Resolved::Failed(f) => Err(Error::InvalidParameter(f.reason)),
        }
    }

    /// The image a status operation (replication, signing) names, authorized as
    /// `action`: its repository, and the id as shown (with the digest).
    pub(super) async fn image_for_status(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &ImageId,
        action: Action,
    ) -> Result<(Repository, ImageId)> {
        self.authorize(ctx, action, name).await?;
        let repo = self.repository(ctx, name).await?;
        let image = self.resolve_one(ctx, name, &repo, id).await?;
        let shown = ImageId {
            digest: Some(image.digest.clone()),
            tag: id.tag.clone(),
        };
        Ok((repo, shown))
    }

    async fn resolve(&self, repo: &Repository, id: &ImageId) -> Result<Resolved> {
        let digest = match &id.digest {
            Some(d) => match d.parse::<Digest>() {
                Ok(d) => Some(d),
                Err(_) => {
                    return Ok(Resolved::Failed(failure(
                        id,
                        "InvalidImageDigest",
                        "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
                    )))
                }
            },
            None => None,
        };
        let tag = match &id.tag {
            Some(t) => match t.parse::<Tag>() {
                Ok(t) => Some(t),
                Err(_) => return Ok(Resolved::Failed(failure(id, "InvalidImageTag", "Invalid request parameters: image tag should satisfy the regex '[a-zA-Z0-9-_.]+'"))),
            },
            None => None,
        };
        let found = match (&digest, &tag) {
            (None, None) => {
                return Ok(Resolved::Failed(failure(
                    id,
                    "MissingDigestAndTag",
                    "Invalid request parameters: both tag and digest cannot be null",
                )))
            }
            (Some(d), None) => {
                self.find_manifest(repo, &Reference::Digest(d.clone()))
                    .await
            }
            (_, Some(t)) => self.find_manifest(repo, &Reference::Tag(t.clone())).await,
        };
        match found {
            Ok(m) => {
                if let Some(d) = &digest {
                    if m.digest != d.to_string() {
                        return Ok(Resolved::Failed(failure(id, "ImageTagDoesNotMatchDigest", "Invalid request parameters: given tag does not map to the given digest")));
                    }
                }
                Ok(Resolved::Found(m))
            }
            Err(Error::ManifestNotFound) => Ok(Resolved::Failed(failure(
                id,
                "ImageNotFound",
                "Requested image not found",
            ))),
            Err(e) => Err(e),
        }
    }

    /// An image a cache repository lacks, from its upstream, as BatchGetImage reports
    /// it: upstream failures are the image's failure (`UpstreamAccessDenied`, ...).
    async fn resolve_upstream(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &ImageId,
    ) -> Result<(Option<Repository>, Resolved)> {
        use crate::upstream::UpstreamError as U;
        let reference = match (&id.tag, &id.digest) {
            (Some(t), _) => Reference::Tag(t.parse().map_err(Error::InvalidTag)?),
            (None, Some(d)) => Reference::Digest(d.parse().map_err(|_| Error::InvalidDigest)?),
            (None, None) => {
                return Ok((
                    None,
                    Resolved::Failed(failure(
                        id,
                        "MissingDigestAndTag",
                        "Invalid request parameters: both tag and digest cannot be null",
                    )),
                ))
            }
        };
        let failed = |code, reason: &str| Ok((None, Resolved::Failed(failure(id, code, reason))));
        match self.manifest_or_upstream(ctx, name, &reference).await {
            Ok((repo, m)) => {
                if id.digest.as_ref().is_some_and(|d| *d != m.digest) {
                    return failed(
                        "ImageTagDoesNotMatchDigest",
                        "Invalid request parameters: given tag does not map to the given digest",
                    );
                }
                Ok((Some(repo), Resolved::Found(m)))
            }
            Err(Error::ManifestNotFound) => failed("ImageNotFound", "Requested image not found"),
            Err(Error::Upstream(U::AccessDenied(m))) => failed("UpstreamAccessDenied", &m),
            Err(Error::Upstream(U::TooManyRequests)) => failed(
                "UpstreamTooManyRequests",
                "The upstream registry asks to slow down",
            ),
            Err(Error::Upstream(e)) => failed("UpstreamUnavailable", &e.to_string()),
            Err(e) => Err(e),
        }
    }

    pub async fn batch_get_image(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        ids: &[ImageId],
        accepted: &[String],
    ) -> Result<(Vec<FoundImage>, Vec<ImageFailure>)> {
        self.authorize(ctx, Action::BatchGetImage, name).await?;
        let mut repo = self.find_repository(ctx, name).await?;
        let cache = self
            .cache_rule_for(&ctx.registry, name.as_str())
            .await?
            .is_some();
        if repo.is_none() && !cache {
            return Err(Self::not_found(ctx, name));
        }
        let mut images = Vec::new();
        let mut failures = Vec::new();
        for id in ids {
            let resolved = match &repo {
                Some(r) => self.resolve(r, id).await?,
                None => Resolved::Failed(failure(id, "ImageNotFound", "Requested image not found")),
            };
            // A cache repository brings what it lacks from its upstream.
            let resolved = match resolved {
                Resolved::Failed(f) if cache && f.code == "ImageNotFound" => {
                    let (r, found) = self.resolve_upstream(ctx, name, id).await?;
                    repo = repo.or(r);
                    found
                }
                other => other,
            };
            let Some(repo) = &repo else {
                if let Resolved::Failed(f) = resolved {
                    failures.push(f);
                }
                continue;
            };
            let found = match resolved {
                Resolved::Found(m)
                    if !crate::oci::manifest::is_acceptable(&m.media_type, accepted) =>
                {
                    // As a registry pull: by tag the manifest may be converted.
                    match id
                        .tag
                        .as_ref()
                        .and_then(|_| super::converted_manifest(&m, accepted))
                    {
                        Some(converted) => Resolved::Found(Arc::new(converted)),
                        None => {
                            failures.push(failure(
                                id,
                                "UnsupportedImageType",
                                "Requested media type is not accepted",
                            ));
                            continue;
                        }
                    }
                }
                other => other,
            };
            match found {
                Resolved::Found(m) if m.archived => failures.push(failure(
                    id,
                    "ImageNotFound",
                    "Requested image is archived; restore it with UpdateImageStorageClass to pull it",
                )),
                Resolved::Found(m) => {
                    self.record_pull(ctx, repo, &m.digest);
                    let id = ImageId {
                        digest: Some(m.digest.clone()),
                        tag: id.tag.clone(),
                    };
                    images.push(FoundImage { id, manifest: m });
                }
                Resolved::Failed(f) => failures.push(f),
            }
        }
        Ok((images, failures))
    }

    /// BatchDeleteImage: by tag removes the tag (and the image with its last tag), by
    /// digest removes the image and its tags. Returns the ids removed.
    pub async fn batch_delete_image(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        ids: &[ImageId],
    ) -> Result<(Vec<ImageId>, Vec<ImageFailure>)> {
        self.authorize(ctx, Action::BatchDeleteImage, name).await?;
        let repo = self.repository(ctx, name).await?;
        let source = super::event_source(ctx, &repo);
        let mut deleted = Vec::new();
        let mut failures = Vec::new();
        for id in ids {
            let m = match self.resolve(&repo, id).await? {
                Resolved::Found(m) => m,
                Resolved::Failed(f) => {
                    failures.push(f);
                    continue;
                }
            };
            let digest: Digest = m
                .digest
                .parse()
                .map_err(|_| Error::Internal("stored digest is invalid".into()))?;
            let tags = self.meta.tags_of(repo.id, &m.digest).await?;
            let outcome = match (&id.tag, id.digest.is_some()) {
                (Some(t), false) if tags.len() > 1 => {
                    let tag: Tag = t.parse().map_err(Error::InvalidTag)?;
                    self.meta.delete_tag(&source, &tag).await?;
                    deleted.push(ImageId {
                        digest: Some(m.digest.clone()),
                        tag: Some(t.clone()),
                    });
                    continue;
                }
                _ => self.meta.delete_manifest(&source, &digest).await?,
            };
            match outcome {
                crate::meta::DeleteOutcome::Deleted => {
                    if tags.is_empty() {
                        deleted.push(ImageId {
                            digest: Some(m.digest.clone()),
                            tag: None,
                        });
                    }
                    for t in tags {
                        deleted.push(ImageId {
                            digest: Some(m.digest.clone()),
                            tag: Some(t),
                        });
                    }
                }
                crate::meta::DeleteOutcome::NotFound => {
                    failures.push(failure(id, "ImageNotFound", "Requested image not found"))
                }
                crate::meta::DeleteOutcome::Referenced => failures.push(failure(
                    id,
                    "ImageReferencedByManifestList",
                    "Requested image is referenced by a manifest list",
                )),
            }
        }
        Ok((deleted, failures))
    }

    /// UpdateImageStorageClass: archive an image (it stays listed and described, and
    /// cannot be pulled), or restore it. Returns its digest and new `imageStatus`;
    /// Berth restores at once, but answers ACTIVATING as ECR does for a restore.
    pub async fn update_image_storage_class(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &ImageId,
        target: StorageClass,
    ) -> Result<(String, &'static str)> {
        self.authorize(ctx, Action::UpdateImageStorageClass, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        let m = self.resolve_one(ctx, name, &repo, id).await?;
        let now = clock::now_ms();
        let status = match (target == StorageClass::Archive, m.archived) {
            (true, true) => "ARCHIVED",
            (false, false) => "ACTIVE",
            (true, false) => {
                self.meta.archive_image(repo.id, &m.digest, now).await?;
                "ARCHIVED"
            }
            (false, true) => {
                self.meta.restore_image(repo.id, &m.digest, now).await?;
                "ACTIVATING"
            }
        };
        Ok((m.digest.clone(), status))
    }

    pub async fn list_images(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        filter: ImageFilter,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Listing<ImageRow>> {
        self.authorize(ctx, Action::ListImages, name).await?;
        let repo = self.repository(ctx, name).await?;
        let after = after.unwrap_or_default();
        let items = self
            .meta
            .image_rows(
                repo.id,
                filter.tagged,
                filter.status,
                (&after.0, &after.1),
                i64::from(limit) + 1,
            )
            .await?;
        Ok(Listing::from_overfetch(items, limit, |r| {
            format!("{}\n{}", r.digest, r.tag.clone().unwrap_or_default())
        }))
    }

    /// DescribeImages: the given images (all must exist), or a page of all of them.
    pub async fn describe_images(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        ids: Option<&[ImageId]>,
        filter: ImageFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Listing<ImageDetail>> {
        self.authorize(ctx, Action::DescribeImages, name).await?;
        let repo = self.repository(ctx, name).await?;
        if let Some(ids) = ids {
            let mut out: Vec<ImageDetail> = Vec::new();
            for id in ids {
                let m = self.resolve_one(ctx, name, &repo, id).await?;
                if !out.iter().any(|d| d.digest == m.digest) {
                    if let Some(d) = self.meta.image_detail(repo.id, &m.digest).await? {
                        out.push(d);
                    }
                }
            }
            return Ok(Listing {
                items: out,
                next: None,
            });
        }
        let items = self
            .meta
            .image_details_page(
                repo.id,
                filter.tagged,
                filter.status,
                after.unwrap_or(""),
                i64::from(limit) + 1,
            )
            .await?;
        Ok(Listing::from_overfetch(items, limit, |d| d.digest.clone()))
    }

    /// ListImageReferrers: referrers of a subject, optionally of some artifact types.
    pub async fn list_referrers(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        subject: &Digest,
        artifact_types: &[String],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Listing<Referrer>> {
        let mut all = self.referrers(ctx, name, subject, None).await?;
        if !artifact_types.is_empty() {
            all.retain(|r| {
                r.artifact_type
                    .as_ref()
                    .is_some_and(|t| artifact_types.contains(t))
            });
        }
        let start = after.map_or(0, |a| {
            all.iter()
                .position(|r| r.digest.as_str() > a)
                .unwrap_or(all.len())
        });
        let items: Vec<Referrer> = all.into_iter().skip(start).collect();
        Ok(Listing::from_overfetch(items, limit, |r| r.digest.clone()))
    }
}

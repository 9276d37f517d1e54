//! Operations of ECR's control plane. The registry front end's operations (mod.rs) and
//! these share repositories, images and uploads: a docker push and a PutImage obey the
//! same rules because they run the same code.

use crate::aws::AccountId;
use crate::resource_tags::ResourceTags;
use crate::storage_class::StorageClass;
use std::sync::Arc;

use bytes::Bytes;

use super::{Action, Context, Error, Listing, Result, Service};
use crate::clock;
use crate::meta::{
    ImageDetail, ImageRow, Referrer, Repository, RepositorySettings, StatusFilter, StoredManifest,
};
use crate::mutability::TagMutability;
use crate::oci::{Digest, Reference, RepositoryName, Tag};

/// Maximum resource tags per repository.
pub const MAX_RESOURCE_TAGS: i64 = 50;
/// `partSize` InitiateLayerUpload reports.
pub const PART_SIZE: u64 = 10 * 1024 * 1024;
/// Smallest non-final part CompleteLayerUpload accepts.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// GetAuthorizationToken's answer for one registry.
pub struct AuthorizationData {
    pub token: String,
    pub expires_at: i64,
    pub proxy_endpoint: String,
}

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

/// BatchCheckLayerAvailability's answer for one digest.
pub enum LayerCheck {
    Available {
        digest: String,
        size: u64,
    },
    Failed {
        digest: String,
        code: &'static str,
        reason: String,
    },
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
    /// `<account>.dkr.ecr.<region>.<domain>[:port]`.
    pub fn registry_host(&self, account_id: &str, region: &str) -> String {
        self.options.public.registry_host(account_id, region)
    }

    pub fn repository_uri(&self, ctx: &Context, name: &RepositoryName) -> String {
        format!(
            "{}/{name}",
            self.registry_host(&ctx.registry.account_id, &ctx.registry.region)
        )
    }

    pub fn repository_arn(ctx: &Context, name: &RepositoryName) -> String {
        super::authz::repository_arn(&ctx.registry, name.as_str())
    }

    // ---- repositories ----

    pub async fn create_repository_with(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        settings: &RepositorySettings,
        tags: &ResourceTags,
    ) -> Result<Repository> {
        let tags = tags.as_pairs();
        self.authorize_creation(ctx, name, tags).await?;
        if tags.len() as i64 > MAX_RESOURCE_TAGS {
            return Err(Error::TooManyTags);
        }
        let created = self
            .meta
            .create_repository(&ctx.registry, name, settings, tags, clock::now_ms())
            .await?;
        if let Some(repo) = created {
            return Ok(repo);
        }
        // The name is taken. If that repository's policy denies this caller, the caller
        // is told so, and does not learn that the repository exists.
        self.authorize_tagged(ctx, Action::CreateRepository, name, tags)
            .await?;
        Err(Error::RepositoryAlreadyExists {
            name: name.to_string(),
            registry_id: ctx.registry.account_id.clone(),
        })
    }

    /// The named repositories (all must exist), or a page of all of them.
    pub async fn describe_repositories(
        &self,
        ctx: &Context,
        names: Option<&[RepositoryName]>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Listing<Repository>> {
        if let Some(names) = names {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                self.authorize(ctx, Action::DescribeRepositories, name)
                    .await?;
                out.push(self.repository(ctx, name).await?);
            }
            return Ok(Listing {
                items: out,
                next: None,
            });
        }
        self.authorize_registry(ctx, Action::DescribeRepositories)
            .await?;
        let items = self
            .meta
            .repositories_page(&ctx.registry, after.unwrap_or(""), i64::from(limit) + 1)
            .await?;
        Ok(Listing::from_overfetch(items, limit, |r| {
            r.name.to_string()
        }))
    }

    pub async fn delete_repository(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        force: bool,
    ) -> Result<Repository> {
        self.authorize(ctx, Action::DeleteRepository, name).await?;
        let repo = self.repository(ctx, name).await?;
        if !self.meta.delete_repository(repo.id, !force).await? {
            return Err(Error::RepositoryNotEmpty {
                name: name.to_string(),
                registry_id: ctx.registry.account_id.clone(),
            });
        }
        Ok(repo)
    }

    pub async fn put_image_tag_mutability(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        mutability: &TagMutability,
    ) -> Result<()> {
        self.authorize(ctx, Action::PutImageTagMutability, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.meta.set_tag_mutability(repo.id, mutability).await?;
        Ok(())
    }

    pub async fn put_image_scanning_configuration(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        scan_on_push: bool,
    ) -> Result<()> {
        self.authorize(ctx, Action::PutImageScanningConfiguration, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.meta.set_scan_on_push(repo.id, scan_on_push).await?;
        Ok(())
    }

    // ---- repository and registry policies ----

    /// SetRepositoryPolicy. Without `force`, a policy that would stop the caller from
    /// setting the policy again is refused, to prevent an accidental lock-out.
    pub async fn set_repository_policy(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        text: &str,
        force: bool,
    ) -> Result<Repository> {
        self.authorize(ctx, Action::SetRepositoryPolicy, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.check_resource_policy(text, "Invalid repository policy provided")
            .await?;
        if !force {
            let policy = crate::iam::Policy::parse(text, crate::iam::PolicyKind::Resource)
                .map_err(|e| Error::InvalidParameter(e.0))?;
            if !self.would_keep_policy_access(ctx, &repo, policy).await? {
                return Err(Error::InvalidParameter(
                    "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'The policy would prevent the caller from setting the repository policy in the future; use force to set it anyway'".into(),
                ));
            }
        }
        self.meta.set_repository_policy(repo.id, Some(text)).await?;
        Ok(repo)
    }

    /// GetRepositoryPolicy, or with `delete` DeleteRepositoryPolicy (returning the text).
    pub async fn repository_policy(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        delete: bool,
    ) -> Result<String> {
        let action = if delete {
            Action::DeleteRepositoryPolicy
        } else {
            Action::GetRepositoryPolicy
        };
        self.authorize(ctx, action, name).await?;
        let repo = self.repository(ctx, name).await?;
        let text = self
            .meta
            .repository_policy_text(repo.id)
            .await?
            .ok_or_else(|| Error::RepositoryPolicyNotFound {
                name: name.to_string(),
                registry_id: ctx.registry.account_id.clone(),
            })?;
        if delete {
            self.meta.set_repository_policy(repo.id, None).await?;
        }
        Ok(text)
    }

    pub async fn put_registry_policy(&self, ctx: &Context, text: &str) -> Result<()> {
        self.authorize_registry(ctx, Action::PutRegistryPolicy)
            .await?;
        self.check_resource_policy(text, "Invalid registry policy provided")
            .await?;
        self.meta
            .set_registry_policy(&ctx.registry, Some(text))
            .await?;
        Ok(())
    }

    /// GetRegistryPolicy, or with `delete` DeleteRegistryPolicy (returning the text).
    pub async fn registry_policy_text(&self, ctx: &Context, delete: bool) -> Result<String> {
        let action = if delete {
            Action::DeleteRegistryPolicy
        } else {
            Action::GetRegistryPolicy
        };
        self.authorize_registry(ctx, action).await?;
        let text = self
            .meta
            .registry_policy(&ctx.registry)
            .await?
            .ok_or_else(|| Error::RegistryPolicyNotFound(ctx.registry.account_id.clone()))?;
        if delete {
            self.meta.set_registry_policy(&ctx.registry, None).await?;
        }
        Ok(text)
    }

    /// A repository or registry policy: valid, ECR actions only, naming principals that
    /// exist. ECR gives one message for every fault.
    pub(super) async fn check_resource_policy(&self, text: &str, message: &str) -> Result<()> {
        let invalid = || {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: '{message}'"
            ))
        };
        crate::iam::Policy::parse(text, crate::iam::PolicyKind::Resource).map_err(|_| invalid())?;
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|_| invalid())?;
        for arn in super::iam::principal_arns(&doc) {
            let names_identity = arn.contains(":user/") || arn.contains(":role/");
            if names_identity && self.meta.identity_by_arn(&arn).await?.is_none() {
                return Err(invalid());
            }
        }
        Ok(())
    }

    // ---- resource tags ----

    pub async fn list_resource_tags(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<Vec<(String, String)>> {
        self.authorize(ctx, Action::ListTagsForResource, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        Ok(self.meta.resource_tags(repo.id).await?)
    }

    pub async fn tag_resource(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        tags: &ResourceTags,
    ) -> Result<()> {
        let tags = tags.as_pairs();
        self.authorize_tagged(ctx, Action::TagResource, name, tags)
            .await?;
        let repo = self.repository(ctx, name).await?;
        if self
            .meta
            .put_resource_tags(repo.id, tags, MAX_RESOURCE_TAGS)
            .await?
        {
            Ok(())
        } else {
            Err(Error::TooManyTags)
        }
    }

    pub async fn untag_resource(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        keys: &[String],
    ) -> Result<()> {
        self.authorize(ctx, Action::UntagResource, name).await?;
        let repo = self.repository(ctx, name).await?;
        Ok(self.meta.delete_resource_tags(repo.id, keys).await?)
    }

    // ---- login ----

    /// One authorization token per requested registry (or the caller's own). The token is
    /// valid in every registry of the region; the registry ids only pick `proxyEndpoint`.
    pub async fn authorization_tokens(
        &self,
        ctx: &Context,
        auth: &crate::auth::Authenticator,
        registry_ids: &[AccountId],
    ) -> Result<Vec<AuthorizationData>> {
        self.authorize_registry(ctx, Action::GetAuthorizationToken)
            .await?;
        let now = clock::now_ms() / 1000;
        let (password, expires_at) = auth.issue_token(&ctx.principal, &ctx.registry.region, now);
        let token = crate::auth::token::authorization_token(&password);
        let own = [ctx.registry.account_id.clone()];
        let ids = if registry_ids.is_empty() {
            &own[..]
        } else {
            registry_ids
        };
        Ok(ids
            .iter()
            .map(|id| AuthorizationData {
                token: token.clone(),
                expires_at,
                proxy_endpoint: self
                    .options
                    .public
                    .registry_origin(id, &ctx.registry.region),
            })
            .collect())
    }

    // ---- layers (API upload path) ----

    pub async fn check_layers(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digests: &[String],
    ) -> Result<Vec<LayerCheck>> {
        self.authorize(ctx, Action::BatchCheckLayerAvailability, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        let mut out = Vec::with_capacity(digests.len());
        for raw in digests {
            let Ok(d) = raw.parse::<Digest>() else {
                out.push(LayerCheck::Failed {
                    digest: raw.clone(),
                    code: "InvalidLayerDigest",
                    reason: "Invalid layer digest".into(),
                });
                continue;
            };
            // A client skips uploading what is reported available, as after docker's
            // blob HEAD: refresh the link so a collection does not take it meanwhile.
            match self.checked_link_size(&repo, &d).await {
                Ok(size) => out.push(LayerCheck::Available {
                    digest: raw.clone(),
                    size,
                }),
                Err(Error::BlobNotFound) => out.push(LayerCheck::Failed {
                    digest: raw.clone(),
                    code: "MissingLayerDigest",
                    reason: "Requested layer not found".into(),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A time-limited URL that serves the blob without other credentials.
    pub async fn download_url(
        &self,
        ctx: &Context,
        auth: &crate::auth::Authenticator,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<String> {
        self.authorize(ctx, Action::GetDownloadUrlForLayer, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.linked_size(&repo, digest).await.map_err(|e| match e {
            Error::BlobNotFound => Error::LayersNotFound(format!(
                "The layer with digest {digest} does not exist within the repository with name '{name}' in the registry with id '{}'",
                ctx.registry.account_id
            )),
            other => other,
        })?;
        let expires = clock::now_ms() / 1000 + 3600;
        let path = format!("/v2/{name}/blobs/{digest}");
        let sig = auth.sign_url(
            &ctx.registry.account_id,
            &ctx.registry.region,
            &path,
            expires,
        );
        Ok(format!(
            "{}{path}?X-Berth-Expires={expires}&X-Berth-Signature={sig}",
            self.options
                .public
                .registry_origin(&ctx.registry.account_id, &ctx.registry.region)
        ))
    }

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

    pub async fn batch_get_image(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        ids: &[ImageId],
        accepted: &[String],
    ) -> Result<(Vec<FoundImage>, Vec<ImageFailure>)> {
        self.authorize(ctx, Action::BatchGetImage, name).await?;
        let repo = self.repository(ctx, name).await?;
        let mut images = Vec::new();
        let mut failures = Vec::new();
        for id in ids {
            let found = match self.resolve(&repo, id).await? {
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
                    self.record_pull(ctx, &repo, &m.digest);
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

    pub async fn describe_registry(&self, ctx: &Context) -> Result<()> {
        self.authorize_registry(ctx, Action::DescribeRegistry).await
    }
}

//! Layers (blobs) as the registry and ECR's API see them once stored: existence and
//! size, download (bytes or a presigned URL), unlinking. Uploads are in uploads.rs.

use super::cache::LinkedBlob;
use super::*;
use crate::blobs::BlobLocation;

/// A blob opened for reading: total size, the range served (if partial), and the bytes.
pub struct BlobDownload {
    pub size: u64,
    pub range: Option<(u64, u64)>,
    pub body: DownloadBody,
}

/// How a download is served.
pub enum DownloadBody {
    /// The bytes, through this server.
    Bytes(BlobReader),
    /// A redirect to a presigned object-storage URL (`--blob-redirect`), as ECR
    /// redirects to S3; the client sends its Range header there.
    Redirect(String),
}

/// How long a presigned redirect stays valid.
const REDIRECT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(20 * 60);
/// How long GetDownloadUrlForLayer's URL stays valid.
const DOWNLOAD_URL_VALIDITY: std::time::Duration = std::time::Duration::from_secs(3600);

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

impl Service {
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
        match self.checked_link_size(&repo, digest).await {
            Err(Error::BlobNotFound) => {}
            other => return other,
        }
        // A cache repository answers for what its upstream has (fetching it).
        match self.pull_blob(ctx, &repo, digest, None).await? {
            Some(download) => Ok(download.size),
            None => self.checked_link_size(&repo, digest).await,
        }
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
        if let Some(blob) = self.cache.link_touched_since(repo.id, &key, fresh_since) {
            return Ok(blob.size);
        }
        let seen = self.cache.generation(repo.id);
        // Read first: a missing or recently refreshed link needs no write.
        let (size, linked_at, location) = self
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
            self.stored_link(repo, digest).await?;
            now
        };
        let blob = LinkedBlob {
            size: u64::try_from(size).map_err(|_| Error::Internal("negative blob size".into()))?,
            location: self.location(digest, location),
        };
        let size = blob.size;
        self.cache
            .put_link_touched(repo.id, seen, key, blob, touched);
        Ok(size)
    }

    /// A recorded location, or for a blob stored before locations existed, its own.
    pub(super) fn location(&self, digest: &Digest, recorded: Option<String>) -> BlobLocation {
        recorded.map_or_else(
            || self.blobs.digest_location(digest),
            BlobLocation::from_store,
        )
    }

    async fn linked(&self, repo: &Repository, digest: &Digest) -> Result<LinkedBlob> {
        let key = digest.to_string();
        if let Some(blob) = self.cache.link(repo.id, &key) {
            return Ok(blob);
        }
        let seen = self.cache.generation(repo.id);
        let blob = self.stored_link(repo, digest).await?;
        self.cache.put_link(repo.id, seen, key, blob.clone());
        Ok(blob)
    }

    /// A link's blob from the metadata store (no cache).
    async fn stored_link(&self, repo: &Repository, digest: &Digest) -> Result<LinkedBlob> {
        let (size, location) = self
            .meta
            .linked_blob(repo.id, digest)
            .await?
            .ok_or(Error::BlobNotFound)?;
        Ok(LinkedBlob {
            size: u64::try_from(size).map_err(|_| Error::Internal("negative blob size".into()))?,
            location: self.location(digest, location),
        })
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
        let blob = match self.linked(&repo, digest).await {
            Ok(blob) => blob,
            Err(Error::BlobNotFound) => {
                // A cache repository fetches what it lacks from its upstream.
                if let Some(download) = self.pull_blob(ctx, &repo, digest, range).await? {
                    return Ok(download);
                }
                self.linked(&repo, digest).await?
            }
            Err(e) => return Err(e),
        };
        let size = blob.size;
        let range = match range {
            Some(r) => Some(r.resolve(size).ok_or(Error::RangeNotSatisfiable { size })?),
            None => None,
        };
        if self.options.blob_redirect {
            let url = self
                .blobs
                .download_url(&blob.location, REDIRECT_VALIDITY)
                .await?;
            if let Some(url) = url {
                return Ok(BlobDownload {
                    size,
                    range,
                    body: DownloadBody::Redirect(url),
                });
            }
        }
        let reader = self
            .blobs
            .read(&blob.location, range)
            .await
            .map_err(|e| match e {
                // A link without bytes is damage, not a client error.
                blobs::Error::NotFound => {
                    Error::Internal(format!("blob {digest} is linked but missing"))
                }
                other => other.into(),
            })?;
        Ok(BlobDownload {
            size,
            range,
            body: DownloadBody::Bytes(reader),
        })
    }

    /// A blob's bytes for Berth's own use (a pull-through cache reading another
    /// registry of this deployment): authorized as a download, never redirected.
    pub(super) async fn blob_bytes(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<(u64, crate::blobs::ByteStream)> {
        self.authorize(ctx, Action::GetDownloadUrlForLayer, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        let blob = self.linked(&repo, digest).await?;
        let reader = self.blobs.read(&blob.location, None).await?;
        Ok((blob.size, reader.stream))
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
        let blob = self.linked(&repo, digest).await.map_err(|e| match e {
            Error::BlobNotFound => Error::LayersNotFound(format!(
                "The layer with digest {digest} does not exist within the repository with name '{name}' in the registry with id '{}'",
                ctx.registry.account_id
            )),
            other => other,
        })?;
        // Object storage presigns its own URL, as ECR hands out S3's.
        let presigned = self
            .blobs
            .download_url(&blob.location, DOWNLOAD_URL_VALIDITY)
            .await?;
        if let Some(url) = presigned {
            return Ok(url);
        }
        let expires = clock::now_ms() / 1000 + DOWNLOAD_URL_VALIDITY.as_secs() as i64;
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
}

//! Uploads: one pipeline for both front ends. The registry's POST / PATCH / PUT and
//! ECR's InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload open, append to and
//! finish the same upload sessions in the blob store, so the checks (session ownership,
//! offsets, the digest before publication, the link after it) are written once. An
//! upload session belongs to the repository it was opened in.
//!
//! A session's blob-store state lives in the metadata store (meta/uploads.rs), saved
//! after every append, so each request of an upload may reach another node. The row
//! exists from the session's start until the transaction that records its blob, so a
//! session abandoned at any point (a crash included) is found and cleaned up by the
//! collector.

use bytes::Bytes;

use super::{Action, Context, Error, Result, Service};
use crate::blobs::{self, ByteStream, UploadId, UploadKey};
use crate::clock;
use crate::meta::{FinishedUpload, Recorded, StoredUpload};
use crate::oci::{Digest, RepositoryName};

/// `partSize` InitiateLayerUpload reports.
pub const PART_SIZE: u64 = 10 * 1024 * 1024;
/// Smallest non-final part CompleteLayerUpload accepts.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

impl Service {
    pub async fn start_upload(&self, ctx: &Context, name: &RepositoryName) -> Result<UploadId> {
        self.authorize(ctx, Action::InitiateLayerUpload, name)
            .await?;
        let repo = self.repository_for_push(ctx, name).await?;
        Ok(self.open_session(&repo).await?.0.id)
    }

    /// A new, empty upload session in `repo`, and its state as stored.
    pub(super) async fn open_session(
        &self,
        repo: &crate::meta::Repository,
    ) -> Result<(UploadKey, StoredUpload)> {
        let key = UploadKey {
            owner: repo.id,
            id: UploadId::new(),
        };
        let state = self.blobs.create_upload(key).await?;
        if let Err(e) = self.meta.insert_upload(key, &state, clock::now_ms()).await {
            let _ = self.blobs.abort_upload(key, &state).await;
            return Err(e.into());
        }
        Ok((key, StoredUpload::new(state)))
    }

    /// A session's stored state; `UploadNotFound` once it is over (or being discarded).
    pub(super) async fn stored_session(&self, key: UploadKey) -> Result<StoredUpload> {
        self.meta
            .upload(key)
            .await?
            .filter(|s| !s.aborting)
            .ok_or(Error::UploadNotFound)
    }

    /// Append to a session and save its new state.
    async fn append_to_session(
        &self,
        key: UploadKey,
        stored: &StoredUpload,
        offset: Option<u64>,
        body: ByteStream,
    ) -> std::result::Result<u64, blobs::Error> {
        let staged = self
            .blobs
            .append_upload(key, &stored.state, offset, body)
            .await?;
        if staged.state != stored.state {
            let garbage = self.blobs.superseded(&stored.state, &staged.state);
            let saved = self
                .meta
                .save_upload(
                    key,
                    stored.version,
                    &staged.state,
                    &garbage,
                    clock::now_ms(),
                )
                .await
                .map_err(|e| blobs::Error::Backend(e.to_string()))?;
            if !saved {
                self.blobs.unsaved(&stored.state, &staged.state).await;
                return Err(self.lost_race(key).await);
            }
            self.delete_garbage(&garbage).await;
        }
        Ok(staged.size)
    }

    /// Delete bytes recorded as garbage, and their garbage rows; what fails here is
    /// left to the collector.
    async fn delete_garbage(&self, garbage: &[blobs::BlobLocation]) {
        for location in garbage {
            if self.blobs.delete(location).await.is_ok() {
                let _ = self.meta.forget_garbage(location).await;
            }
        }
    }

    /// Another request acted on the session first, so this one did nothing: the
    /// session's size as that request left it, or `NotFound` if it ended it.
    async fn lost_race(&self, key: UploadKey) -> blobs::Error {
        match self.meta.upload(key).await {
            Ok(Some(now)) => match self.blobs.upload_size(key, &now.state).await {
                Ok(size) => blobs::Error::OffsetMismatch { size },
                Err(e) => e,
            },
            Ok(None) => blobs::Error::NotFound,
            Err(e) => blobs::Error::Backend(e.to_string()),
        }
    }

    /// Finish a session: verify and publish its bytes, record and link the blob. The
    /// session ends, except after an error that leaves its bytes usable (a wrong
    /// offset, an interrupted body, a blob-store failure): then the client may go on.
    pub(super) async fn finish_session(
        &self,
        key: UploadKey,
        stored: &StoredUpload,
        digest: &Digest,
        offset: Option<u64>,
        last_chunk: Option<ByteStream>,
    ) -> std::result::Result<u64, Error> {
        let finished = self
            .blobs
            .finish_upload(key, &stored.state, digest, offset, last_chunk)
            .await;
        let published = match finished {
            Ok(p) => p,
            Err(e) => {
                // Not on NotFound: that may be another request's finish of this session
                // (a retry), whose bytes must stay.
                let over = matches!(e, blobs::Error::DigestMismatch | blobs::Error::Full);
                if over {
                    let _ = self.end_session(key, stored).await;
                }
                return Err(Self::upload_store_error(e));
            }
        };
        let size =
            i64::try_from(published.size).map_err(|_| Error::Internal("blob too large".into()))?;
        let at = &published.location;
        let garbage = &published.superseded;
        let session = FinishedUpload {
            key,
            version: stored.version,
            garbage,
        };
        let recorded = self
            .meta
            .record_blob(key.owner, digest, size, at, Some(session), clock::now_ms())
            .await?;
        if recorded != Recorded::SessionGone {
            self.delete_garbage(garbage).await;
        }
        match recorded {
            Recorded::Recorded => Ok(published.size),
            Recorded::Duplicate => {
                // Another upload recorded this digest first: this copy is garbage already.
                self.delete_garbage(std::slice::from_ref(at)).await;
                Ok(published.size)
            }
            Recorded::SessionGone => {
                self.drop_unrecorded(key, digest, at).await;
                Err(Error::UploadNotFound)
            }
        }
    }

    /// A finish that lost to another request on its session (a finish, an append, a
    /// discard): remove what it published, unless that is the copy the other request
    /// recorded (the same bytes, so the same location), or the session's discard will.
    async fn drop_unrecorded(&self, key: UploadKey, digest: &Digest, at: &blobs::BlobLocation) {
        let recorded = self.meta.linked_blob(key.owner, digest).await;
        let theirs = match &recorded {
            Ok(Some((_, Some(location)))) => location == at.as_str(),
            Ok(_) => false,
            Err(_) => true,
        };
        if !theirs {
            let _ = self.blobs.delete(at).await;
        }
    }

    /// Discard a session's bytes and forget it, unless it changed since `stored` was
    /// read (another request is acting on it). If the bytes cannot be removed now, the
    /// session stays marked and the collector finishes the work.
    pub(super) async fn end_session(&self, key: UploadKey, stored: &StoredUpload) -> Result<()> {
        if !self.meta.begin_abort(key, stored.version).await? {
            return Ok(());
        }
        self.blobs.abort_upload(key, &stored.state).await?;
        self.meta.forget_aborted_upload(key).await?;
        Ok(())
    }

    /// Link a blob another repository of the same registry has (cross-repository mount).
    /// `None` means no mount happened and the client should upload.
    pub async fn mount_blob(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<Option<u64>> {
        self.authorize(ctx, Action::InitiateLayerUpload, name)
            .await?;
        let target = self.repository_for_push(ctx, name).await?;
        if !self.blob_mounting_enabled(&ctx.registry).await? {
            // As on ECR: with BLOB_MOUNTING off, the POST starts a normal upload.
            return Ok(None);
        }
        let source = match from {
            Some(from) => self.meta.repository(&ctx.registry, from).await?,
            None => self
                .meta
                .repositories_linking(&ctx.registry, digest, 1)
                .await?
                .into_iter()
                .next(),
        };
        let Some(source) = source else {
            return Ok(None);
        };
        self.authorize(ctx, Action::GetDownloadUrlForLayer, &source.name)
            .await?;
        let Some(size) = self.meta.linked_blob_size(source.id, digest).await? else {
            return Ok(None);
        };
        // The blob may have been collected since: then the client uploads it.
        if !self
            .meta
            .link_existing_blob(target.id, &digest.to_string(), clock::now_ms())
            .await?
        {
            return Ok(None);
        }
        Ok(Some(u64::try_from(size).unwrap_or(0)))
    }

    /// A whole blob in one request (`POST ...?digest=`).
    pub async fn upload_blob(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<u64> {
        self.authorize(ctx, Action::InitiateLayerUpload, name)
            .await?;
        self.authorize(ctx, Action::UploadLayerPart, name).await?;
        self.authorize(ctx, Action::CompleteLayerUpload, name)
            .await?;
        let repo = self.repository_for_push(ctx, name).await?;
        let (key, stored) = self.open_session(&repo).await?;
        let finished = self
            .finish_session(key, &stored, digest, Some(0), Some(body))
            .await;
        match finished {
            Ok(size) => Ok(size),
            Err(e) => {
                // A one-request upload is over whatever happened.
                if let Ok(stored) = self.stored_session(key).await {
                    let _ = self.end_session(key, &stored).await;
                }
                Err(e)
            }
        }
    }

    /// The session addressed as `id` under `name`. Sessions are stored under the
    /// repository that owns them, so an id used under another name finds nothing.
    pub(crate) async fn session(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
    ) -> Result<UploadKey> {
        let repo = self.repository(ctx, name).await?;
        let id = UploadId::parse(id).ok_or(Error::UploadNotFound)?;
        Ok(UploadKey { owner: repo.id, id })
    }

    fn upload_store_error(e: blobs::Error) -> Error {
        match e {
            blobs::Error::NotFound => Error::UploadNotFound,
            other => other.into(),
        }
    }

    /// Append a chunk; `offset` (from `Content-Range`) must equal the bytes staged so far.
    pub async fn append_upload(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        self.authorize(ctx, Action::UploadLayerPart, name).await?;
        let key = self.session(ctx, name, id).await?;
        let stored = self.stored_session(key).await?;
        self.append_to_session(key, &stored, offset, body)
            .await
            .map_err(Self::upload_store_error)
    }

    pub async fn upload_status(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
    ) -> Result<u64> {
        self.authorize(ctx, Action::UploadLayerPart, name).await?;
        Ok(self.staged(ctx, name, id).await?.2)
    }

    /// An upload session addressed through `name`, and the bytes staged in it so far.
    pub(crate) async fn staged(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
    ) -> Result<(UploadKey, StoredUpload, u64)> {
        let key = self.session(ctx, name, id).await?;
        let stored = self.stored_session(key).await?;
        let size = self
            .blobs
            .upload_size(key, &stored.state)
            .await
            .map_err(Self::upload_store_error)?;
        Ok((key, stored, size))
    }

    /// Finish an upload with an optional last chunk: verify, publish, link.
    pub async fn complete_upload(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
        digest: &Digest,
        offset: Option<u64>,
        last_chunk: Option<ByteStream>,
    ) -> Result<u64> {
        self.authorize(ctx, Action::CompleteLayerUpload, name)
            .await?;
        if last_chunk.is_some() {
            self.authorize(ctx, Action::UploadLayerPart, name).await?;
        }
        let key = self.session(ctx, name, id).await?;
        let stored = self.stored_session(key).await?;
        self.finish_session(key, &stored, digest, offset, last_chunk)
            .await
    }

    pub async fn cancel_upload(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
    ) -> Result<()> {
        self.authorize(ctx, Action::UploadLayerPart, name).await?;
        let key = self.session(ctx, name, id).await?;
        // Unknown sessions are an error for the client, not a silent success.
        let stored = self.stored_session(key).await?;
        self.end_session(key, &stored).await
    }

    pub async fn initiate_layer_upload(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<UploadId> {
        self.start_upload(ctx, name).await
    }

    /// UploadLayerPart: parts must be contiguous and their byte range must match the data.
    pub async fn upload_layer_part(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
        first: u64,
        last: u64,
        data: Bytes,
    ) -> Result<u64> {
        self.authorize(ctx, Action::UploadLayerPart, name).await?;
        let (key, stored, staged) = self.staged(ctx, name, id).await?;
        let last_valid = staged.checked_sub(1);
        let bad = |reason: String| Error::InvalidLayerPart {
            reason,
            last_valid_byte: last_valid,
        };
        if first != staged {
            return Err(bad(format!(
                "The part starting at byte {first} does not follow the last byte received"
            )));
        }
        if last < first || last - first + 1 != data.len() as u64 {
            return Err(bad("The part's byte range does not match its length".into()));
        }
        let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(data)]));
        self.append_to_session(key, &stored, Some(first), body)
            .await
            .map_err(|e| match e {
                crate::blobs::Error::OffsetMismatch { .. } => {
                    bad("The part does not follow the last byte received".into())
                }
                other => Self::upload_store_error(other),
            })?;
        // Kept with the session, so CompleteLayerUpload on any node can check it.
        let short = last - first + 1 < MIN_PART_SIZE;
        self.meta.record_api_part(key, short).await?;
        Ok(last)
    }

    pub async fn complete_layer_upload(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &str,
        digest: &Digest,
    ) -> Result<()> {
        self.authorize(ctx, Action::CompleteLayerUpload, name)
            .await?;
        let (key, stored, staged) = self.staged(ctx, name, id).await?;
        if staged == 0 {
            return Err(Error::EmptyUpload(id.to_owned()));
        }
        if stored.short_part_before_last {
            return Err(Error::LayerPartTooSmall);
        }
        if self
            .meta
            .linked_blob_size(key.owner, digest)
            .await?
            .is_some()
        {
            let _ = self.end_session(key, &stored).await;
            return Err(Error::LayerAlreadyExists(digest.to_string()));
        }
        let size = self
            .finish_session(key, &stored, digest, None, None)
            .await
            .map_err(|e| match e {
                Error::DigestMismatch => Error::InvalidLayer(digest.to_string()),
                other => other,
            });
        size.map(drop)
    }
}

//! Blob store: content-addressed bytes and the staging area of upload sessions.
//!
//! Published blobs know nothing about repositories: visibility is a metadata link, made
//! only after [`BlobStore::finish_upload`] returned. Upload sessions are keyed by their
//! owner (the repository they were started in) and a UUID, so that the staging area itself
//! says which repository a session belongs to and no database row is needed per session. [`fs::FsBlobStore`] is the embedded
//! backend; an S3-compatible one implements the same trait.
//!
//! Contract every backend keeps:
//! - `finish_upload` verifies the staged bytes against the digest, makes them durable and
//!   only then publishes them under the digest (atomically: readers see all or nothing).
//!   On a digest mismatch the staged bytes are discarded and nothing is published.
//! - A published blob is immutable; publishing the same digest again is a no-op.
//! - `append_upload` with an `offset` other than the staged size fails with
//!   `OffsetMismatch` and changes nothing.
//! - Missing blobs and unknown uploads give `NotFound`; `delete` and `abort_upload` are
//!   idempotent.

#[cfg(test)]
mod contract;
pub mod fs;
pub mod sha256_state;
mod staging;

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use crate::oci::Digest;

/// A stream of body bytes, as the front ends hand them over.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("upload offset mismatch: {size} bytes are staged")]
    OffsetMismatch { size: u64 },
    #[error("content does not match digest")]
    DigestMismatch,
    /// The client's body stream failed (e.g. disconnect); what arrived before is staged.
    #[error("request body interrupted: {0}")]
    BodyInterrupted(String),
    /// No space left where the bytes go (the upload that met it is discarded whole).
    #[error("no space left on the blob store's disk")]
    Full,
    #[error("blob store failure: {0}")]
    Backend(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound,
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Error::Full,
            _ => Error::Backend(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// An open blob: a stream over the requested range.
pub struct BlobReader {
    pub stream: ByteStream,
}

/// Upload session identifiers are UUIDs; the type keeps anything else (such as a path)
/// away from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(uuid::Uuid);

impl Default for UploadId {
    /// A fresh random id.
    fn default() -> UploadId {
        UploadId::new()
    }
}

impl UploadId {
    pub fn new() -> UploadId {
        UploadId(uuid::Uuid::new_v4())
    }

    pub fn parse(s: &str) -> Option<UploadId> {
        // Only the hyphenated form we hand out is accepted.
        (s.len() == 36)
            .then(|| uuid::Uuid::parse_str(s).ok())
            .flatten()
            .map(UploadId)
    }
}

/// An upload session: the repository that owns it and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadKey {
    pub owner: i64,
    pub id: UploadId,
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// Start an empty staging area for an upload session.
    async fn create_upload(&self, key: UploadKey) -> Result<()>;
    /// Append a stream to the staged bytes; `offset`, when given, must equal the staged size.
    /// Returns the new staged size.
    async fn append_upload(
        &self,
        key: UploadKey,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64>;
    /// Bytes staged so far.
    async fn upload_size(&self, key: UploadKey) -> Result<u64>;
    /// Append an optional last chunk (at `offset`, if given), then verify, make durable
    /// and publish the staged bytes as `digest`. Returns the size. The session ends
    /// unless the backend failed.
    async fn finish_upload(
        &self,
        key: UploadKey,
        digest: &Digest,
        offset: Option<u64>,
        last_chunk: Option<ByteStream>,
    ) -> Result<u64>;
    /// Discard the staged bytes.
    async fn abort_upload(&self, key: UploadKey) -> Result<()>;
    /// Size of a published blob.
    #[allow(dead_code)] // part of the contract; tests and tools use it
    async fn stat(&self, digest: &Digest) -> Result<u64>;
    /// Read a published blob; `range` is an inclusive byte range within it.
    async fn read(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobReader>;
    /// Remove a published blob.
    #[allow(dead_code)] // part of the contract; the collector uses quarantine + purge
    async fn delete(&self, digest: &Digest) -> Result<()>;

    // ---- garbage collection (service/gc.rs has the protocol) ----

    /// Move a published blob aside, where readers no longer find it; false if it was
    /// not there.
    async fn quarantine(&self, digest: &Digest) -> Result<bool>;
    /// Put a quarantined blob back (replacing an identical re-published copy, if any).
    async fn restore(&self, digest: &Digest) -> Result<()>;
    /// Delete a quarantined blob for good.
    async fn purge(&self, digest: &Digest) -> Result<()>;
    /// Blobs left in quarantine (by a collector that stopped half-way).
    async fn quarantined(&self) -> Result<Vec<Digest>>;
    /// Upload sessions whose staged bytes were last written before `before`.
    async fn stale_uploads(&self, before: std::time::SystemTime) -> Result<Vec<UploadKey>>;
}

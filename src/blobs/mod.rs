//! Blob store: content-addressed bytes and the staging area of upload sessions.
//!
//! Published blobs know nothing about repositories: visibility is a metadata row, made
//! only after [`BlobStore::finish_upload`] returned. Every upload publishes under a
//! [`BlobLocation`] of its own, which the metadata records with the digest: a location is
//! never reused, so removing one copy (a collected blob, the loser of two concurrent
//! uploads of the same digest) can never remove another, on a local disk or in a bucket.
//!
//! What a store must remember of an upload between requests is its [`UploadState`],
//! kept in the metadata store by the service, so the next request of the upload may
//! reach another process or node. [`fs::FsBlobStore`] is the embedded backend;
//! [`s3::S3BlobStore`] keeps blobs in an S3-compatible bucket.
//!
//! Contract every backend keeps (`contract.rs` checks it on each):
//! - `finish_upload` verifies the staged bytes against the digest and makes them durable
//!   before it returns a location; on a mismatch nothing is published, and what the
//!   session staged goes with `abort_upload`. It removes nothing another request from
//!   the same state may still record: what its session no longer needs once its blob is
//!   recorded is returned as `superseded`, for the caller to delete then.
//! - A published location is immutable until deleted.
//! - `append_upload` with an `offset` other than the staged size fails with
//!   `OffsetMismatch` and changes nothing.
//! - Missing blobs give `NotFound`; `delete` and `abort_upload` are idempotent, and
//!   `abort_upload` also removes what an unrecorded `finish_upload` published.

#[cfg(test)]
mod contract;
pub mod fs;
pub mod s3;
pub mod sha256_state;
mod staging;

use std::io;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

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

/// Where a published blob's bytes are, as its store named them (a path under the data
/// directory, an object key under the bucket's prefix). Opaque outside the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobLocation(String);

impl BlobLocation {
    /// A location as the metadata store recorded it.
    pub fn from_store(s: String) -> BlobLocation {
        BlobLocation(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a store remembers of an upload session between requests (its own format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadState(Vec<u8>);

impl UploadState {
    pub fn from_store(bytes: Vec<u8>) -> UploadState {
        UploadState(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// An upload session after an append: the bytes staged and the state to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub size: u64,
    pub state: UploadState,
}

/// A finished upload: its size and where the bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub size: u64,
    pub location: BlobLocation,
    /// Objects of the session nothing names once this blob is recorded.
    pub superseded: Vec<BlobLocation>,
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// Start an empty upload session; its state is to be kept for the calls below.
    async fn create_upload(&self, key: UploadKey) -> Result<UploadState>;
    /// Append a stream to the staged bytes; `offset`, when given, must equal the staged
    /// size. Returns the new size and state; the caller saves the state, with what
    /// [`BlobStore::superseded`] names recorded as garbage in the same transaction,
    /// then deletes that.
    async fn append_upload(
        &self,
        key: UploadKey,
        state: &UploadState,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<Staged>;
    /// What `old` names that `new` does not: garbage once `new` is saved in its place
    /// (no request from `old` can save or record any more).
    fn superseded(&self, old: &UploadState, new: &UploadState) -> Vec<BlobLocation>;
    /// `staged` (from `old`) could not be saved: another request saved first. Release
    /// what only this request's append started (best effort).
    async fn unsaved(&self, old: &UploadState, staged: &UploadState);
    /// Bytes staged so far.
    async fn upload_size(&self, key: UploadKey, state: &UploadState) -> Result<u64>;
    /// When the session's bytes were last written.
    async fn last_write(&self, key: UploadKey, state: &UploadState) -> Result<SystemTime>;
    /// Append an optional last chunk (at `offset`, if given), then verify, make durable
    /// and publish the staged bytes. The session is over unless the backend failed.
    async fn finish_upload(
        &self,
        key: UploadKey,
        state: &UploadState,
        digest: &Digest,
        offset: Option<u64>,
        last_chunk: Option<ByteStream>,
    ) -> Result<Published>;
    /// Discard the staged bytes, and whatever `finish_upload` published for the session.
    async fn abort_upload(&self, key: UploadKey, state: &UploadState) -> Result<()>;
    /// Size of a published blob.
    #[allow(dead_code)] // part of the contract; tests and tools use it
    async fn stat(&self, location: &BlobLocation) -> Result<u64>;
    /// Read a published blob; `range` is an inclusive byte range within it.
    async fn read(&self, location: &BlobLocation, range: Option<(u64, u64)>) -> Result<BlobReader>;
    /// A URL that serves the blob without other credentials until `expires_in` has
    /// passed, if the store can make one (a presigned object-storage URL).
    async fn download_url(
        &self,
        location: &BlobLocation,
        expires_in: Duration,
    ) -> Result<Option<String>>;
    /// Remove a published blob.
    async fn delete(&self, location: &BlobLocation) -> Result<()>;
    /// Where blobs recorded before locations existed are: named by their digest.
    fn digest_location(&self, digest: &Digest) -> BlobLocation;
    /// The local file a session stages its bytes in, when the store stages on this
    /// node's disk: a writer may append to it directly (the pull-through cache, whose
    /// clients read the file as it grows), and `finish_upload` then hashes what it
    /// finds. `None` where staging is remote (object storage).
    fn local_staging(&self, _key: UploadKey) -> Option<std::path::PathBuf> {
        None
    }

    // ---- recovery of what earlier versions left ----

    /// Blobs an earlier version's collector had moved aside when it stopped.
    async fn quarantined(&self) -> Result<Vec<Digest>> {
        Ok(Vec::new())
    }
    /// Put such a blob back at its digest location.
    async fn restore(&self, _digest: &Digest) -> Result<()> {
        Ok(())
    }
    /// Delete such a blob for good.
    async fn purge(&self, _digest: &Digest) -> Result<()> {
        Ok(())
    }
}

//! Local-filesystem blob store.
//!
//! Layout under the data directory (this module is the only place that builds these paths):
//! ```text
//! blobs/v2/<uuid[0..2]>/<uuid>             a published blob, immutable, named by the
//!                                          upload that published it
//! blobs/v1/<algorithm>/<hex[0..2]>/<hex>   one published before locations existed
//! uploads/<owner>/<uuid>                   staging file of one upload session, under the
//!                                          id of the repository that owns it
//! quarantine/<algorithm>-<hex>             left by an earlier version's collector
//! ```
//! Publishing is: hash while streaming → compare with the digest → fdatasync the staging
//! file → rename it into `blobs/` → fsync the directory. A crash at any point leaves at
//! worst a staging file or an unrecorded blob file, both of which the upload's metadata
//! row names, so the collector removes them; never a partial file under `blobs/`.
//!
//! The upload state this store hands out is empty: the staging file is the state.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256, Sha512};

use super::{
    staging, BlobLocation, BlobReader, BlobStore, ByteStream, Error, Published, Result, UploadKey,
    UploadState,
};
use crate::oci::{Algorithm, Digest};

/// Read size for downloads: large enough that per-read overhead is negligible.
const READ_CHUNK: usize = 512 * 1024;
/// Chunks a download reads ahead of the socket.
const READ_AHEAD: usize = 4;
/// Body frames are handed to the writer thread in batches of about this many bytes, so
/// the per-batch cost (channel, wake-up) stays negligible. Frames are not copied.
const WRITE_BATCH: usize = 1024 * 1024;
/// Batches in flight between the network task and the writer thread (bounds memory).
const WRITE_QUEUE: usize = 4;

/// In-memory state of a session being written: the running hash of the staged bytes.
/// `hasher` is `None` when it is not known (after a restart or a write error); the
/// commit then re-hashes the file.
struct Staged {
    size: u64,
    hasher: Option<Sha256>,
}

type Session = Arc<tokio::sync::Mutex<Staged>>;

pub struct FsBlobStore {
    root: PathBuf,
    sessions: Mutex<HashMap<UploadKey, Session>>,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> io::Result<FsBlobStore> {
        std::fs::create_dir_all(root.join("blobs/v2"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(FsBlobStore {
            root: root.to_owned(),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Where an upload publishes: a name of its own (see the module comment), which
    /// `abort_upload` finds without knowing the digest.
    fn publish_location(key: UploadKey) -> BlobLocation {
        let id = key.id.to_string();
        BlobLocation(format!("blobs/v2/{}/{id}", &id[..2]))
    }

    /// The file of a location; a location this store did not make is refused.
    fn location_path(&self, location: &BlobLocation) -> Result<PathBuf> {
        let s = location.as_str();
        let plain = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'.' || b == b'-');
        let ours = s.starts_with("blobs/v1/") || s.starts_with("blobs/v2/");
        if !ours || !plain || s.contains("..") {
            return Err(Error::Backend(format!("not a blob location: {s}")));
        }
        Ok(self.root.join(s))
    }

    /// Where blobs published before locations existed are.
    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs/v1")
            .join(d.algorithm().name())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    fn quarantine_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("quarantine")
            .join(format!("{}-{}", d.algorithm().name(), d.hex()))
    }

    fn upload_path(&self, key: UploadKey) -> PathBuf {
        self.root
            .join("uploads")
            .join(key.owner.to_string())
            .join(key.id.to_string())
    }

    fn sessions(&self) -> Result<std::sync::MutexGuard<'_, HashMap<UploadKey, Session>>> {
        self.sessions
            .lock()
            .map_err(|_| Error::Backend("session table poisoned".into()))
    }

    /// The session's state, loaded from the staging file if this process has none.
    fn session(&self, key: UploadKey) -> Result<Session> {
        let mut sessions = self.sessions()?;
        if let Some(s) = sessions.get(&key) {
            return Ok(s.clone());
        }
        let size = std::fs::metadata(self.upload_path(key))?.len();
        let s = Arc::new(tokio::sync::Mutex::new(Staged { size, hasher: None }));
        sessions.insert(key, s.clone());
        Ok(s)
    }

    /// Bring a locked session up to date with its staging file, which another process
    /// over the same directory may have appended to: then the hash is redone at the end.
    fn refresh(&self, key: UploadKey, staged: &mut Staged) -> Result<()> {
        let len = std::fs::metadata(self.upload_path(key))?.len();
        if len != staged.size {
            staged.size = len;
            staged.hasher = None;
        }
        Ok(())
    }

    fn forget(&self, key: UploadKey) {
        if let Ok(mut sessions) = self.sessions() {
            sessions.remove(&key);
        }
    }
}

fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut sha256 = Sha256::new();
    let mut sha512 = Sha512::new();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        match algorithm {
            Algorithm::Sha256 => sha256.update(&buf[..n]),
            Algorithm::Sha512 => sha512.update(&buf[..n]),
        }
    }
    Ok(match algorithm {
        Algorithm::Sha256 => hex::encode(sha256.finalize()),
        Algorithm::Sha512 => hex::encode(sha512.finalize()),
    })
}

/// fsync a directory so a rename or create inside it survives a crash.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Backend(format!("blob worker failed: {e}"))
}

fn write_batch(f: &mut File, batch: &[Bytes], hasher: &mut Option<Sha256>) -> io::Result<u64> {
    let mut n = 0;
    for chunk in batch {
        f.write_all(chunk)?;
        if let Some(h) = hasher.as_mut() {
            h.update(chunk);
        }
        n += chunk.len() as u64;
    }
    Ok(n)
}

/// Verify the staged bytes against `digest`, make them durable and publish them.
/// Runs on a blocking thread. On a mismatch the staging file is deleted.
fn publish(staging: &Path, target: &Path, digest: &Digest, hasher: Option<Sha256>) -> Result<u64> {
    let actual = match (digest.algorithm(), hasher) {
        (Algorithm::Sha256, Some(h)) => hex::encode(h.finalize()),
        (alg, _) => hash_file(staging, alg)?,
    };
    if actual != digest.hex() {
        let _ = std::fs::remove_file(staging);
        return Err(Error::DigestMismatch);
    }
    let file = File::open(staging)?;
    let size = file.metadata()?.len();
    file.sync_data()?;
    drop(file);
    let dir = target
        .parent()
        .ok_or_else(|| Error::Backend("blob path has no parent".into()))?;
    std::fs::create_dir_all(dir)?;
    std::fs::rename(staging, target)?;
    sync_dir(dir)?;
    Ok(size)
}

/// The first part of a body, up to about [`WRITE_BATCH`] bytes, and whether the body
/// ended within it (so it can be written in one go, without a writer thread).
struct Head {
    batch: Vec<Bytes>,
    ended: bool,
    interrupted: Option<io::Error>,
}

async fn read_head(body: &mut ByteStream) -> Head {
    let mut head = Head {
        batch: Vec::new(),
        ended: false,
        interrupted: None,
    };
    let mut len = 0;
    while len < WRITE_BATCH {
        match body.next().await {
            Some(Ok(chunk)) => {
                len += chunk.len();
                head.batch.push(chunk);
            }
            Some(Err(e)) => {
                head.interrupted = Some(e);
                head.ended = true;
                return head;
            }
            None => {
                head.ended = true;
                return head;
            }
        }
    }
    head
}

impl FsBlobStore {
    /// Give back the space of an upload that ran out of it, at once: with the disk full,
    /// its partial bytes would keep every other write (the database's too) failing. The
    /// caller holds the session's lock; the client has to start the upload again.
    async fn discard_locked(&self, key: UploadKey) {
        let path = self.upload_path(key);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "removing a failed upload");
            }
        }
        self.forget(key);
    }

    /// Append a body to a session whose lock the caller holds.
    async fn append_locked(
        &self,
        key: UploadKey,
        staged: &mut Staged,
        mut body: ByteStream,
    ) -> Result<u64> {
        let head = read_head(&mut body).await;
        let path = self.upload_path(key);
        let mut hasher = staged.hasher.take();
        let (result, hasher, size, interrupted) = if head.ended {
            // Small body: one blocking call, no writer thread.
            let batch = head.batch;
            let (result, hasher, size) = tokio::task::spawn_blocking(move || {
                let result = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| write_batch(&mut f, &batch, &mut hasher));
                let size = std::fs::metadata(&path).map(|m| m.len());
                (result.map(|_| ()), hasher, size)
            })
            .await
            .map_err(join_err)?;
            (result, hasher, size, head.interrupted)
        } else {
            self.stream_to_writer(path, hasher, head.batch, body)
                .await?
        };
        let size = size?;
        staged.hasher = if result.is_ok() && size >= staged.size {
            hasher
        } else {
            None
        };
        staged.size = size;
        result?;
        if let Some(e) = interrupted {
            return Err(Error::BodyInterrupted(e.to_string()));
        }
        Ok(size)
    }

    /// Large body: hashing and writing happen on a blocking thread while this task keeps
    /// reading the socket, so the two overlap; memory stays bounded by the queue.
    async fn stream_to_writer(
        &self,
        path: PathBuf,
        mut hasher: Option<Sha256>,
        first: Vec<Bytes>,
        mut body: ByteStream,
    ) -> Result<(
        io::Result<()>,
        Option<Sha256>,
        io::Result<u64>,
        Option<io::Error>,
    )> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || {
            let result = staging::append(&path, rx, |chunk| {
                if let Some(h) = hasher.as_mut() {
                    h.update(chunk);
                }
            });
            // The file length is the truth about what is staged, whatever happened.
            let size = std::fs::metadata(&path).map(|m| m.len());
            (result, hasher, size)
        });
        let mut interrupted = None;
        if tx.send(first).await.is_ok() {
            let mut batch = Vec::new();
            let mut batch_len = 0;
            while let Some(item) = body.next().await {
                match item {
                    Ok(chunk) => {
                        batch_len += chunk.len();
                        batch.push(chunk);
                        if batch_len >= WRITE_BATCH {
                            batch_len = 0;
                            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                                break; // the writer failed; its error is reported below
                            }
                        }
                    }
                    Err(e) => {
                        interrupted = Some(e);
                        break;
                    }
                }
            }
            // What arrived before an interruption is kept: the client may resume from it.
            if !batch.is_empty() {
                let _ = tx.send(batch).await;
            }
        }
        drop(tx);
        let (result, hasher, size) = writer.await.map_err(join_err)?;
        Ok((result, hasher, size, interrupted))
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn create_upload(&self, key: UploadKey) -> Result<UploadState> {
        // Two metadata syscalls: done inline, cheaper than a hop to the blocking pool.
        let path = self.upload_path(key);
        if let Some(dir) = path.parent() {
            if !dir.is_dir() {
                std::fs::create_dir_all(dir)?;
            }
        }
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let staged = Staged {
            size: 0,
            hasher: Some(Sha256::new()),
        };
        self.sessions()?
            .insert(key, Arc::new(tokio::sync::Mutex::new(staged)));
        Ok(UploadState::default())
    }

    async fn append_upload(
        &self,
        key: UploadKey,
        state: &UploadState,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<super::Staged> {
        let session = self.session(key)?;
        let mut staged = session.lock().await;
        self.refresh(key, &mut staged)?;
        if offset.is_some_and(|o| o != staged.size) {
            return Err(Error::OffsetMismatch { size: staged.size });
        }
        let appended = self.append_locked(key, &mut staged, body).await;
        if matches!(appended, Err(Error::Full)) {
            self.discard_locked(key).await;
        }
        Ok(super::Staged {
            size: appended?,
            state: state.clone(),
        })
    }

    async fn unsaved(&self, _old: &UploadState, _staged: &UploadState) {}

    fn superseded(&self, _old: &UploadState, _new: &UploadState) -> Vec<BlobLocation> {
        // The staging file is the session's only object, whatever the state.
        Vec::new()
    }

    async fn upload_size(&self, key: UploadKey, _state: &UploadState) -> Result<u64> {
        // The staging file's length, read without the session lock, so a status request
        // answers while a PATCH is still streaming into the session.
        Ok(tokio::fs::metadata(self.upload_path(key)).await?.len())
    }

    async fn last_write(&self, key: UploadKey, _state: &UploadState) -> Result<SystemTime> {
        match tokio::fs::metadata(self.upload_path(key)).await {
            Ok(m) => Ok(m.modified()?),
            // Gone (finished, or never created): nothing is being written.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(SystemTime::UNIX_EPOCH),
            Err(e) => Err(e.into()),
        }
    }

    async fn finish_upload(
        &self,
        key: UploadKey,
        _state: &UploadState,
        digest: &Digest,
        offset: Option<u64>,
        body: Option<ByteStream>,
    ) -> Result<Published> {
        let session = self.session(key)?;
        let mut staged = session.lock().await;
        self.refresh(key, &mut staged)?;
        if body.is_some() && offset.is_some_and(|o| o != staged.size) {
            return Err(Error::OffsetMismatch { size: staged.size });
        }
        let staging = self.upload_path(key);
        let location = Self::publish_location(key);
        let target = self.location_path(&location)?;
        let digest = digest.clone();
        let mut body = body;
        let head = match body.as_mut() {
            Some(b) => Some(read_head(b).await),
            None => None,
        };
        let outcome = match head {
            // No last chunk, or a small one: append (if any), verify and publish in one
            // blocking call.
            None
            | Some(Head {
                ended: true,
                interrupted: None,
                ..
            }) => {
                let batch = head.map(|h| h.batch).unwrap_or_default();
                let mut hasher = staged.hasher.take();
                tokio::task::spawn_blocking(move || {
                    if !batch.is_empty() {
                        let mut f = OpenOptions::new().append(true).open(&staging)?;
                        write_batch(&mut f, &batch, &mut hasher)?;
                    }
                    publish(&staging, &target, &digest, hasher)
                })
                .await
                .map_err(join_err)?
            }
            Some(head) => {
                // A large or interrupted last chunk: stream it in, then publish.
                let rest: ByteStream = match body {
                    Some(rest) if !head.ended => rest,
                    _ => Box::pin(futures_util::stream::iter(head.interrupted.map(Err))),
                };
                let first: ByteStream =
                    Box::pin(futures_util::stream::iter(head.batch.into_iter().map(Ok)));
                let chained: ByteStream = Box::pin(first.chain(rest));
                if let Err(e) = self.append_locked(key, &mut staged, chained).await {
                    if matches!(e, Error::Full) {
                        self.discard_locked(key).await;
                    }
                    return Err(e);
                }
                let hasher = staged.hasher.take();
                tokio::task::spawn_blocking(move || publish(&staging, &target, &digest, hasher))
                    .await
                    .map_err(join_err)?
            }
        };
        if matches!(outcome, Err(Error::Full)) {
            self.discard_locked(key).await;
        }
        drop(staged);
        if !matches!(outcome, Err(Error::Backend(_))) {
            self.forget(key);
        }
        Ok(Published {
            size: outcome?,
            location,
            superseded: Vec::new(),
        })
    }

    async fn abort_upload(&self, key: UploadKey, _state: &UploadState) -> Result<()> {
        // Under the session lock, so a concurrent append or commit finishes first and
        // cannot re-create the session after the file is gone.
        let session = match self.session(key) {
            Ok(s) => Some(s),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        };
        let _staged = match &session {
            Some(s) => Some(s.lock().await),
            None => None,
        };
        let removed = remove_if_present(&self.upload_path(key)).await;
        self.forget(key);
        removed?;
        remove_if_present(&self.location_path(&Self::publish_location(key))?).await
    }

    async fn stat(&self, location: &BlobLocation) -> Result<u64> {
        Ok(tokio::fs::metadata(self.location_path(location)?)
            .await?
            .len())
    }

    async fn read(&self, location: &BlobLocation, range: Option<(u64, u64)>) -> Result<BlobReader> {
        let file = tokio::fs::File::open(self.location_path(location)?).await?;
        let mut file = file.into_std().await;
        let size = file.metadata()?.len();
        let (start, len) = match range {
            Some((start, end)) if start <= end && end < size => (start, end - start + 1),
            Some(_) => return Err(Error::Backend("range outside blob".into())),
            None => (0, size),
        };
        // A blocking task reads ahead into a small queue, so disk reads overlap the
        // socket writes; it stops when the client goes away (the queue closes).
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = file.seek(SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = len;
            while left > 0 {
                let want = usize::try_from(left.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
                let mut buf = BytesMut::zeroed(want);
                let item = file.read_exact(&mut buf).map(|()| buf.freeze());
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
                left -= want as u64;
            }
        });
        Ok(BlobReader {
            stream: Box::pin(tokio_stream_from(rx)),
        })
    }

    async fn download_url(
        &self,
        _location: &BlobLocation,
        _expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    async fn delete(&self, location: &BlobLocation) -> Result<()> {
        remove_if_present(&self.location_path(location)?).await
    }

    fn local_staging(&self, key: UploadKey) -> Option<PathBuf> {
        Some(self.upload_path(key))
    }

    fn digest_location(&self, digest: &Digest) -> BlobLocation {
        BlobLocation(format!(
            "blobs/v1/{}/{}/{}",
            digest.algorithm().name(),
            &digest.hex()[..2],
            digest.hex()
        ))
    }

    async fn quarantined(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(self.root.join("quarantine")).await {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((alg, hex)) = name.split_once('-') {
                if let Ok(d) = format!("{alg}:{hex}").parse::<Digest>() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    async fn restore(&self, digest: &Digest) -> Result<()> {
        let target = self.blob_path(digest);
        let from = self.quarantine_path(digest);
        tokio::task::spawn_blocking(move || -> Result<()> {
            let dir = target
                .parent()
                .ok_or_else(|| Error::Backend("blob path has no parent".into()))?;
            std::fs::create_dir_all(dir)?;
            match std::fs::rename(&from, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            sync_dir(dir)?;
            Ok(())
        })
        .await
        .map_err(join_err)?
    }

    async fn purge(&self, digest: &Digest) -> Result<()> {
        remove_if_present(&self.quarantine_path(digest)).await
    }
}

async fn remove_if_present(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A stream over a channel's items.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::contract;

    fn store() -> (tempfile::TempDir, FsBlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        (dir, store)
    }

    /// The whole contract on this store, whatever store the run tests otherwise.
    #[tokio::test]
    async fn keeps_the_contract() {
        let (dir, s) = store();
        // The second instance knows only the staging files, and hashes them again.
        let second = FsBlobStore::open(dir.path()).expect("reopen");
        contract::stage_commit_read(&s).await;
        contract::mismatch_publishes_nothing(&s).await;
        contract::resumes_in_another_instance(&s, &second).await;
        contract::chunk_sizes_and_last_chunks(&s, &second).await;
        contract::racing_requests_keep_the_first(&s, &second).await;
        contract::small_upload_finished_by_its_last_chunk(&s).await;
        contract::each_upload_publishes_its_own_copy(&s).await;
        contract::abort_removes_an_unrecorded_publication(&s).await;
        contract::download_urls_serve_the_blob(&s).await;
        contract::missing_things_and_idempotent_removal(&s).await;
    }

    #[tokio::test]
    async fn refuses_locations_it_did_not_make() {
        let (_dir, s) = store();
        for bad in [
            "../etc/passwd",
            "blobs/v2/../../x",
            "uploads/1/x",
            "/blobs/v2/ab",
        ] {
            let at = BlobLocation(bad.into());
            assert!(
                matches!(s.read(&at, None).await, Err(Error::Backend(_))),
                "{bad}"
            );
        }
    }
}

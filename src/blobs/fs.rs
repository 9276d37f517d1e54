//! Local-filesystem blob store.
//!
//! Layout under the data directory (this module is the only place that builds these paths):
//! ```text
//! blobs/v1/<algorithm>/<hex[0..2]>/<hex>   published blobs, immutable, named by digest
//! uploads/<owner>/<uuid>                   staging file of one upload session, under the
//!                                          id of the repository that owns it
//! ```
//! Publishing is: hash while streaming → compare with the digest → fdatasync the staging
//! file → rename it into `blobs/` → fsync the directory. A crash at any point leaves at
//! worst a staging file (garbage), never a partial file under `blobs/`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256, Sha512};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{BlobReader, BlobStore, ByteStream, Error, Result, UploadKey};
use crate::oci::{Algorithm, Digest};

/// Read buffer for downloads: large enough that per-read overhead is negligible.
const READ_CHUNK: usize = 512 * 1024;
/// Body frames are handed to the writer thread in batches of about this many bytes, so
/// the per-batch cost (channel, wake-up) stays negligible. Frames are not copied.
const WRITE_BATCH: usize = 1024 * 1024;
/// Batches in flight between the network task and the writer thread (bounds memory).
const WRITE_QUEUE: usize = 4;
/// While a large upload streams in, its bytes are flushed to disk in the background every
/// this many bytes, so the fdatasync at commit has little left to write.
const FLUSH_EVERY: u64 = 32 * 1024 * 1024;

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
        std::fs::create_dir_all(root.join("blobs/v1"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(FsBlobStore {
            root: root.to_owned(),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs/v1")
            .join(d.algorithm().name())
            .join(&d.hex()[..2])
            .join(d.hex())
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

/// Flushes a file's dirty pages on a helper thread while its writer keeps writing.
/// Started only once an upload grows past [`FLUSH_EVERY`].
struct BackgroundFlush {
    requests: SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl BackgroundFlush {
    fn start(file: &File) -> io::Result<BackgroundFlush> {
        let file = file.try_clone()?;
        let (requests, rx) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("berth-flush".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Errors surface at the commit's own fdatasync.
                    let _ = file.sync_data();
                }
            })?;
        Ok(BackgroundFlush { requests, thread })
    }

    /// Ask for a flush unless one is already running.
    fn request(&self) -> bool {
        self.requests.try_send(()).is_ok()
    }

    fn finish(self) {
        drop(self.requests);
        let _ = self.thread.join();
    }
}

/// Append batches to the staging file, hashing as they go. Runs on a blocking thread.
fn write_batches(
    path: &Path,
    mut rx: tokio::sync::mpsc::Receiver<Vec<Bytes>>,
    hasher: &mut Option<Sha256>,
) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(path)?;
    let mut flush: Option<BackgroundFlush> = None;
    let mut unflushed = 0u64;
    let result = (|| {
        while let Some(batch) = rx.blocking_recv() {
            for chunk in &batch {
                f.write_all(chunk)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(chunk);
                }
                unflushed += chunk.len() as u64;
            }
            if unflushed >= FLUSH_EVERY {
                if flush.is_none() {
                    flush = Some(BackgroundFlush::start(&f)?);
                }
                if flush.as_ref().is_some_and(BackgroundFlush::request) {
                    unflushed = 0;
                }
            }
        }
        Ok(())
    })();
    if let Some(flush) = flush {
        flush.finish();
    }
    result
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn create_upload(&self, key: UploadKey) -> Result<()> {
        let path = self.upload_path(key);
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            OpenOptions::new().write(true).create_new(true).open(path)
        })
        .await
        .map_err(join_err)??;
        let staged = Staged {
            size: 0,
            hasher: Some(Sha256::new()),
        };
        self.sessions()?
            .insert(key, Arc::new(tokio::sync::Mutex::new(staged)));
        Ok(())
    }

    async fn append_upload(
        &self,
        key: UploadKey,
        offset: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let session = self.session(key)?;
        let mut staged = session.lock().await;
        if offset.is_some_and(|o| o != staged.size) {
            return Err(Error::OffsetMismatch { size: staged.size });
        }
        // Hashing and writing happen on a blocking thread while this task keeps reading
        // the socket: the two overlap, and memory stays bounded by the queue.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(WRITE_QUEUE);
        let path = self.upload_path(key);
        let mut hasher = staged.hasher.take();
        let writer = tokio::task::spawn_blocking(move || {
            let result = write_batches(&path, rx, &mut hasher);
            // The file length is the truth about what is staged, whatever happened.
            let size = std::fs::metadata(&path).map(|m| m.len());
            (result, hasher, size)
        });
        let mut interrupted = None;
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
        drop(tx);
        let (result, hasher, size) = writer.await.map_err(join_err)?;
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

    async fn upload_size(&self, key: UploadKey) -> Result<u64> {
        // The staging file's length, read without the session lock, so a status request
        // answers while a PATCH is still streaming into the session.
        Ok(tokio::fs::metadata(self.upload_path(key)).await?.len())
    }

    async fn commit_upload(&self, key: UploadKey, digest: &Digest) -> Result<u64> {
        let session = self.session(key)?;
        let mut staged = session.lock().await;
        let hasher = staged.hasher.take();
        let staging = self.upload_path(key);
        let target = self.blob_path(digest);
        let digest = digest.clone();
        let outcome = tokio::task::spawn_blocking(move || -> Result<u64> {
            let actual = match (digest.algorithm(), hasher) {
                (Algorithm::Sha256, Some(h)) => hex::encode(h.finalize()),
                (alg, _) => hash_file(&staging, alg)?,
            };
            if actual != digest.hex() {
                let _ = std::fs::remove_file(&staging);
                return Err(Error::DigestMismatch);
            }
            let file = File::open(&staging)?;
            let size = file.metadata()?.len();
            if target.exists() {
                // Same digest, same bytes: already published.
                drop(file);
                std::fs::remove_file(&staging)?;
                return Ok(size);
            }
            file.sync_data()?;
            drop(file);
            let dir = target
                .parent()
                .ok_or_else(|| Error::Backend("blob path has no parent".into()))?;
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&staging, &target)?;
            sync_dir(dir)?;
            Ok(size)
        })
        .await
        .map_err(join_err)?;
        drop(staged);
        if !matches!(outcome, Err(Error::Backend(_))) {
            self.forget(key);
        }
        outcome
    }

    async fn abort_upload(&self, key: UploadKey) -> Result<()> {
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
        let removed = match tokio::fs::remove_file(self.upload_path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        };
        self.forget(key);
        removed
    }

    async fn stat(&self, digest: &Digest) -> Result<u64> {
        Ok(tokio::fs::metadata(self.blob_path(digest)).await?.len())
    }

    async fn read(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobReader> {
        let mut file = tokio::fs::File::open(self.blob_path(digest)).await?;
        let size = file.metadata().await?.len();
        let (start, len) = match range {
            Some((start, end)) if start <= end && end < size => (start, end - start + 1),
            Some(_) => return Err(Error::Backend("range outside blob".into())),
            None => (0, size),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        let stream = ReaderStream::with_capacity(file.take(len), READ_CHUNK);
        Ok(BlobReader {
            stream: Box::pin(stream),
        })
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(stream::iter(items))
    }

    async fn collect(r: BlobReader) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = r.stream;
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.expect("chunk"));
        }
        out
    }

    #[tokio::test]
    async fn stage_commit_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        let id = UploadKey {
            owner: 7,
            id: crate::blobs::UploadId::new(),
        };
        store.create_upload(id).await.expect("create");
        assert_eq!(
            store
                .append_upload(id, Some(0), body(&[b"hello ", b"wor"]))
                .await
                .expect("a"),
            9
        );
        assert!(matches!(
            store.append_upload(id, Some(3), body(&[b"x"])).await,
            Err(Error::OffsetMismatch { size: 9 })
        ));
        assert_eq!(
            store
                .append_upload(id, None, body(&[b"ld"]))
                .await
                .expect("b"),
            11
        );
        let d = Digest::sha256_of(b"hello world");
        assert!(matches!(store.stat(&d).await, Err(Error::NotFound)));
        assert_eq!(store.commit_upload(id, &d).await.expect("commit"), 11);
        assert_eq!(store.stat(&d).await.expect("stat"), 11);
        assert_eq!(
            collect(store.read(&d, None).await.expect("read")).await,
            b"hello world"
        );
        assert_eq!(
            collect(store.read(&d, Some((6, 10))).await.expect("range")).await,
            b"world"
        );
        assert!(matches!(store.upload_size(id).await, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn mismatch_publishes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        let id = UploadKey {
            owner: 7,
            id: crate::blobs::UploadId::new(),
        };
        store.create_upload(id).await.expect("create");
        store
            .append_upload(id, None, body(&[b"abc"]))
            .await
            .expect("append");
        let wrong = Digest::sha256_of(b"abd");
        assert!(matches!(
            store.commit_upload(id, &wrong).await,
            Err(Error::DigestMismatch)
        ));
        assert!(matches!(store.stat(&wrong).await, Err(Error::NotFound)));
        assert!(matches!(store.upload_size(id).await, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn sha512_and_restart_rehash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = UploadKey {
            owner: 7,
            id: crate::blobs::UploadId::new(),
        };
        {
            let store = FsBlobStore::open(dir.path()).expect("open");
            store.create_upload(id).await.expect("create");
            store
                .append_upload(id, None, body(&[b"abc"]))
                .await
                .expect("append");
        }
        // A new process knows only the staging file.
        let store = FsBlobStore::open(dir.path()).expect("reopen");
        assert_eq!(store.upload_size(id).await.expect("size"), 3);
        store
            .append_upload(id, Some(3), body(&[b"def"]))
            .await
            .expect("append");
        let d = Algorithm::Sha512.digest(b"abcdef");
        assert_eq!(store.commit_upload(id, &d).await.expect("commit"), 6);
        assert_eq!(store.stat(&d).await.expect("stat"), 6);
    }
}

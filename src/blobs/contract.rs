//! The blob-store contract (mod.rs's doc comment) as tests that any store runs: each
//! backend's test module calls these with a fresh store, and `tests` below runs them on
//! the store under test: S3 when `BERTH_TEST_S3` names a bucket (the test command starts
//! SeaweedFS for it), else the local directory. The upload state is carried from call
//! to call as the service carries it in the metadata store.

use futures_util::{stream, StreamExt};

use super::{
    BlobLocation, BlobReader, BlobStore, ByteStream, Error, Published, Result, UploadId, UploadKey,
    UploadState,
};
use crate::oci::{Algorithm, Digest};
use bytes::Bytes;

fn body(parts: &[&[u8]]) -> ByteStream {
    let items: Vec<std::io::Result<Bytes>> = parts
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
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

fn new_key(owner: i64) -> UploadKey {
    UploadKey {
        owner,
        id: UploadId::new(),
    }
}

/// A deterministic byte pattern of `n` bytes.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// An upload session as the service drives it: the state is saved after each append.
struct Session<'a> {
    store: &'a dyn BlobStore,
    key: UploadKey,
    state: UploadState,
}

impl<'a> Session<'a> {
    async fn start(store: &'a dyn BlobStore) -> Session<'a> {
        let key = new_key(7);
        let state = store.create_upload(key).await.expect("create");
        Session { store, key, state }
    }

    /// The same session seen through another instance (another process or node).
    fn through<'b>(&self, store: &'b dyn BlobStore) -> Session<'b> {
        Session {
            store,
            key: self.key,
            state: self.state.clone(),
        }
    }

    async fn append(&mut self, offset: Option<u64>, data: &[&[u8]]) -> Result<u64> {
        let staged = self
            .store
            .append_upload(self.key, &self.state, offset, body(data))
            .await?;
        for old in self.store.superseded(&self.state, &staged.state) {
            self.store.delete(&old).await?;
        }
        self.state = staged.state;
        Ok(staged.size)
    }

    async fn size(&self) -> Result<u64> {
        self.store.upload_size(self.key, &self.state).await
    }

    async fn finish(
        &self,
        digest: &Digest,
        offset: Option<u64>,
        last: Option<ByteStream>,
    ) -> Result<Published> {
        self.store
            .finish_upload(self.key, &self.state, digest, offset, last)
            .await
    }

    async fn abort(&self) -> Result<()> {
        self.store.abort_upload(self.key, &self.state).await
    }
}

async fn read_all(store: &dyn BlobStore, at: &BlobLocation, range: Option<(u64, u64)>) -> Vec<u8> {
    collect(store.read(at, range).await.expect("read")).await
}

/// Chunks appended in turn (with and without offsets), a wrong offset refused, the
/// digest published only at the end, whole and ranged reads.
pub async fn stage_commit_read(store: &dyn BlobStore) {
    let mut s = Session::start(store).await;
    assert_eq!(s.append(Some(0), &[b"hello ", b"wor"]).await.expect("a"), 9);
    assert!(matches!(
        s.append(Some(3), &[b"x"]).await,
        Err(Error::OffsetMismatch { size: 9 })
    ));
    assert_eq!(s.size().await.expect("size"), 9);
    assert_eq!(s.append(None, &[b"ld"]).await.expect("b"), 11);
    let d = Digest::sha256_of(b"hello world");
    let published = s.finish(&d, None, None).await.expect("commit");
    assert_eq!(published.size, 11);
    let at = &published.location;
    assert_eq!(store.stat(at).await.expect("stat"), 11);
    assert_eq!(read_all(store, at, None).await, b"hello world");
    assert_eq!(read_all(store, at, Some((6, 10))).await, b"world");
}

/// A digest that does not match publishes nothing; an abort afterwards is harmless.
pub async fn mismatch_publishes_nothing(store: &dyn BlobStore) {
    let mut s = Session::start(store).await;
    s.append(None, &[b"abc"]).await.expect("append");
    let wrong = Digest::sha256_of(b"abd");
    assert!(matches!(
        s.finish(&wrong, None, None).await,
        Err(Error::DigestMismatch)
    ));
    s.abort().await.expect("abort");
    // Same for a digest checked after the bytes are written (SHA-512).
    let mut s = Session::start(store).await;
    s.append(None, &[b"abc"]).await.expect("append");
    let wrong = Algorithm::Sha512.digest(b"abd");
    assert!(matches!(
        s.finish(&wrong, None, None).await,
        Err(Error::DigestMismatch)
    ));
}

/// An upload started through one instance continues through another (a restarted
/// process, another node), with a sha512 digest.
pub async fn resumes_in_another_instance(first: &dyn BlobStore, second: &dyn BlobStore) {
    let mut s = Session::start(first).await;
    s.append(None, &[b"abc"]).await.expect("append");
    let mut other = s.through(second);
    assert_eq!(other.size().await.expect("size"), 3);
    other.append(Some(3), &[b"def"]).await.expect("append");
    let d = Algorithm::Sha512.digest(b"abcdef");
    let published = other.finish(&d, None, None).await.expect("commit");
    assert_eq!(published.size, 6);
    assert_eq!(first.stat(&published.location).await.expect("stat"), 6);
}

/// Two requests acting on one session from the same saved state (two nodes, a client's
/// race), the second before the first's state is saved: whatever the second one
/// stages or publishes never replaces the bytes the first one staged or published.
/// The same bytes again, or other chunks from the saved offset (a client resuming
/// after a crash between a write and its save), continue the session.
pub async fn racing_requests_keep_the_first(first: &dyn BlobStore, second: &dyn BlobStore) {
    let s = Session::start(first).await;
    let racer = s.through(second);
    let won = first
        .append_upload(s.key, &s.state, Some(0), body(&[b"def"]))
        .await
        .expect("first append");
    // Its state is never saved (the first one's is), or it fails.
    let raced = second
        .append_upload(racer.key, &racer.state, Some(0), body(&[b"xyz"]))
        .await;
    assert!(raced.is_ok() || lost(&raced), "{:?}", raced.map(|s| s.size));
    let retried = second
        .append_upload(racer.key, &racer.state, Some(0), body(&[b"de", b"f"]))
        .await;
    assert!(
        matches!(&retried, Ok(r) if r.size == 3)
            || matches!(retried, Err(Error::OffsetMismatch { size: 3 })),
        "{:?}",
        retried.map(|r| r.size)
    );
    for old in first.superseded(&s.state, &won.state) {
        first.delete(&old).await.expect("delete");
    }
    let d = Digest::sha256_of(b"def");
    let published = first
        .finish_upload(s.key, &won.state, &d, None, None)
        .await
        .expect("finish");
    assert_eq!(read_all(first, &published.location, None).await, b"def");

    let s = Session::start(first).await;
    first
        .append_upload(s.key, &s.state, Some(0), body(&[b"abc"]))
        .await
        .expect("append whose state is lost");
    let mut resumed = s.through(second);
    match resumed.append(Some(0), &[b"abcd"]).await {
        Ok(4) => {}
        Err(Error::OffsetMismatch { size: 3 }) => {
            assert_eq!(resumed.append(Some(3), &[b"d"]).await.expect("resume"), 4);
        }
        other => panic!("resuming: {other:?}"),
    }
    assert_eq!(resumed.append(Some(4), &[b"ef"]).await.expect("more"), 6);
    let d = Digest::sha256_of(b"abcdef");
    let published = resumed.finish(&d, None, None).await.expect("finish");
    assert_eq!(read_all(first, &published.location, None).await, b"abcdef");

    let s = Session::start(first).await;
    let racer = s.through(second);
    let won = s
        .finish(&Digest::sha256_of(b"ghi"), Some(0), Some(body(&[b"ghi"])))
        .await
        .expect("first finish");
    let raced = racer
        .finish(&Digest::sha256_of(b"jkl"), Some(0), Some(body(&[b"jkl"])))
        .await;
    if let Ok(p) = &raced {
        assert_ne!(p.location, won.location);
    }
    assert_eq!(read_all(first, &won.location, None).await, b"ghi");
}

/// How a request that lost a race on a session may fail.
fn lost<T>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::OffsetMismatch { .. } | Error::NotFound))
}

/// Uploads in chunks of 1 B, 1 MiB and 5 MiB − 1 (object stores refuse parts under
/// 5 MiB but the last), each finished with a last chunk, which at a wrong offset changes
/// nothing. Every other append goes through the second instance.
pub async fn chunk_sizes_and_last_chunks(first: &dyn BlobStore, second: &dyn BlobStore) {
    for chunk in [1usize, 1 << 20, (5 << 20) - 1] {
        // The last chunk is larger than a write batch, and than a 1 MiB chunk.
        let data = pattern(2 * chunk + chunk / 2 + 3 * (1 << 20) + 7);
        let mut s = Session::start(first).await;
        let mut offset = 0;
        for (i, piece) in data[..2 * chunk].chunks(chunk).enumerate() {
            let mut via = s.through(if i.is_multiple_of(2) { first } else { second });
            offset = via.append(Some(offset), &[piece]).await.expect("append");
            s.state = via.state;
        }
        assert_eq!(offset, 2 * chunk as u64);
        let d = Digest::sha256_of(&data);
        let wrong = s.finish(&d, Some(0), Some(body(&[b"x"]))).await;
        assert!(matches!(wrong, Err(Error::OffsetMismatch { size }) if size == offset));
        // The last chunk arrives as a stream of 64 KiB pieces, as from a socket.
        let pieces: Vec<&[u8]> = data[2 * chunk..].chunks(64 * 1024).collect();
        let published = s.finish(&d, Some(offset), Some(body(&pieces))).await;
        let published = published.expect("finish");
        assert_eq!(published.size, data.len() as u64);
        let at = &published.location;
        assert_eq!(read_all(second, at, None).await, data);
        let end = data.len() as u64 - 1;
        assert_eq!(read_all(first, at, Some((5, end))).await, &data[5..]);
    }
}

/// A few bytes appended, the rest given with the finish; and a blob given whole.
pub async fn small_upload_finished_by_its_last_chunk(store: &dyn BlobStore) {
    let data = pattern(10);
    let mut s = Session::start(store).await;
    assert_eq!(s.append(Some(0), &[&data[..3]]).await.expect("append"), 3);
    let d = Digest::sha256_of(&data);
    let published = s.finish(&d, Some(3), Some(body(&[&data[3..]]))).await;
    let published = published.expect("finish");
    assert_eq!(published.size, 10);
    assert_eq!(read_all(store, &published.location, None).await, data);
    let s = Session::start(store).await;
    let published = s.finish(&d, Some(0), Some(body(&[&data]))).await;
    assert_eq!(published.expect("whole").size, 10);
    let empty = Digest::sha256_of(b"");
    let s = Session::start(store).await;
    let published = s.finish(&empty, None, None).await.expect("empty");
    assert_eq!(read_all(store, &published.location, None).await, b"");
}

/// The same bytes uploaded twice are two copies at two locations: removing one (as
/// the collector or a lost race does) leaves the other whole.
pub async fn each_upload_publishes_its_own_copy(store: &dyn BlobStore) {
    let data = pattern(1000);
    let d = Digest::sha256_of(&data);
    let mut locations = Vec::new();
    for _ in 0..2 {
        let mut s = Session::start(store).await;
        s.append(None, &[&data]).await.expect("append");
        locations.push(s.finish(&d, None, None).await.expect("finish").location);
    }
    assert_ne!(locations[0], locations[1]);
    store.delete(&locations[0]).await.expect("delete");
    assert!(matches!(
        store.stat(&locations[0]).await,
        Err(Error::NotFound)
    ));
    assert_eq!(read_all(store, &locations[1], None).await, data);
}

/// An abort after a finish whose result was never recorded (a crash in between)
/// removes what the finish published.
pub async fn abort_removes_an_unrecorded_publication(store: &dyn BlobStore) {
    for n in [10usize, (8 << 20) + 10] {
        let data = pattern(n);
        let mut s = Session::start(store).await;
        s.append(None, &[&data]).await.expect("append");
        let d = Digest::sha256_of(&data);
        let published = s.finish(&d, None, None).await.expect("finish");
        s.abort().await.expect("abort");
        assert!(matches!(
            store.stat(&published.location).await,
            Err(Error::NotFound)
        ));
    }
}

/// A store that can presign answers the URL with the blob, ranges included.
pub async fn download_urls_serve_the_blob(store: &dyn BlobStore) {
    let data = pattern(5000);
    let mut s = Session::start(store).await;
    s.append(None, &[&data]).await.expect("append");
    let d = Digest::sha256_of(&data);
    let at = s.finish(&d, None, None).await.expect("finish").location;
    let Some(url) = store
        .download_url(&at, std::time::Duration::from_secs(60))
        .await
        .expect("url")
    else {
        return; // the local directory has no URLs of its own; the server signs its own
    };
    let client = reqwest::Client::new();
    let whole = client.get(&url).send().await.expect("get");
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.expect("bytes").as_ref(), &data[..]);
    let part = client
        .get(&url)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .expect("ranged get");
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.expect("bytes").as_ref(), &data[10..20]);
    let tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let refused = client.get(&tampered).send().await.expect("tampered get");
    assert_eq!(refused.status(), 403);
}

/// Missing blobs are NotFound; delete and abort are idempotent.
pub async fn missing_things_and_idempotent_removal(store: &dyn BlobStore) {
    let d = Digest::sha256_of(b"never stored");
    let nowhere = store.digest_location(&d);
    assert!(matches!(
        store.read(&nowhere, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(store.stat(&nowhere).await, Err(Error::NotFound)));
    store.delete(&nowhere).await.expect("delete of nothing");
    let mut s = Session::start(store).await;
    s.append(None, &[b"abc"]).await.expect("append");
    s.abort().await.expect("abort");
    s.abort().await.expect("abort again");
}

/// The contract on the store under test (see the module comment).
#[cfg(test)]
mod tests {
    use super::*;

    /// Two instances over one fresh storage area, and what keeps it alive.
    async fn stores() -> (
        Box<dyn std::any::Any>,
        Box<dyn BlobStore>,
        Box<dyn BlobStore>,
    ) {
        match std::env::var("BERTH_TEST_S3") {
            Ok(url) if !url.is_empty() => {
                let creds = || crate::blobs::s3::S3Credentials::from_env(|k| std::env::var(k).ok());
                let mut settings = crate::blobs::s3::S3Settings::parse(&url, creds)
                    .expect("BERTH_TEST_S3 names a bucket, with its keys in the environment");
                // A prefix of its own per test: the tests run in parallel.
                settings.prefix = format!("{}/{}", settings.prefix, uuid::Uuid::new_v4().simple())
                    .trim_start_matches('/')
                    .to_owned();
                let open = || crate::blobs::s3::S3BlobStore::open(&settings).expect("open");
                (Box::new(()), Box::new(open()), Box::new(open()))
            }
            _ => {
                let dir = tempfile::tempdir().expect("tempdir");
                let open = || crate::blobs::fs::FsBlobStore::open(dir.path()).expect("open");
                let (a, b) = (open(), open());
                (Box::new(dir), Box::new(a), Box::new(b))
            }
        }
    }

    #[tokio::test]
    async fn racing_requests_keep_the_first() {
        let (_keep, a, b) = stores().await;
        super::racing_requests_keep_the_first(a.as_ref(), b.as_ref()).await;
    }

    #[tokio::test]
    async fn stage_commit_read() {
        let (_keep, s, _) = stores().await;
        super::stage_commit_read(s.as_ref()).await;
    }

    #[tokio::test]
    async fn mismatch_publishes_nothing() {
        let (_keep, s, _) = stores().await;
        super::mismatch_publishes_nothing(s.as_ref()).await;
    }

    #[tokio::test]
    async fn resumes_in_another_instance() {
        let (_keep, a, b) = stores().await;
        super::resumes_in_another_instance(a.as_ref(), b.as_ref()).await;
    }

    #[tokio::test]
    async fn chunk_sizes_and_last_chunks() {
        let (_keep, a, b) = stores().await;
        super::chunk_sizes_and_last_chunks(a.as_ref(), b.as_ref()).await;
    }

    #[tokio::test]
    async fn small_upload_finished_by_its_last_chunk() {
        let (_keep, s, _) = stores().await;
        super::small_upload_finished_by_its_last_chunk(s.as_ref()).await;
    }

    #[tokio::test]
    async fn each_upload_publishes_its_own_copy() {
        let (_keep, s, _) = stores().await;
        super::each_upload_publishes_its_own_copy(s.as_ref()).await;
    }

    #[tokio::test]
    async fn abort_removes_an_unrecorded_publication() {
        let (_keep, s, _) = stores().await;
        super::abort_removes_an_unrecorded_publication(s.as_ref()).await;
    }

    #[tokio::test]
    async fn download_urls_serve_the_blob() {
        let (_keep, s, _) = stores().await;
        super::download_urls_serve_the_blob(s.as_ref()).await;
    }

    #[tokio::test]
    async fn missing_things_and_idempotent_removal() {
        let (_keep, s, _) = stores().await;
        super::missing_things_and_idempotent_removal(s.as_ref()).await;
    }
}

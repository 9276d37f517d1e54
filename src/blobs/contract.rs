//! The blob-store contract (mod.rs's doc comment) as tests that any store runs: each
//! backend's test module calls these with a fresh store. `open` builds another instance
//! over the same storage, as another process or node would.

use futures_util::{stream, StreamExt};

use super::{BlobReader, BlobStore, ByteStream, Error, UploadId, UploadKey};
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

/// Chunks appended in turn (with and without offsets), a wrong offset refused, the
/// digest published only at the end, whole and ranged reads, the session gone after.
pub async fn stage_commit_read(store: &dyn BlobStore) {
    let id = new_key(7);
    store.create_upload(id).await.expect("create");
    let staged = store.append_upload(id, Some(0), body(&[b"hello ", b"wor"]));
    assert_eq!(staged.await.expect("a"), 9);
    assert!(matches!(
        store.append_upload(id, Some(3), body(&[b"x"])).await,
        Err(Error::OffsetMismatch { size: 9 })
    ));
    let staged = store.append_upload(id, None, body(&[b"ld"]));
    assert_eq!(staged.await.expect("b"), 11);
    let d = Digest::sha256_of(b"hello world");
    assert!(matches!(store.stat(&d).await, Err(Error::NotFound)));
    let size = store.finish_upload(id, &d, None, None).await;
    assert_eq!(size.expect("commit"), 11);
    assert_eq!(store.stat(&d).await.expect("stat"), 11);
    let whole = store.read(&d, None).await.expect("read");
    assert_eq!(collect(whole).await, b"hello world");
    let range = store.read(&d, Some((6, 10))).await.expect("range");
    assert_eq!(collect(range).await, b"world");
    assert!(matches!(store.upload_size(id).await, Err(Error::NotFound)));
}

/// A digest that does not match publishes nothing and ends the session.
pub async fn mismatch_publishes_nothing(store: &dyn BlobStore) {
    let id = new_key(7);
    store.create_upload(id).await.expect("create");
    store
        .append_upload(id, None, body(&[b"abc"]))
        .await
        .expect("append");
    let wrong = Digest::sha256_of(b"abd");
    assert!(matches!(
        store.finish_upload(id, &wrong, None, None).await,
        Err(Error::DigestMismatch)
    ));
    assert!(matches!(store.stat(&wrong).await, Err(Error::NotFound)));
    assert!(matches!(store.upload_size(id).await, Err(Error::NotFound)));
}

/// An upload started through one instance continues through another (a restarted
/// process, another node), with a sha512 digest.
pub async fn resumes_in_another_instance(first: &dyn BlobStore, second: &dyn BlobStore) {
    let id = new_key(7);
    first.create_upload(id).await.expect("create");
    first
        .append_upload(id, None, body(&[b"abc"]))
        .await
        .expect("append");
    assert_eq!(second.upload_size(id).await.expect("size"), 3);
    second
        .append_upload(id, Some(3), body(&[b"def"]))
        .await
        .expect("append");
    let d = Algorithm::Sha512.digest(b"abcdef");
    let size = second.finish_upload(id, &d, None, None).await;
    assert_eq!(size.expect("commit"), 6);
    assert_eq!(first.stat(&d).await.expect("stat"), 6);
}

/// Uploads in chunks of 1 B, 1 MiB and 5 MiB − 1 (object stores refuse parts under
/// 5 MiB but the last), each finished with a last chunk, which at a wrong offset changes
/// nothing.
pub async fn chunk_sizes_and_last_chunks(store: &dyn BlobStore) {
    for chunk in [1usize, 1 << 20, (5 << 20) - 1] {
        // The last chunk is larger than a write batch, and than a 1 MiB chunk.
        let data = pattern(2 * chunk + chunk / 2 + 3 * (1 << 20) + 7);
        let id = new_key(1);
        store.create_upload(id).await.expect("create");
        let mut offset = 0;
        for piece in data[..2 * chunk].chunks(chunk) {
            let staged = store.append_upload(id, Some(offset), body(&[piece]));
            offset = staged.await.expect("append");
        }
        assert_eq!(offset, 2 * chunk as u64);
        let d = Digest::sha256_of(&data);
        let wrong = store.finish_upload(id, &d, Some(0), Some(body(&[b"x"])));
        assert!(matches!(
            wrong.await,
            Err(Error::OffsetMismatch { size }) if size == offset
        ));
        // The last chunk arrives as a stream of 64 KiB pieces, as from a socket.
        let pieces: Vec<&[u8]> = data[2 * chunk..].chunks(64 * 1024).collect();
        let last = body(&pieces);
        let n = store.finish_upload(id, &d, Some(offset), Some(last)).await;
        assert_eq!(n.expect("finish"), data.len() as u64);
        let whole = store.read(&d, None).await.expect("read");
        assert_eq!(collect(whole).await, data);
        let end = data.len() as u64 - 1;
        let tail = store.read(&d, Some((5, end))).await.expect("range");
        assert_eq!(collect(tail).await, &data[5..]);
    }
}

/// A few bytes appended, the rest given with the finish.
pub async fn small_upload_finished_by_its_last_chunk(store: &dyn BlobStore) {
    let data = pattern(10);
    let id = new_key(1);
    store.create_upload(id).await.expect("create");
    let staged = store.append_upload(id, Some(0), body(&[&data[..3]]));
    assert_eq!(staged.await.expect("append"), 3);
    let d = Digest::sha256_of(&data);
    let n = store.finish_upload(id, &d, Some(3), Some(body(&[&data[3..]])));
    assert_eq!(n.await.expect("finish"), 10);
    let whole = store.read(&d, None).await.expect("read");
    assert_eq!(collect(whole).await, data);
}

/// Unknown uploads and blobs are NotFound; delete and abort are idempotent.
pub async fn missing_things_and_idempotent_removal(store: &dyn BlobStore) {
    let unknown = new_key(3);
    assert!(matches!(
        store.upload_size(unknown).await,
        Err(Error::NotFound)
    ));
    let d = Digest::sha256_of(b"never stored");
    assert!(matches!(store.read(&d, None).await, Err(Error::NotFound)));
    store.delete(&d).await.expect("delete of nothing");
    let id = new_key(3);
    store.create_upload(id).await.expect("create");
    store.abort_upload(id).await.expect("abort");
    store.abort_upload(id).await.expect("abort again");
    assert!(matches!(store.upload_size(id).await, Err(Error::NotFound)));
}

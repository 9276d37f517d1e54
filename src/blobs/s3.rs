//! S3-compatible blob store, through `object_store`'s S3 client.
//!
//! Every object this store writes is `<prefix>/blobs/<uuid>`, a name used once: a staged
//! tail, the target of a multipart upload, and so every published blob (its location).
//!
//! An upload session is an [`Upload`], kept (as JSON) in the metadata store between
//! requests, so any node can continue it: the bytes staged, the running SHA-256 state,
//! the multipart upload and its parts, and the *tail* — the staged bytes that do not yet
//! fill a part. S3 refuses parts under 5 MiB except the last, and an OCI PATCH may be a
//! single byte, so the tail is an object of its own, rewritten (under a new name) by each
//! append until a part is full. The names the next tail and the multipart target will
//! take are chosen before they are written and kept in the state, so that aborting a
//! session (the collector does it for abandoned ones) finds everything it wrote, even
//! after a crash between the write and the save.
//!
//! A blob smaller than a part is never copied: its tail object becomes the blob.
//!
//! Two requests acting on one session from the same state (a client's race, a retry
//! after a crash between a write and its save) pick the same pre-chosen name, and only
//! one of them will have its state saved or its blob recorded (both name the version
//! they read). So a tail is written only if its name is free (`If-None-Match: *`); if
//! it is taken by other bytes, this request writes under the name plus its bytes' hash,
//! a name only these bytes can have, and lists the taken name as a *stray* in its state:
//! whichever request wins, no object another state names is ever replaced, and the
//! winner names every object its session may have left. What a saved state or a
//! recorded blob no longer needs (an old tail, strays) is recorded as garbage in the
//! same transaction ([`BlobStore::superseded`], [`Published::superseded`]), so a crash
//! before its deletion leaves it to the collector. Parts need no guard: their ETags are
//! checked when the multipart upload completes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::Method;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};

use super::sha256_state::Sha256State;
use super::{
    BlobLocation, BlobReader, BlobStore, ByteStream, Error, Published, Result, Staged, UploadKey,
    UploadState,
};
use crate::oci::{Algorithm, Digest};

/// Bytes per multipart part (S3: at least 5 MiB but the last; at most 10,000 parts).
const PART: usize = 8 * 1024 * 1024;
/// Parts of one upload being sent at once (memory per upload: this many parts, plus one
/// filling).
const PARTS_IN_FLIGHT: usize = 2;

/// Where the bucket is and how to reach it, from `--blobs s3://BUCKET/PREFIX?...`.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// The S3 endpoint Berth talks to, e.g. `http://127.0.0.1:8333` (AWS when absent).
    pub endpoint: Option<String>,
    pub region: String,
    /// The endpoint presigned URLs name, when clients reach S3 at another address.
    pub public_endpoint: Option<String>,
    pub credentials: S3Credentials,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("public_endpoint", &self.public_endpoint)
            .finish_non_exhaustive()
    }
}

/// Keys for the bucket (never Berth's own; see [`S3Credentials::from_env`]).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl S3Credentials {
    /// `BERTH_S3_ACCESS_KEY_ID` / `BERTH_S3_SECRET_ACCESS_KEY` / `BERTH_S3_SESSION_TOKEN`,
    /// or, when those are absent, the `AWS_` variables of the same names. The shared
    /// credentials file is never read: it holds Berth's own keys, not the bucket's.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> std::result::Result<Self, String> {
        let pick = |berth: &str, aws: &str| var(berth).or_else(|| var(aws));
        let (Some(access_key_id), Some(secret_access_key)) = (
            pick("BERTH_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            pick("BERTH_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ) else {
            return Err("S3 blob storage needs credentials: set BERTH_S3_ACCESS_KEY_ID and \
                        BERTH_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                .into());
        };
        Ok(S3Credentials {
            access_key_id,
            secret_access_key,
            session_token: pick("BERTH_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
        })
    }
}

impl S3Settings {
    /// Parse `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&public_endpoint=URL]`; the
    /// credentials are asked for once the URL is known to be good.
    pub fn parse(
        url: &str,
        credentials: impl FnOnce() -> std::result::Result<S3Credentials, String>,
    ) -> std::result::Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url}: a blob store URL starts with s3://"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!("{url}: {bucket:?} is not a bucket name"));
        }
        let (mut endpoint, mut public_endpoint, mut region) = (None, None, None);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| format!("{url}: the query is not valid: {e}"))?;
        for (k, v) in pairs {
            match k.as_str() {
                "endpoint" => endpoint = Some(check_endpoint(url, v)?),
                "public_endpoint" => public_endpoint = Some(check_endpoint(url, v)?),
                "region" if !v.is_empty() => region = Some(v),
                other => return Err(format!("{url}: unknown setting {other:?}")),
            }
        }
        Ok(S3Settings {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint,
            region: region.unwrap_or_else(|| "us-east-1".into()),
            public_endpoint,
            credentials: credentials()?,
        })
    }
}

fn check_endpoint(url: &str, v: String) -> std::result::Result<String, String> {
    if v.starts_with("http://") || v.starts_with("https://") {
        Ok(v.trim_end_matches('/').to_owned())
    } else {
        Err(format!(
            "{url}: endpoint {v:?} must start with http:// or https://"
        ))
    }
}

pub struct S3BlobStore {
    /// For everything but reading blobs: each request has a deadline.
    client: Arc<AmazonS3>,
    /// For reading blobs: a download lasts as long as the client reads (a stall is
    /// caught by [`READ_STALL`] instead).
    reader: AmazonS3,
    /// Makes presigned URLs that name the endpoint clients reach.
    signer: AmazonS3,
    prefix: String,
}

/// Deadline of a request other than a blob download (a part is 8 MiB).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a download may wait for its next bytes from object storage.
const READ_STALL: Duration = Duration::from_secs(60);

fn client(
    settings: &S3Settings,
    endpoint: Option<&str>,
    timeout: Option<Duration>,
) -> Result<AmazonS3> {
    let c = &settings.credentials;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_access_key_id(&c.access_key_id)
        .with_secret_access_key(&c.secret_access_key)
        // Few, quick retries: a client waiting on a dead engine should hear of it soon.
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        })
        .with_client_options({
            let options = ClientOptions::new().with_connect_timeout(Duration::from_secs(5));
            match timeout {
                Some(t) => options.with_timeout(t),
                None => options.with_timeout_disabled(),
            }
        });
    builder = builder.with_unsigned_payload(!payload_needs_signing(endpoint));
    if let Some(token) = &c.session_token {
        builder = builder.with_token(token);
    }
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    builder.build().map_err(backend)
}

/// Whether request bodies must be hashed into their signatures: only over plain HTTP
/// beyond this machine. As the AWS SDKs do, not over TLS, which protects the body; nor
/// on loopback, where nothing sits on the path. That second SHA-256 pass cost Berth
/// about 40% of its CPU per GB uploaded, and the engine as much to check it.
fn payload_needs_signing(endpoint: Option<&str>) -> bool {
    let Some(rest) = endpoint.and_then(|e| e.strip_prefix("http://")) else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// Whether `whole` is the concatenation of `chunks`.
fn same_bytes(whole: &[u8], chunks: &[Bytes]) -> bool {
    let mut rest = whole;
    for chunk in chunks {
        match rest.strip_prefix(chunk.as_ref()) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

fn backend(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound,
        other => Error::Backend(format!("object storage: {}", clipped(&other.to_string()))),
    }
}

/// An engine's error, short enough for a log line (some quote whole XML bodies).
fn clipped(message: &str) -> String {
    const MAX: usize = 400;
    match message.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// A session's state, as kept between requests (see the module comment).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Upload {
    size: u64,
    /// [`Sha256State::to_bytes`], hex.
    hash: String,
    multipart: Option<Multipart>,
    tail: Option<Tail>,
    /// Name of the next tail object.
    next_tail: String,
    /// Objects that racing or crashed requests wrote under the names this request
    /// meant to use (see the module comment); garbage once this state is saved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    strays: Vec<String>,
    /// Name the multipart upload completes to.
    target: String,
    written_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Multipart {
    id: String,
    /// Each part's ETag, in order.
    parts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tail {
    key: String,
    len: u64,
}

impl Upload {
    fn decode(state: &UploadState) -> Result<Upload> {
        serde_json::from_slice(state.as_bytes())
            .map_err(|e| Error::Backend(format!("unreadable upload state: {e}")))
    }

    fn encode(&self) -> UploadState {
        // Serializing plain fields cannot fail.
        UploadState(serde_json::to_vec(self).unwrap_or_default())
    }

    fn hasher(&self) -> Result<Sha256State> {
        hex::decode(&self.hash)
            .ok()
            .and_then(|b| Sha256State::from_bytes(&b))
            .ok_or_else(|| Error::Backend("unreadable upload hash state".into()))
    }
}

fn fresh_key() -> String {
    format!("blobs/{}", uuid::Uuid::new_v4().hyphenated())
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

impl S3BlobStore {
    pub fn open(settings: &S3Settings) -> Result<S3BlobStore> {
        let endpoint = settings.endpoint.as_deref();
        let public = settings.public_endpoint.as_deref().or(endpoint);
        Ok(S3BlobStore {
            client: Arc::new(client(settings, endpoint, Some(REQUEST_TIMEOUT))?),
            reader: client(settings, endpoint, None)?,
            signer: client(settings, public, Some(REQUEST_TIMEOUT))?,
            prefix: settings.prefix.clone(),
        })
    }

    /// Check that the bucket answers with these credentials (at start, so a wrong
    /// setting stops the server instead of failing its first push).
    pub async fn check(&self) -> Result<()> {
        match self.client.head(&self.path("blobs/.berth-check")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The object of a location; a location this store did not make is refused.
    fn location_path(&self, location: &BlobLocation) -> Result<ObjectPath> {
        let key = location.as_str();
        let ours = key.strip_prefix("blobs/").is_some_and(|rest| {
            !rest.is_empty()
                && !rest.contains("..")
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
        });
        if !ours {
            return Err(Error::Backend(format!("not a blob location: {key}")));
        }
        Ok(self.path(key))
    }

    /// Write `bytes` as the session's next tail object and return its name: the
    /// pre-chosen one, unless other bytes took it (see the module comment).
    async fn put_tail(&self, up: &mut Upload, bytes: Vec<Bytes>) -> Result<String> {
        let key = up.next_tail.clone();
        let payload: PutPayload = bytes.iter().cloned().collect();
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .client
            .put_opts(&self.path(&key), payload, create)
            .await
        {
            Ok(_) => return Ok(key),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(backend(e)),
        }
        if same_bytes(&self.get_all(&key).await?, &bytes) {
            // A retry of a request whose state was never saved.
            return Ok(key);
        }
        let mut hash = sha2::Sha256::new();
        for chunk in &bytes {
            hash.update(chunk);
        }
        let own = format!("{key}-{}", hex::encode(&hash.finalize()[..16]));
        let payload: PutPayload = bytes.into_iter().collect();
        self.client
            .put(&self.path(&own), payload)
            .await
            .map_err(backend)?;
        if !up.strays.contains(&key) {
            up.strays.push(key);
        }
        Ok(own)
    }

    async fn get_all(&self, key: &str) -> Result<Bytes> {
        let got = self.client.get(&self.path(key)).await.map_err(backend)?;
        got.bytes().await.map_err(backend)
    }

    async fn delete_key(&self, key: &str) -> Result<()> {
        match self.client.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    /// Stream `body` into the session: full parts go to the multipart upload, the rest
    /// stays in `pending` for the caller. The hash sees every byte.
    async fn take_in(
        &self,
        up: &mut Upload,
        hash: &mut Sha256State,
        pending: &mut Pending,
        mut body: ByteStream,
    ) -> Result<()> {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::BodyInterrupted(e.to_string()))?;
            hash.update(&chunk);
            up.size += chunk.len() as u64;
            pending.push(chunk);
            if pending.reaches_part(up) {
                pending.absorb_tail(self, up).await?;
                while pending.len >= PART {
                    let part = pending.split_part();
                    pending.send_part(self, up, part).await?;
                }
            }
        }
        Ok(())
    }

    /// An append's or a finish's common start: decode, check the offset, take the body in.
    async fn stage(
        &self,
        state: &UploadState,
        offset: Option<u64>,
        body: Option<ByteStream>,
    ) -> Result<(Upload, Sha256State, Pending)> {
        let mut up = Upload::decode(state)?;
        // The saved state's strays were recorded as garbage when it was saved.
        up.strays.clear();
        let mut hash = up.hasher()?;
        let mut pending = Pending::default();
        let had_multipart = up.multipart.is_some();
        if let Some(body) = body {
            if offset.is_some_and(|o| o != up.size) {
                return Err(Error::OffsetMismatch { size: up.size });
            }
            let mut taken = self.take_in(&mut up, &mut hash, &mut pending, body).await;
            if taken.is_ok() {
                taken = pending.wait_parts(&mut up).await;
            }
            if let Err(e) = taken {
                // The saved state stays as it was; a multipart upload this call started
                // is unknown to it, so it goes now.
                if let (false, Some(m)) = (had_multipart, &up.multipart) {
                    let _ = self
                        .client
                        .abort_multipart(&self.path(&up.target), &m.id)
                        .await;
                }
                return Err(e);
            }
        }
        up.written_ms = now_ms();
        Ok((up, hash, pending))
    }

    /// Remove every object a session may have written, published or not, and its
    /// multipart upload.
    async fn discard(&self, up: &Upload) -> Result<()> {
        if let Some(m) = &up.multipart {
            match self
                .client
                .abort_multipart(&self.path(&up.target), &m.id)
                .await
            {
                // Already completed or aborted.
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        let tail = up.tail.as_ref().map(|t| &t.key);
        let named = [Some(&up.next_tail), Some(&up.target), tail];
        let keys: Vec<&String> = named.into_iter().flatten().chain(&up.strays).collect();
        for key in keys {
            self.delete_key(key).await?;
        }
        Ok(())
    }

    /// Publish what `stage` left: the whole blob as one object, or the multipart upload
    /// completed with its last part. Returns the location.
    async fn publish(&self, up: &mut Upload, mut pending: Pending) -> Result<String> {
        let Some(multipart) = up.multipart.clone() else {
            if pending.len == 0 && !pending.tail_absorbed {
                if let Some(tail) = &up.tail {
                    // Nothing new: the tail object is the blob.
                    return Ok(tail.key.clone());
                }
            }
            pending.absorb_tail(self, up).await?;
            return self.put_tail(up, pending.chunks).await;
        };
        pending.absorb_tail(self, up).await?;
        if pending.len > 0 || multipart.parts.is_empty() {
            let part = std::mem::take(&mut pending.chunks);
            pending.len = 0;
            pending.send_part(self, up, part).await?;
            pending.wait_parts(up).await?;
        }
        let parts = up
            .multipart
            .as_ref()
            .map(|m| {
                m.parts
                    .iter()
                    .map(|etag| PartId {
                        content_id: etag.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.client
            .complete_multipart(&self.path(&up.target), &multipart.id, parts)
            .await
            .map_err(backend)?;
        Ok(up.target.clone())
    }

    /// Hash a published object again (for digests other than SHA-256, which the
    /// running state does not cover).
    async fn rehash(&self, key: &str, algorithm: Algorithm) -> Result<String> {
        let got = self.reader.get(&self.path(key)).await.map_err(backend)?;
        let stream = got
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()));
        let mut stream = stall_guard(Box::pin(stream));
        let mut sha256 = Sha256State::new();
        let mut sha512 = Sha512::new();
        while let Some(chunk) = stream.try_next().await? {
            match algorithm {
                Algorithm::Sha256 => sha256.update(&chunk),
                Algorithm::Sha512 => sha512.update(&chunk),
            }
        }
        Ok(match algorithm {
            Algorithm::Sha256 => hex::encode(sha256.finalize()),
            Algorithm::Sha512 => hex::encode(sha512.finalize()),
        })
    }
}

/// End a download with an error if object storage sends nothing for [`READ_STALL`]
/// (a hung engine would otherwise hold the client's request forever).
fn stall_guard(stream: ByteStream) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some(stream),
        |state| async move {
            let mut stream = state?;
            match tokio::time::timeout(READ_STALL, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "object storage stopped sending",
                    )),
                    None,
                )),
            }
        },
    ))
}

/// Bytes of an append not yet sent as a part, and the parts being sent.
#[derive(Default)]
struct Pending {
    chunks: Vec<Bytes>,
    len: usize,
    /// The stored tail's bytes are at the front of `chunks` (its object is then
    /// superseded).
    tail_absorbed: bool,
    in_flight: std::collections::VecDeque<tokio::task::JoinHandle<Result<PartId>>>,
}

impl Pending {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        self.chunks.push(chunk);
    }

    fn reaches_part(&self, up: &Upload) -> bool {
        let tail = if self.tail_absorbed {
            0
        } else {
            up.tail.as_ref().map_or(0, |t| t.len)
        };
        tail + self.len as u64 >= PART as u64
    }

    /// Put the stored tail's bytes in front of the pending ones.
    async fn absorb_tail(&mut self, store: &S3BlobStore, up: &Upload) -> Result<()> {
        if self.tail_absorbed {
            return Ok(());
        }
        self.tail_absorbed = true;
        if let Some(tail) = &up.tail {
            let bytes = store.get_all(&tail.key).await?;
            if bytes.len() as u64 != tail.len {
                return Err(Error::Backend(format!(
                    "staged tail {} has {} bytes, not {}",
                    tail.key,
                    bytes.len(),
                    tail.len
                )));
            }
            self.len += bytes.len();
            self.chunks.insert(0, bytes);
        }
        Ok(())
    }

    /// The first `PART` pending bytes.
    fn split_part(&mut self) -> Vec<Bytes> {
        let mut part = Vec::new();
        let mut need = PART;
        while need > 0 && !self.chunks.is_empty() {
            let first = &mut self.chunks[0];
            if first.len() <= need {
                need -= first.len();
                part.push(self.chunks.remove(0));
            } else {
                part.push(first.split_to(need));
                need = 0;
            }
        }
        self.len -= PART - need;
        part
    }

    /// Start sending a part (creating the multipart upload first if needed); waits
    /// while too many are in flight.
    async fn send_part(
        &mut self,
        store: &S3BlobStore,
        up: &mut Upload,
        part: Vec<Bytes>,
    ) -> Result<()> {
        if up.multipart.is_none() {
            let id = store
                .client
                .create_multipart(&store.path(&up.target))
                .await
                .map_err(backend)?;
            up.multipart = Some(Multipart {
                id,
                parts: Vec::new(),
            });
        }
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.finish_oldest(up).await?;
        }
        let Some(m) = up.multipart.as_ref() else {
            return Err(Error::Backend("multipart upload missing".into()));
        };
        let index = m.parts.len() + self.in_flight.len();
        let client = store.client.clone();
        let path = store.path(&up.target);
        let id = m.id.clone();
        let payload: PutPayload = part.into_iter().collect();
        self.in_flight.push_back(tokio::spawn(async move {
            client
                .put_part(&path, &id, index, payload)
                .await
                .map_err(backend)
        }));
        Ok(())
    }

    async fn finish_oldest(&mut self, up: &mut Upload) -> Result<()> {
        let Some(handle) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let part = handle
            .await
            .map_err(|e| Error::Backend(format!("part upload failed: {e}")))??;
        if let Some(m) = up.multipart.as_mut() {
            m.parts.push(part.content_id);
        }
        Ok(())
    }

    async fn wait_parts(&mut self, up: &mut Upload) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.finish_oldest(up).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn create_upload(&self, _key: UploadKey) -> Result<UploadState> {
        // Nothing is written until bytes come.
        Ok(Upload {
            size: 0,
            hash: hex::encode(Sha256State::new().to_bytes()),
            multipart: None,
            tail: None,
            next_tail: fresh_key(),
            strays: Vec::new(),
            target: fresh_key(),
            written_ms: now_ms(),
        }
        .encode())
    }

    async fn append_upload(
        &self,
        _key: UploadKey,
        state: &UploadState,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<Staged> {
        let (mut up, hash, mut pending) = self.stage(state, offset, Some(body)).await?;
        up.hash = hex::encode(hash.to_bytes());
        if pending.len > 0 || pending.tail_absorbed {
            // The new tail: the old one (if it was not sent in a part) and what is left.
            pending.absorb_tail(self, &up).await?;
            if pending.len == 0 {
                up.tail = None;
            } else {
                let len = pending.len as u64;
                let key = self.put_tail(&mut up, pending.chunks).await?;
                up.next_tail = fresh_key();
                up.tail = Some(Tail { key, len });
            }
        }
        Ok(Staged {
            size: up.size,
            state: up.encode(),
        })
    }

    async fn unsaved(&self, old: &UploadState, staged: &UploadState) {
        let (Ok(old), Ok(staged)) = (Upload::decode(old), Upload::decode(staged)) else {
            return;
        };
        // A multipart upload this append started is known to nobody else. (Its tail
        // is left: a request with the same bytes may have saved the same name.)
        if let (None, Some(m)) = (&old.multipart, &staged.multipart) {
            let _ = self
                .client
                .abort_multipart(&self.path(&staged.target), &m.id)
                .await;
        }
    }

    fn superseded(&self, old: &UploadState, new: &UploadState) -> Vec<BlobLocation> {
        let (Ok(old), Ok(new)) = (Upload::decode(old), Upload::decode(new)) else {
            return Vec::new();
        };
        // `new.strays` are those its request met: the state after it starts afresh.
        let new_tail = new.tail.map(|t| t.key);
        old.tail
            .map(|t| t.key)
            .into_iter()
            .chain(new.strays)
            .filter(|k| Some(k) != new_tail.as_ref())
            .map(BlobLocation)
            .collect()
    }

    async fn upload_size(&self, _key: UploadKey, state: &UploadState) -> Result<u64> {
        Ok(Upload::decode(state)?.size)
    }

    async fn last_write(&self, _key: UploadKey, state: &UploadState) -> Result<SystemTime> {
        let ms = u64::try_from(Upload::decode(state)?.written_ms).unwrap_or(0);
        Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    async fn finish_upload(
        &self,
        _key: UploadKey,
        state: &UploadState,
        digest: &Digest,
        offset: Option<u64>,
        last_chunk: Option<ByteStream>,
    ) -> Result<Published> {
        // Nothing is removed here, on a mismatch either: another request from the same
        // state may yet record what this one would remove. The caller's abort (or
        // delete of `superseded`, after recording) names the version it read.
        let (mut up, hash, pending) = self.stage(state, offset, last_chunk).await?;
        if digest.algorithm() == Algorithm::Sha256 && hex::encode(hash.finalize()) != digest.hex() {
            return Err(Error::DigestMismatch);
        }
        let location = self.publish(&mut up, pending).await?;
        if digest.algorithm() != Algorithm::Sha256
            && self.rehash(&location, digest.algorithm()).await? != digest.hex()
        {
            return Err(Error::DigestMismatch);
        }
        let tail = up.tail.map(|t| t.key);
        let superseded = tail
            .into_iter()
            .chain(up.strays)
            .filter(|k| *k != location)
            .map(BlobLocation)
            .collect();
        Ok(Published {
            size: up.size,
            location: BlobLocation(location),
            superseded,
        })
    }

    async fn abort_upload(&self, _key: UploadKey, state: &UploadState) -> Result<()> {
        let up = Upload::decode(state)?;
        self.discard(&up).await
    }

    async fn stat(&self, location: &BlobLocation) -> Result<u64> {
        let meta = self
            .client
            .head(&self.location_path(location)?)
            .await
            .map_err(backend)?;
        Ok(meta.size)
    }

    async fn read(&self, location: &BlobLocation, range: Option<(u64, u64)>) -> Result<BlobReader> {
        let options = GetOptions {
            range: range.map(|(start, end)| GetRange::Bounded(start..end + 1)),
            ..GetOptions::default()
        };
        let path = self.location_path(location)?;
        let got = tokio::time::timeout(READ_STALL, self.reader.get_opts(&path, options))
            .await
            .map_err(|_| Error::Backend("object storage did not answer a read in time".into()))?
            .map_err(backend)?;
        let stream = got
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()));
        Ok(BlobReader {
            stream: stall_guard(Box::pin(stream)),
        })
    }

    async fn download_url(
        &self,
        location: &BlobLocation,
        expires_in: Duration,
    ) -> Result<Option<String>> {
        let url = self
            .signer
            .signed_url(Method::GET, &self.location_path(location)?, expires_in)
            .await
            .map_err(backend)?;
        Ok(Some(url.to_string()))
    }

    async fn delete(&self, location: &BlobLocation) -> Result<()> {
        let path = self.location_path(location)?;
        match self.client.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    fn digest_location(&self, digest: &Digest) -> BlobLocation {
        // Blobs in a bucket always have a recorded location; this names nothing.
        BlobLocation(format!("blobs/by-digest/{}", digest.hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> S3Credentials {
        S3Credentials {
            access_key_id: "a".into(),
            secret_access_key: "SECRETVALUE".into(),
            session_token: None,
        }
    }

    #[test]
    fn parses_urls() {
        let s = S3Settings::parse(
            "s3://berth-blobs/team/one/?endpoint=http://127.0.0.1:8333/&region=eu-west-1",
            || Ok(creds()),
        )
        .expect("parse");
        assert_eq!(s.bucket, "berth-blobs");
        assert_eq!(s.prefix, "team/one");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(s.region, "eu-west-1");
        assert!(!format!("{s:?}").contains("SECRETVALUE"));
        for bad in [
            "http://bucket",
            "s3://B",
            "s3://bucket?endpoint=ftp://x",
            "s3://bucket?colour=red",
        ] {
            assert!(S3Settings::parse(bad, || Ok(creds())).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_prefer_berth_variables_and_need_both_halves() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = S3Credentials::from_env(env(&[
            ("BERTH_S3_ACCESS_KEY_ID", "berth"),
            ("BERTH_S3_SECRET_ACCESS_KEY", "bs"),
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "as"),
        ]))
        .expect("creds");
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("berth", "bs")
        );
        let c = S3Credentials::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "as"),
        ]))
        .expect("creds");
        assert_eq!(c.access_key_id, "aws");
        assert!(S3Credentials::from_env(env(&[("AWS_ACCESS_KEY_ID", "aws")])).is_err());
    }

    #[test]
    fn engine_errors_are_clipped_for_the_log() {
        assert_eq!(clipped("short"), "short");
        let long = "é".repeat(1000);
        let c = clipped(&long);
        assert_eq!(c.chars().count(), 401);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn bodies_are_signed_only_over_plain_http_beyond_loopback() {
        for (endpoint, signed) in [
            (Some("http://s3.internal:8333"), true),
            (Some("http://10.0.0.5:8333/"), true),
            (Some("https://s3.internal"), false),
            (Some("http://127.0.0.1:8333"), false),
            (Some("http://localhost:9000"), false),
            (Some("http://[::1]:9000"), false),
            (None, false),
        ] {
            assert_eq!(payload_needs_signing(endpoint), signed, "{endpoint:?}");
        }
    }

    #[test]
    fn split_part_takes_exactly_a_part() {
        let mut p = Pending::default();
        p.push(Bytes::from(vec![1u8; PART - 3]));
        p.push(Bytes::from(vec![2u8; 10]));
        let part = p.split_part();
        assert_eq!(part.iter().map(Bytes::len).sum::<usize>(), PART);
        assert_eq!(p.len, 7);
        assert_eq!(p.chunks.iter().map(Bytes::len).sum::<usize>(), 7);
    }
}

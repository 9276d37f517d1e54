//! The OCI Distribution (Docker Registry v2) front end.
//!
//! Each handler parses the request into typed values, calls one [`Service`] function and
//! renders the result; errors are rendered by [`error::error_response`].

mod auth;
mod error;
mod route;

use std::io;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::json;
use std::time::Duration;

pub use error::oci_error;
use route::Endpoint;

use crate::audit::AuditCall;
use crate::blobs::ByteStream;
use crate::observe::RequestNote;
use crate::oci::manifest::{self, MAX_MANIFEST_BYTES};
use crate::oci::{Digest, Reference, RepositoryName, Tag};
use crate::service::{ByteRange, Context, DownloadBody, Error, Listing, Service};

const API_VERSION: &str = "registry/2.0";

/// The `Range` header value for `size` staged bytes (`0-0` when empty, as clients expect).
pub fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// Handle one authenticated `/v2/...` request.
pub use auth::Front;

pub async fn handle(
    service: &Service,
    ctx: &Context,
    req: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    let method = req.method().clone();
    let note = RequestNote::of(req.extensions());
    let path = req.uri().path().to_owned();
    let endpoint = route::parse(&path);
    if let Some(endpoint) = &endpoint {
        note_request(service, ctx, &note, endpoint, &method);
    }
    let resp = match dispatch(service, ctx, endpoint, req).await {
        Ok(r) => r,
        Err(e) => {
            note.error(error::error_code(&e), &e.to_string());
            error::error_response(&e, request_id)
        }
    };
    finish(resp, &method)
}

/// Note the operation (and the call to audit, if its kind is recorded).
fn note_request(
    service: &Service,
    ctx: &Context,
    note: &RequestNote,
    endpoint: &route::Endpoint<'_>,
    method: &Method,
) {
    let (label, audited) = route::operation(endpoint, method);
    note.operation(label);
    // Blob bytes are what transfer out is made of (manifests are kilobytes).
    if let (route::Endpoint::Blob { name, .. }, &Method::GET) = (endpoint, method) {
        note.transfer(&ctx.registry.account_id, &ctx.registry.region, name);
    }
    let Some((name, kind)) = audited else {
        return;
    };
    if !service.audit().wants(kind) {
        return;
    }
    let (repository, parameters) = route::parameters(endpoint, &ctx.registry.account_id);
    note.call(AuditCall::ecr(
        &ctx.principal,
        &ctx.registry,
        name,
        kind,
        repository,
        parameters,
    ));
}

/// What every registry response gets: the API version header, and no body on HEAD
/// (an error's JSON body would confuse clients).
pub fn finish(mut resp: Response<Body>, method: &Method) -> Response<Body> {
    if method == Method::HEAD {
        *resp.body_mut() = Body::empty();
    }
    resp.headers_mut().insert(
        "Docker-Distribution-Api-Version",
        HeaderValue::from_static(API_VERSION),
    );
    resp
}

type HandlerResult = Result<Response<Body>, Error>;

async fn dispatch(
    service: &Service,
    ctx: &Context,
    endpoint: Option<Endpoint<'_>>,
    req: Request<Body>,
) -> HandlerResult {
    let Some(endpoint) = endpoint else {
        return Ok(oci_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ));
    };
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    match (endpoint, method) {
        (Endpoint::Ping, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, "{}")),
        (Endpoint::Catalog, Method::GET) => catalog(service, ctx, &query).await,
        (Endpoint::Tags { name }, Method::GET) => {
            list_tags(service, ctx, &repo_name(name)?, &query).await
        }
        (Endpoint::Manifest { name, reference }, m @ (Method::GET | Method::HEAD)) => {
            get_manifest(
                service,
                ctx,
                &repo_name(name)?,
                &parse_reference(reference)?,
                req.headers(),
                m == Method::HEAD,
            )
            .await
        }
        (Endpoint::Manifest { name, reference }, Method::PUT) => {
            put_manifest(
                service,
                ctx,
                &repo_name(name)?,
                &parse_reference(reference)?,
                req,
            )
            .await
        }
        (Endpoint::Manifest { name, reference }, Method::DELETE) => {
            let name = repo_name(name)?;
            service
                .delete_manifest(ctx, &name, &parse_reference(reference)?)
                .await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        (Endpoint::Blob { name, digest }, Method::HEAD) => {
            let (name, digest) = (repo_name(name)?, parse_digest(digest)?);
            let size = service.blob_size(ctx, &name, &digest).await?;
            let mut resp = empty(StatusCode::OK);
            blob_headers(resp.headers_mut(), &digest, size);
            Ok(resp)
        }
        (Endpoint::Blob { name, digest }, Method::GET) => {
            let (name, digest) = (repo_name(name)?, parse_digest(digest)?);
            get_blob(service, ctx, &name, &digest, req.headers()).await
        }
        (Endpoint::Blob { name, digest }, Method::DELETE) => {
            let (name, digest) = (repo_name(name)?, parse_digest(digest)?);
            service.delete_blob(ctx, &name, &digest).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        (Endpoint::Uploads { name }, Method::POST) => {
            start_upload(service, ctx, &repo_name(name)?, &query, req).await
        }
        (Endpoint::Upload { name, id }, Method::PATCH) => {
            patch_upload(service, ctx, &repo_name(name)?, id, req).await
        }
        (Endpoint::Upload { name, id }, Method::PUT) => {
            complete_upload(service, ctx, &repo_name(name)?, id, &query, req).await
        }
        (Endpoint::Upload { name, id }, Method::GET) => {
            let name = repo_name(name)?;
            let size = service.upload_status(ctx, &name, id).await?;
            Ok(upload_response(StatusCode::NO_CONTENT, &name, id, size))
        }
        (Endpoint::Upload { name, id }, Method::DELETE) => {
            service.cancel_upload(ctx, &repo_name(name)?, id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Endpoint::Referrers { name, digest }, Method::GET) => {
            let (name, digest) = (repo_name(name)?, parse_digest(digest)?);
            referrers(service, ctx, &name, &digest, &query).await
        }
        _ => Ok(oci_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "The operation is unsupported",
        )),
    }
}

// ---- parsing helpers ----

fn repo_name(s: &str) -> Result<RepositoryName, Error> {
    s.parse().map_err(Error::InvalidRepositoryName)
}

fn parse_digest(s: &str) -> Result<Digest, Error> {
    s.parse().map_err(|_| Error::InvalidDigest)
}

fn parse_reference(s: &str) -> Result<Reference, Error> {
    use crate::oci::name::InvalidReference;
    s.parse().map_err(|e| match e {
        InvalidReference::Tag(t) => Error::InvalidTag(t),
        InvalidReference::Digest(_) => Error::InvalidDigest,
    })
}

/// Decoded query parameters (first value wins).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            q.and_then(|q| serde_urlencoded::from_str(q).ok())
                .unwrap_or_default(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn page_size(&self) -> Result<Option<u32>, Error> {
        match self.get("n") {
            None | Some("") => Ok(None),
            Some(n) => n
                .parse()
                .map(Some)
                .map_err(|_| Error::InvalidPageSize(n.chars().take(20).collect())),
        }
    }

    /// `last` of a tag listing: a tag, as the previous page's `Link` gave it.
    fn last_tag(&self) -> Result<Option<Tag>, Error> {
        self.get("last")
            .filter(|l| !l.is_empty())
            .map(|l| l.parse().map_err(Error::InvalidTag))
            .transpose()
    }

    /// `last` of a catalog listing: a repository name.
    fn last_repository(&self) -> Result<Option<RepositoryName>, Error> {
        self.get("last")
            .filter(|l| !l.is_empty())
            .map(|l| l.parse().map_err(Error::InvalidRepositoryName))
            .transpose()
    }
}

/// How long a request body may stay silent before the upload is cut off, so a stalled
/// client cannot hold an upload (and its writer thread) forever.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

fn body_stream(req: Request<Body>) -> ByteStream {
    let data = req.into_body().into_data_stream();
    let stream = futures_util::stream::unfold(Some(data), |state| async move {
        let mut data = state?;
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, data.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(data))),
            Ok(Some(Err(e))) => Some((Err(io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(io::ErrorKind::TimedOut, "request body idle")),
                None,
            )),
        }
    });
    Box::pin(stream)
}

fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

// ---- responses ----

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn json_response(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn set(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn blob_headers(h: &mut HeaderMap, digest: &Digest, size: u64) {
    set(h, header::CONTENT_LENGTH, &size.to_string());
    set(h, "Docker-Content-Digest", &digest.to_string());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

fn upload_response(
    status: StatusCode,
    name: &RepositoryName,
    id: &str,
    size: u64,
) -> Response<Body> {
    let mut r = empty(status);
    let h = r.headers_mut();
    set(
        h,
        header::LOCATION,
        &format!("/v2/{name}/blobs/uploads/{id}"),
    );
    set(h, header::RANGE, &range_header(size));
    set(h, "Docker-Upload-UUID", id);
    r
}

fn blob_created(name: &RepositoryName, digest: &Digest) -> Response<Body> {
    let mut r = empty(StatusCode::CREATED);
    let h = r.headers_mut();
    set(h, header::LOCATION, &format!("/v2/{name}/blobs/{digest}"));
    set(h, "Docker-Content-Digest", &digest.to_string());
    r
}

/// A page of names as JSON, with a `Link` to the next page when there is one.
fn page_response(
    body: serde_json::Value,
    page: &Listing<String>,
    base: &str,
    n: Option<u32>,
) -> Response<Body> {
    let mut r = json_response(StatusCode::OK, body.to_string());
    if page.more() {
        if let Some(last) = page.items.last() {
            let q = serde_urlencoded::to_string([
                ("n", n.unwrap_or(page.items.len() as u32).to_string()),
                ("last", last.clone()),
            ])
            .unwrap_or_default();
            set(
                r.headers_mut(),
                header::LINK,
                &format!("<{base}?{q}>; rel=\"next\""),
            );
        }
    }
    r
}

// ---- handlers ----

async fn catalog(service: &Service, ctx: &Context, query: &Query) -> HandlerResult {
    let n = query.page_size()?;
    let page = service
        .catalog(ctx, query.last_repository()?.as_ref(), n)
        .await?;
    Ok(page_response(
        json!({ "repositories": page.items }),
        &page,
        "/v2/_catalog",
        n,
    ))
}

async fn list_tags(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    query: &Query,
) -> HandlerResult {
    let n = query.page_size()?;
    let page = service
        .list_tags(ctx, name, query.last_tag()?.as_ref(), n)
        .await?;
    let body = json!({ "name": name.as_str(), "tags": page.items });
    Ok(page_response(
        body,
        &page,
        &format!("/v2/{name}/tags/list"),
        n,
    ))
}

async fn get_manifest(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> HandlerResult {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let accepted = manifest::accepted_types(accept);
    let m = service
        .get_manifest(ctx, name, reference, &accepted)
        .await?;
    let len = m.body.len();
    let mut r = Response::new(if head {
        Body::empty()
    } else {
        Body::from(m.body.clone())
    });
    let h = r.headers_mut();
    set(h, header::CONTENT_TYPE, &m.media_type);
    set(h, header::CONTENT_LENGTH, &len.to_string());
    set(h, "Docker-Content-Digest", &m.digest);
    set(h, header::ETAG, &format!("\"{}\"", m.digest));
    Ok(r)
}

async fn put_manifest(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    reference: &Reference,
    req: Request<Body>,
) -> HandlerResult {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_manifest_body(req.into_body()).await?;
    let put = service
        .put_manifest(ctx, name, reference, content_type.as_deref(), &body)
        .await?;
    let mut r = empty(StatusCode::CREATED);
    let h = r.headers_mut();
    set(
        h,
        header::LOCATION,
        &format!("/v2/{name}/manifests/{}", put.digest),
    );
    set(h, "Docker-Content-Digest", &put.digest.to_string());
    if let Some(subject) = put.subject {
        set(h, "OCI-Subject", &subject.to_string());
    }
    Ok(r)
}

/// Read a manifest body, refusing more than the 4 MiB limit without buffering it all.
async fn read_manifest_body(body: Body) -> Result<Bytes, Error> {
    let limited = http_body_util::Limited::new(body, MAX_MANIFEST_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::ManifestTooLarge),
        Err(_) => Err(Error::ManifestInvalid(
            "the manifest body could not be read".into(),
        )),
    }
}

/// Parse `Range: bytes=a-b | bytes=a- | bytes=-n`. Anything else is ignored (whole blob).
/// A range whose last byte is before its first (`bytes=500-0`) is kept, to be answered
/// 416: RFC 9110 allows ignoring it, but clients and conformance suites expect the 416.
pub(crate) fn parse_range(headers: &HeaderMap) -> Option<ByteRange> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return Some(ByteRange::Last(b.parse().ok()?));
    }
    let start = a.parse().ok()?;
    let end: Option<u64> = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    Some(ByteRange::From { start, end })
}

async fn get_blob(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
) -> HandlerResult {
    let dl = service
        .download_blob(ctx, name, digest, parse_range(headers))
        .await?;
    let reader = match dl.body {
        DownloadBody::Bytes(reader) => reader,
        DownloadBody::Redirect(url) => {
            // As Distribution and ECR do: the client fetches from object storage.
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            set(r.headers_mut(), header::LOCATION, &url);
            set(
                r.headers_mut(),
                header::HeaderName::from_static("docker-content-digest"),
                &digest.to_string(),
            );
            return Ok(r);
        }
    };
    let mut r = Response::new(Body::from_stream(reader.stream));
    let h = r.headers_mut();
    blob_headers(h, digest, dl.size);
    if let Some((start, end)) = dl.range {
        set(h, header::CONTENT_LENGTH, &(end - start + 1).to_string());
        set(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{end}/{}", dl.size),
        );
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(r)
}

async fn start_upload(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    query: &Query,
    req: Request<Body>,
) -> HandlerResult {
    if let Some(mount) = query.get("mount") {
        let digest = parse_digest(mount)?;
        // An unparseable `from` cannot name a repository: no mount, a normal upload.
        let from = query.get("from").map(str::parse::<RepositoryName>);
        let mountable = !matches!(from, Some(Err(_)));
        let from = from.and_then(Result::ok);
        if mountable
            && service
                .mount_blob(ctx, name, &digest, from.as_ref())
                .await?
                .is_some()
        {
            return Ok(blob_created(name, &digest));
        }
    } else if let Some(d) = query.get("digest") {
        let digest = parse_digest(d)?;
        service
            .upload_blob(ctx, name, &digest, body_stream(req))
            .await?;
        return Ok(blob_created(name, &digest));
    }
    let id = service.start_upload(ctx, name).await?;
    Ok(upload_response(
        StatusCode::ACCEPTED,
        name,
        &id.to_string(),
        0,
    ))
}

/// The start offset of a `Content-Range: <start>-<end>` chunk header, checked against
/// `Content-Length` when both are present.
pub(crate) fn chunk_start(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| ())?.trim();
    let s = s.strip_prefix("bytes").map(str::trim_start).unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s).trim();
    let (a, b) = s.split_once('-').ok_or(())?;
    let start: u64 = a.trim().parse().map_err(|_| ())?;
    let end: u64 = b.trim().parse().map_err(|_| ())?;
    if end < start {
        return Err(());
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // `end - start + 1` overflows for `0-18446744073709551615` (found by fuzzing).
    let span = (end - start).checked_add(1).ok_or(())?;
    if length.is_some_and(|n| n != span) {
        return Err(());
    }
    Ok(Some(start))
}

/// The offset a chunk claims, or the out-of-order error (carrying what is staged) when
/// its `Content-Range` is malformed or disagrees with its length.
async fn chunk_offset(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    id: &str,
    headers: &HeaderMap,
) -> Result<Option<u64>, Error> {
    match chunk_start(headers) {
        Ok(offset) => Ok(offset),
        Err(()) => {
            let size = service.upload_status(ctx, name, id).await?;
            Err(Error::UploadOutOfOrder { size })
        }
    }
}

async fn patch_upload(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    id: &str,
    req: Request<Body>,
) -> HandlerResult {
    let offset = chunk_offset(service, ctx, name, id, req.headers()).await?;
    let size = service
        .append_upload(ctx, name, id, offset, body_stream(req))
        .await?;
    Ok(upload_response(StatusCode::ACCEPTED, name, id, size))
}

async fn complete_upload(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    id: &str,
    query: &Query,
    req: Request<Body>,
) -> HandlerResult {
    let digest = parse_digest(query.get("digest").unwrap_or(""))?;
    let offset = chunk_offset(service, ctx, name, id, req.headers()).await?;
    let last_chunk = has_body(req.headers()).then(|| body_stream(req));
    service
        .complete_upload(ctx, name, id, &digest, offset, last_chunk)
        .await?;
    Ok(blob_created(name, &digest))
}

async fn referrers(
    service: &Service,
    ctx: &Context,
    name: &RepositoryName,
    digest: &Digest,
    query: &Query,
) -> HandlerResult {
    let filter = query.get("artifactType").filter(|t| !t.is_empty());
    let found = service.referrers(ctx, name, digest, filter).await?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(t) = r.artifact_type {
                d["artifactType"] = json!(t);
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": manifests,
    });
    let mut r = json_response(StatusCode::OK, index.to_string());
    set(r.headers_mut(), header::CONTENT_TYPE, manifest::OCI_INDEX);
    if filter.is_some() {
        set(r.headers_mut(), "OCI-Filters-Applied", "artifactType");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn range_headers() {
        assert_eq!(range_header(0), "0-0");
        assert_eq!(range_header(10), "0-9");
        assert_eq!(
            parse_range(&headers(header::RANGE, "bytes=1-5")),
            Some(ByteRange::From {
                start: 1,
                end: Some(5)
            })
        );
        assert_eq!(
            parse_range(&headers(header::RANGE, "bytes=-5")),
            Some(ByteRange::Last(5))
        );
        assert_eq!(
            parse_range(&headers(header::RANGE, "bytes=7-")),
            Some(ByteRange::From {
                start: 7,
                end: None
            })
        );
        assert_eq!(parse_range(&headers(header::RANGE, "bytes=1-2,4-5")), None);
        assert_eq!(parse_range(&headers(header::RANGE, "items=1-2")), None);
        assert_eq!(
            parse_range(&headers(header::RANGE, "bytes=5-4")).and_then(|r| r.resolve(10)),
            None
        );
    }

    #[test]
    fn chunk_ranges() {
        let h = |v| headers(header::CONTENT_RANGE, v);
        // Found by fuzzing: the span of the widest range overflowed.
        let mut widest = h("0-18446744073709551615");
        widest.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert_eq!(chunk_start(&widest), Err(()));
        assert_eq!(chunk_start(&h("0-99")).ok().flatten(), Some(0));
        let mut with_length = h("0-99");
        with_length.insert(header::CONTENT_LENGTH, HeaderValue::from_static("100"));
        assert_eq!(chunk_start(&with_length), Ok(Some(0)));
        with_length.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        assert_eq!(chunk_start(&with_length), Err(()));
        assert_eq!(chunk_start(&h("bytes 100-199/*")).ok().flatten(), Some(100));
        assert!(chunk_start(&h("9-1")).is_err());
        assert!(chunk_start(&h("abc")).is_err());
        assert_eq!(chunk_start(&HeaderMap::new()).ok().flatten(), None);
    }
}

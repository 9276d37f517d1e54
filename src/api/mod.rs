//! API front ends on the AWS protocols: ECR's and Secrets Manager's JSON 1.1, and
//! IAM/STS on the Query protocol.

pub mod ecr;
pub mod iam;
pub mod secretsmanager;
pub mod signer;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use sha2::{Digest as _, Sha256};

use crate::auth::{sigv4, ApiAuthError, ApiCaller, Authenticator, PendingCaller};

/// A request's headers as SigV4 sees them: (lower-case name, value), text values only.
pub struct SignedParts<'a> {
    parts: &'a axum::http::request::Parts,
    headers: Vec<(String, String)>,
}

impl SignedParts<'_> {
    pub fn request<'b>(&'b self, payload_hash: &'b str) -> sigv4::RequestParts<'b> {
        sigv4::RequestParts {
            method: self.parts.method.as_str(),
            path: self.parts.uri.path(),
            query: self.parts.uri.query().unwrap_or(""),
            headers: &self.headers,
            payload_hash,
        }
    }
}

pub fn signed_parts(parts: &axum::http::request::Parts) -> SignedParts<'_> {
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    SignedParts { parts, headers }
}

/// Check what a request's headers say of its signature (for `service`: `ecr`, `iam`,
/// `sts`), before its body is read.
pub async fn precheck(
    auth: &Authenticator,
    signed: &SignedParts<'_>,
    service: &str,
) -> Result<PendingCaller, ApiAuthError> {
    let now = crate::clock::now_ms() / 1000;
    let query = signed.parts.uri.query().unwrap_or("");
    auth.api_precheck(&signed.headers, query, service, now)
        .await
}

/// Finish the signature check with the body's hash: who calls, and in which region.
pub fn verify(
    auth: &Authenticator,
    pending: PendingCaller,
    signed: &SignedParts<'_>,
    payload_hash: &str,
) -> Result<ApiCaller, ApiAuthError> {
    let now = crate::clock::now_ms() / 1000;
    auth.api_verify(pending, &signed.request(payload_hash), now)
}

/// A JSON 1.1 request, authenticated: the caller and the input object. Everything the
/// headers can tell is checked before the body is read (at most `cap` bytes), so an
/// unauthenticated client cannot make the server hold a large body.
pub async fn signed_json_input(
    auth: &Authenticator,
    parts: &axum::http::request::Parts,
    body: Body,
    service: &str,
    cap: u64,
) -> Result<(ApiCaller, serde_json::Map<String, serde_json::Value>), ecr::ApiError> {
    let signed = signed_parts(parts);
    let pending = precheck(auth, &signed, service).await?;
    let (body, payload_hash) = read_body(body, &parts.headers, cap)
        .await
        .map_err(ecr::ApiError::body)?;
    let caller = verify(auth, pending, &signed, &payload_hash)?;
    let not_an_object =
        || ecr::ApiError::serialization("Start of structure or map found where not expected.");
    if body.is_empty() {
        return Ok((caller, serde_json::Map::new()));
    }
    match serde_json::from_slice(&body).map_err(|_| not_an_object())? {
        serde_json::Value::Object(input) => Ok((caller, input)),
        _ => Err(not_an_object()),
    }
}

/// The context of an API that acts in the caller's own account (Secrets Manager,
/// Signer): the caller's account, in the region it signed for. `None` for a caller
/// that belongs to no account (the system principal, which never signs requests).
pub fn own_account_context(
    caller: ApiCaller,
    parts: &axum::http::request::Parts,
) -> Option<crate::service::Context> {
    let account_id = caller
        .principal
        .account_id()
        .and_then(crate::aws::AccountId::parse)?;
    Some(crate::service::Context {
        registry: crate::meta::RegistryKey {
            account_id,
            region: caller.region,
        },
        principal: caller.principal,
        source_ip: crate::peer::peer_ip(&parts.extensions),
    })
}

/// Note a call of an API acting in the caller's account, for the audit trail.
pub fn note_call(
    service: &crate::service::Service,
    note: &crate::observe::RequestNote,
    ctx: &crate::service::Context,
    source: crate::audit::EventSource,
    operation: &'static str,
    input: &serde_json::Map<String, serde_json::Value>,
    repository: Option<String>,
) {
    let kind = crate::audit::CallKind::of_operation(operation);
    if !service.audit().wants(kind) {
        return;
    }
    note.call(crate::audit::AuditCall {
        source,
        name: operation,
        principal: ctx.principal.clone(),
        account_id: ctx.registry.account_id.to_string(),
        region: ctx.registry.region.to_string(),
        kind,
        parameters: serde_json::Value::Object(input.clone()),
        repository,
        error: None,
    });
}

/// A JSON 1.1 operation's answer: the output object, its media type, the request id.
pub fn json_response(body: &serde_json::Value, request_id: &str) -> axum::http::Response<Body> {
    let mut resp = axum::http::Response::new(Body::from(body.to_string()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(ecr::CONTENT_TYPE),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    resp
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Declared or sent more than the operation allows.
    TooLarge,
    /// The client stopped sending or went away.
    Unreadable,
}

impl BodyError {
    pub fn status(self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Unreadable => StatusCode::BAD_REQUEST,
        }
    }
}

/// Read a body of at most `cap` bytes, hashing as it arrives; (body, hex sha256).
/// A declared length over the cap is refused before a byte is read.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    cap: u64,
) -> Result<(Bytes, String), BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge);
    }
    let mut body = body;
    let mut hash = Sha256::new();
    // The declared length is not signed yet: it sizes the buffer only up to a point.
    let mut out = BytesMut::with_capacity(declared.unwrap_or(0).min(64 * 1024) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        if let Some(data) = frame.data_ref() {
            if (out.len() + data.len()) as u64 > cap {
                return Err(BodyError::TooLarge);
            }
            hash.update(data);
            out.extend_from_slice(data);
        }
    }
    Ok((out.freeze(), hex::encode(hash.finalize())))
}

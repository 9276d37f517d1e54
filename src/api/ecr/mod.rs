//! ECR's control-plane API: AWS JSON 1.1 over `POST <base>` with `X-Amz-Target`.
//!
//! [`handle`] authenticates the request (SigV4), decodes the target and body, and runs
//! one operation: parse the input into typed values (ECR's validation messages), call the
//! service, render the output shape. Errors are rendered by [`error::ApiError`].

mod error;
mod ops;

#[doc(hidden)]
pub(crate) use ops::exercise_input;

use axum::body::Body;
use axum::http::{header, Request, Response};
use serde_json::Value;

pub use error::ApiError;
pub use ops::{operations_markdown, Operation, OPERATIONS};

use crate::audit::{AuditCall, CallKind};
use crate::auth::{Authenticator, Principal};
use crate::aws::AccountId;
use crate::meta::RegistryKey;
use crate::observe::{Frontend, RequestNote};
use crate::service::{Context, Service};

pub const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest UploadLayerPart body: a 20 MiB part, base64-encoded, in JSON.
const MAX_UPLOAD_PART_BODY: u64 = 28 * 1024 * 1024;
/// Largest body of any other operation (a 4 MiB manifest, escaped, in PutImage).
const MAX_BODY: u64 = 8 * 1024 * 1024;

/// Whether a request is for this API: a target header, or the protocol's media type
/// (media types are case-insensitive).
pub fn is_ecr_request(req: &Request<Body>) -> bool {
    let h = req.headers();
    h.contains_key("x-amz-target")
        || h.get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .get(..CONTENT_TYPE.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(CONTENT_TYPE.as_bytes()))
        })
}

pub async fn handle(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    let note = RequestNote::of(req.extensions());
    note.frontend(Frontend::Ecr);
    match run(service, auth, req, &note).await {
        Ok(body) => super::json_response(&body, request_id),
        Err(e) => {
            note.error(e.code, &e.message);
            e.into_response(request_id)
        }
    }
}

async fn run(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    note: &RequestNote,
) -> Result<Value, ApiError> {
    let (parts, body) = req.into_parts();
    let operation = operation(&parts)?;
    note.operation(operation);
    let cap = if operation == "UploadLayerPart" {
        MAX_UPLOAD_PART_BODY
    } else {
        MAX_BODY
    };
    let (caller, input) = super::signed_json_input(auth, &parts, body, "ecr", cap).await?;
    let input = Value::Object(input);
    let registry_id = match input.get("registryId") {
        Some(Value::String(id)) => AccountId::parse(id).ok_or_else(|| {
            ApiError::invalid("registryId", "must satisfy regular expression '[0-9]{12}'")
        })?,
        Some(Value::Null) | None => caller_registry(&caller.principal)?,
        Some(_) => return Err(ApiError::serialization("Expected a string for registryId")),
    };
    let ctx = Context {
        registry: RegistryKey {
            account_id: registry_id,
            region: caller.region.clone(),
        },
        principal: caller.principal,
        source_ip: crate::peer::peer_ip(&parts.extensions),
    };
    let kind = CallKind::of_operation(operation);
    if service.audit().wants(kind) {
        let repository = input
            .get("repositoryName")
            .and_then(Value::as_str)
            .map(str::to_owned);
        note.call(AuditCall::ecr(
            &ctx.principal,
            &ctx.registry,
            operation,
            kind,
            repository,
            input.clone(),
        ));
    }
    ops::dispatch(service, auth, &ctx, operation, input).await
}

/// The operation `X-Amz-Target` names (as its static name); any other target, or a
/// method other than POST, is not this API's.
fn operation(parts: &axum::http::request::Parts) -> Result<&'static str, ApiError> {
    if parts.method != axum::http::Method::POST {
        return Err(ApiError::unknown_operation());
    }
    parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .and_then(|op| OPERATIONS.iter().find(|o| o.name == op))
        .map(|o| o.name)
        .ok_or_else(ApiError::unknown_operation)
}

/// The caller's own registry, the default of `registryId`. (Only Berth's system
/// principal has no account, and it never signs a request.)
fn caller_registry(p: &Principal) -> Result<AccountId, ApiError> {
    p.account_id()
        .and_then(AccountId::parse)
        .ok_or_else(|| ApiError::new("ServerException", "the caller belongs to no account"))
}

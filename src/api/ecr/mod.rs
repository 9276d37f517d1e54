//! ECR's control-plane API: AWS JSON 1.1 over `POST <base>` with `X-Amz-Target`.
//!
//! [`handle`] authenticates the request (SigV4), decodes the target and body, and runs
//! one operation: parse the input into typed values (ECR's validation messages), call the
//! service, render the output shape. Errors are rendered by [`error::ApiError`].

mod error;
mod ops;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

pub use error::ApiError;

use crate::auth::Authenticator;
use crate::meta::RegistryKey;
use crate::service::{Context, Service};

pub const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest request body: UploadLayerPart carries up to 20 MiB, base64-encoded.
const MAX_BODY: usize = 28 * 1024 * 1024;

/// Whether a request is for this API.
pub fn is_ecr_request(req: &Request<Body>) -> bool {
    req.method() == axum::http::Method::POST
        && req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

pub async fn handle(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    match run(service, auth, req).await {
        Ok(body) => {
            let mut resp = Response::new(Body::from(body.to_string()));
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            if let Ok(v) = HeaderValue::from_str(request_id) {
                h.insert("x-amzn-RequestId", v);
            }
            resp
        }
        Err(e) => e.into_response(request_id),
    }
}

async fn run(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
) -> Result<Value, ApiError> {
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| ApiError {
            code: "SerializationException",
            message: "The request body is too large or could not be read".into(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            extra: None,
        })?
        .to_bytes();
    let caller = super::authenticate(service, auth, &parts, &body, "ecr").await?;
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    let input: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::serialization("Start of structure or map found where not expected.")
        })?
    };
    if !input.is_object() {
        return Err(ApiError::serialization(
            "Start of structure or map found where not expected.",
        ));
    }
    let account_id = caller.principal.account_id().unwrap_or_default().to_owned();
    let registry_id = match input.get("registryId") {
        Some(Value::String(id)) => {
            if !crate::http::host::is_account_id(id) {
                return Err(ApiError::invalid(
                    "registryId",
                    "must satisfy regular expression '[0-9]{12}'",
                ));
            }
            id.clone()
        }
        Some(Value::Null) | None => account_id,
        Some(_) => return Err(ApiError::serialization("Expected a string for registryId")),
    };
    let ctx = Context {
        registry: RegistryKey {
            account_id: registry_id,
            region: caller.region.clone(),
        },
        principal: caller.principal,
        source_ip: crate::http::peer_ip(&parts.extensions),
    };
    ops::dispatch(service, auth, &ctx, operation, input).await
}

//! The one place service errors become OCI error responses.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::service::Error;
use crate::upstream::UpstreamError;

/// The OCI error code of a service error (for the audit trail).
pub fn error_code(e: &Error) -> &'static str {
    code_and_status(e).0
}

/// OCI error code and HTTP status for a service error. Exhaustive on purpose: a new
/// variant must be mapped here.
fn code_and_status(e: &Error) -> (&'static str, StatusCode) {
    match e {
        Error::RepositoryNotFound { .. } => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
        Error::RepositoryAlreadyExists { .. } => ("NAME_INVALID", StatusCode::CONFLICT),
        Error::InvalidRepositoryName(_) => ("NAME_INVALID", StatusCode::BAD_REQUEST),
        Error::InvalidTag(_) => ("TAG_INVALID", StatusCode::BAD_REQUEST),
        Error::InvalidDigest | Error::DigestMismatch => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
        Error::BlobNotFound => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
        Error::BlobReferenced | Error::ManifestReferenced => ("UNSUPPORTED", StatusCode::CONFLICT),
        Error::InvalidPageSize(_) => ("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST),
        Error::UploadNotFound => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
        Error::UploadOutOfOrder { .. } => {
            ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE)
        }
        Error::UploadInterrupted => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
        Error::RangeNotSatisfiable { .. } => ("RANGE_INVALID", StatusCode::RANGE_NOT_SATISFIABLE),
        Error::ManifestNotFound | Error::ManifestNotAcceptable(_) | Error::ImageArchived => {
            ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND)
        }
        Error::ManifestInvalid(_) => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
        Error::ManifestTooLarge => ("SIZE_INVALID", StatusCode::PAYLOAD_TOO_LARGE),
        Error::ManifestBlobsMissing { .. } | Error::ManifestChildrenMissing { .. } => {
            ("MANIFEST_BLOB_UNKNOWN", StatusCode::BAD_REQUEST)
        }
        Error::AccessDenied(_) => ("DENIED", StatusCode::FORBIDDEN),
        Error::TagImmutable { .. } => ("TAG_INVALID", StatusCode::BAD_REQUEST),
        Error::ImageAlreadyExists { .. }
        | Error::RepositoryNotEmpty { .. }
        | Error::LayerAlreadyExists(_) => ("UNSUPPORTED", StatusCode::CONFLICT),
        Error::ImageDigestMismatch { .. } | Error::InvalidLayer(_) => {
            ("DIGEST_INVALID", StatusCode::BAD_REQUEST)
        }
        Error::ImageNotFound { .. } => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
        Error::LayersNotFound(_) => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
        Error::TooManyTags
        | Error::InvalidLayerPart { .. }
        | Error::EmptyUpload(_)
        | Error::LayerPartTooSmall
        | Error::InvalidParameter(_)
        | Error::RepositoryPolicyNotFound { .. }
        | Error::RegistryPolicyNotFound(_)
        | Error::Ecr(..)
        | Error::Iam(..)
        | Error::Secrets(..)
        | Error::Signer(..) => ("UNSUPPORTED", StatusCode::BAD_REQUEST),
        Error::Busy => ("TOOMANYREQUESTS", StatusCode::TOO_MANY_REQUESTS),
        Error::Upstream(u) => match u {
            UpstreamError::NotFound => ("NOT_FOUND", StatusCode::NOT_FOUND),
            UpstreamError::AccessDenied(_) => ("DENIED", StatusCode::FORBIDDEN),
            UpstreamError::TooManyRequests => ("TOOMANYREQUESTS", StatusCode::TOO_MANY_REQUESTS),
            UpstreamError::Unavailable(_) | UpstreamError::Invalid(_) => {
                ("UNAVAILABLE", StatusCode::BAD_GATEWAY)
            }
        },
        Error::Internal(_) => ("UNKNOWN", StatusCode::INTERNAL_SERVER_ERROR),
        Error::StorageFull => ("UNKNOWN", StatusCode::INSUFFICIENT_STORAGE),
    }
}

/// An OCI error body: `{"errors":[{"code":..,"message":..}]}`.
pub fn oci_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = json!({ "errors": [{ "code": code, "message": message }] }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn error_response(e: &Error, request_id: &str) -> Response<Body> {
    let (code, status) = code_and_status(e);
    let message = match e {
        // Internal details go to the log, not to the client.
        Error::Internal(detail) => {
            tracing::error!(request_id, error = %detail, "internal error");
            format!("internal error (request id {request_id})")
        }
        Error::Busy => "Rate exceeded".to_owned(),
        Error::StorageFull => {
            tracing::error!(request_id, "no space left for the registry's data");
            e.to_string()
        }
        other => other.to_string(),
    };
    let mut resp = oci_error(status, code, &message);
    let headers = resp.headers_mut();
    match e {
        Error::UploadOutOfOrder { size } => {
            if let Ok(v) = HeaderValue::from_str(&super::range_header(*size)) {
                headers.insert(header::RANGE, v);
            }
        }
        Error::RangeNotSatisfiable { size } => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
        }
        Error::Busy => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    resp
}

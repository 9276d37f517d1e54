//! The one place errors become ECR's JSON 1.1 error responses.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::{sigv4::SigError, ApiAuthError};
use crate::service::Error;

/// An error as the API answers it: `__type`, `message`, status, and modeled extras.
#[derive(Debug)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub status: StatusCode,
    pub extra: Option<Value>,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
            extra: None,
        }
    }

    /// `InvalidParameterException` in ECR's wording.
    pub fn invalid(member: &str, constraint: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            "InvalidParameterException",
            format!("Invalid parameter at '{member}' failed to satisfy constraint: '{constraint}'"),
        )
    }

    /// A target that names no operation of this API (or none at all).
    pub fn unknown_operation() -> ApiError {
        ApiError::new("UnknownOperationException", "")
    }

    /// A body that could not be read within its limits.
    pub fn body(e: crate::api::BodyError) -> ApiError {
        let message = match e {
            crate::api::BodyError::TooLarge => {
                "The request body is larger than this operation accepts"
            }
            crate::api::BodyError::Unreadable => "The request body could not be read",
        };
        ApiError {
            code: "SerializationException",
            message: message.into(),
            status: e.status(),
            extra: None,
        }
    }

    pub fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new("SerializationException", message)
    }

    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let mut body = if self.message.is_empty() {
            json!({ "__type": self.code })
        } else {
            json!({ "__type": self.code, "message": self.message })
        };
        if let (Some(Value::Object(extra)), Value::Object(obj)) = (self.extra, &mut body) {
            obj.extend(extra);
        }
        let mut resp = Response::new(Body::from(body.to_string()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::CONTENT_TYPE),
        );
        if let Ok(v) = HeaderValue::from_str(self.code) {
            h.insert("X-Amzn-ErrorType", v);
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-amzn-RequestId", v);
        }
        resp
    }
}

impl From<ApiAuthError> for ApiError {
    fn from(e: ApiAuthError) -> Self {
        match e {
            ApiAuthError::UnrecognizedClient => {
                ApiError::new("UnrecognizedClientException", e.to_string())
            }
            ApiAuthError::ExpiredToken => ApiError::new("ExpiredTokenException", e.to_string()),
            ApiAuthError::Backend(m) => server_error(&m),
            ApiAuthError::Signature(s) => match s {
                SigError::Missing => {
                    ApiError::new("MissingAuthenticationTokenException", s.to_string())
                }
                SigError::Incomplete(_) => {
                    ApiError::new("IncompleteSignatureException", s.to_string())
                }
                SigError::Mismatch
                | SigError::Expired { .. }
                | SigError::NotYetCurrent { .. }
                | SigError::WrongService(_)
                | SigError::WrongRegion
                | SigError::ScopeDate { .. } => {
                    ApiError::new("InvalidSignatureException", s.to_string())
                }
            },
        }
    }
}

fn server_error(detail: &str) -> ApiError {
    tracing::error!(error = %detail, "internal error");
    ApiError {
        code: "ServerException",
        message: "An internal error occurred".into(),
        status: StatusCode::INTERNAL_SERVER_ERROR,
        extra: None,
    }
}

/// Service errors in the API's terms. Exhaustive on purpose: a new variant must be
/// mapped here.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::from(&e)
    }
}

impl From<&Error> for ApiError {
    fn from(e: &Error) -> Self {
        let message = e.to_string();
        let code = match e {
            Error::RepositoryNotFound { .. } => "RepositoryNotFoundException",
            Error::RepositoryAlreadyExists { .. } => "RepositoryAlreadyExistsException",
            Error::RepositoryNotEmpty { .. } => "RepositoryNotEmptyException",
            Error::InvalidRepositoryName(_)
            | Error::InvalidTag(_)
            | Error::InvalidDigest
            | Error::InvalidPageSize(_)
            | Error::RangeNotSatisfiable { .. }
            | Error::BlobReferenced
            | Error::ManifestReferenced
            | Error::InvalidParameter(_)
            | Error::Iam(..) => "InvalidParameterException",
            Error::Secrets(kind, _) => kind.code(),
            Error::Signer(kind, _) => kind.code(),
            Error::RepositoryPolicyNotFound { .. } => "RepositoryPolicyNotFoundException",
            Error::RegistryPolicyNotFound(_) => "RegistryPolicyNotFoundException",
            Error::Ecr(kind, _) => kind.exception(),
            Error::ImageArchived => "ImageArchivedException",
            Error::ManifestInvalid(_) => {
                return ApiError::invalid("ImageManifest", "Invalid JSON syntax");
            }
            Error::ManifestTooLarge => {
                return ApiError::invalid(
                    "imageManifest",
                    "Member must have length less than or equal to 4194304",
                );
            }
            Error::BlobNotFound | Error::ManifestBlobsMissing { .. } | Error::LayersNotFound(_) => {
                "LayersNotFoundException"
            }
            Error::ManifestChildrenMissing { .. } => "ReferencedImagesNotFoundException",
            Error::UploadNotFound => "UploadNotFoundException",
            Error::UploadOutOfOrder { .. } | Error::UploadInterrupted => {
                "InvalidLayerPartException"
            }
            Error::InvalidLayerPart {
                last_valid_byte, ..
            } => {
                let mut err = ApiError::new("InvalidLayerPartException", message);
                err.extra = Some(
                    json!({ "lastValidByteReceived": last_valid_byte.map_or(-1, |b| b as i64) }),
                );
                return err;
            }
            Error::DigestMismatch | Error::InvalidLayer(_) => "InvalidLayerException",
            Error::EmptyUpload(_) => "EmptyUploadException",
            Error::LayerPartTooSmall => "LayerPartTooSmallException",
            Error::LayerAlreadyExists(_) => "LayerAlreadyExistsException",
            Error::ManifestNotFound
            | Error::ManifestNotAcceptable(_)
            | Error::ImageNotFound { .. } => "ImageNotFoundException",
            Error::ImageAlreadyExists { .. } => "ImageAlreadyExistsException",
            Error::TagImmutable { .. } => "ImageTagAlreadyExistsException",
            Error::ImageDigestMismatch { .. } => "ImageDigestDoesNotMatchException",
            Error::TooManyTags => "TooManyTagsException",
            Error::AccessDenied(_) => "AccessDeniedException",
            Error::Upstream(_) => "UnableToGetUpstreamImageException",
            Error::Busy => return ApiError::new("ThrottlingException", "Rate exceeded"),
            Error::Internal(detail) => return server_error(detail),
            Error::StorageFull => return server_error(&message),
        };
        ApiError::new(code, message)
    }
}

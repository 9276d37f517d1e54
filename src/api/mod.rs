//! API front ends on the AWS protocols: ECR's JSON 1.1 control plane, and IAM/STS on
//! the Query protocol.

pub mod ecr;
pub mod iam;

use sha2::{Digest as _, Sha256};

use crate::auth::{sigv4, ApiAuthError, ApiCaller, Authenticator};
use crate::service::Service;

/// Check a request's SigV4 signature for `service` (`ecr`, `iam`, `sts`): who calls, and
/// in which region.
pub async fn authenticate(
    keys: &Service,
    auth: &Authenticator,
    parts: &axum::http::request::Parts,
    body: &[u8],
    service: &str,
) -> Result<ApiCaller, ApiAuthError> {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let payload_hash = hex::encode(Sha256::digest(body));
    let request = sigv4::RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let now = crate::clock::now_ms() / 1000;
    auth.api_caller(keys, &request, service, now).await
}

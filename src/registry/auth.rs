//! Registry authentication: who a `/v2/` request is from — a presigned download URL
//! (GetDownloadUrlForLayer), or ECR's `Basic AWS:<token>` login — and the answers ECR
//! gives otherwise (401 with its challenge, 403 for an expired token).

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};

use super::{finish, handle, oci_error};
use crate::auth::{Authenticator, Principal, RegistryAuth};
use crate::clock;
use crate::meta::RegistryKey;
use crate::public_url::Scheme;
use crate::service::{Context, Service};

/// What the registry front end needs from the server.
pub struct Front<'a> {
    pub service: &'a Service,
    pub auth: &'a Authenticator,
    /// The scheme clients reach Berth with (the login realm names it).
    pub scheme: Scheme,
}

impl Front<'_> {
    /// Authenticate a request to `registry`, then serve it.
    pub async fn handle(
        &self,
        registry: RegistryKey,
        req: Request<Body>,
        request_id: &str,
    ) -> Response<Body> {
        crate::observe::RequestNote::of(req.extensions())
            .frontend(crate::observe::Frontend::Registry);
        match principal(self, &registry, &req) {
            Ok(principal) => {
                let ctx = Context {
                    registry,
                    principal,
                    source_ip: crate::peer::peer_ip(req.extensions()),
                };
                handle(self.service, &ctx, req, request_id).await
            }
            Err(resp) => finish(*resp, req.method()),
        }
    }
}

/// Who a registry request is from: a presigned download URL, or ECR's Basic login.
/// Anything else is answered here: 401 with ECR's challenge, or 403 for an expired token.
fn principal(
    front: &Front<'_>,
    registry: &RegistryKey,
    req: &Request<Body>,
) -> Result<Principal, Box<Response<Body>>> {
    let now = clock::now_ms() / 1000;
    if let Some(principal) = presigned(front, registry, req, now) {
        return Ok(principal);
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match front
        .auth
        .registry_caller(authorization, &registry.region, now)
    {
        RegistryAuth::Allowed(p) => Ok(p),
        RegistryAuth::Expired => Err(Box::new(oci_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            "Your authorization token has expired. Reauthenticate and try again.",
        ))),
        RegistryAuth::Challenge => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            let mut resp = Response::new(Body::from("Not Authorized\n"));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            let challenge = format!(
                "Basic realm=\"{}://{host}/\",service=\"ecr.amazonaws.com\"",
                front.scheme.as_str()
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Err(Box::new(resp))
        }
    }
}

/// A GET of a blob through a URL GetDownloadUrlForLayer signed: it grants exactly that.
fn presigned(
    front: &Front<'_>,
    registry: &RegistryKey,
    req: &Request<Body>,
    now: i64,
) -> Option<Principal> {
    if !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        return None;
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query()?).ok()?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let expires: i64 = get("X-Berth-Expires")?.parse().ok()?;
    let signature = get("X-Berth-Signature")?;
    let path = req.uri().path();
    if !path.contains("/blobs/sha") {
        return None;
    }
    front.auth.presigned_caller(
        &registry.account_id,
        &registry.region,
        path,
        expires,
        signature,
        now,
    )
}

//! HTTP server: connection handling, request ids, access log, host → registry, and
//! dispatch to the front ends (`/v2/` registry, `/healthz`).

pub mod host;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

pub use host::HostRouting;

use crate::api;
use crate::auth::{Authenticator, Principal, RegistryAuth};
use crate::clock;
use crate::meta::RegistryKey;
use crate::registry;
use crate::service::{Context, Service};

/// Largest request head (request line + headers) accepted; larger gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Everything a request handler needs, built once at start.
pub struct AppState {
    pub service: Service,
    pub hosts: HostRouting,
    pub auth: Authenticator,
    next_request: AtomicU64,
}

impl AppState {
    pub fn new(service: Service, hosts: HostRouting, auth: Authenticator) -> AppState {
        AppState {
            service,
            hosts,
            auth,
            next_request: AtomicU64::new(1),
        }
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:08x}", std::process::id())
    }
}

/// Route one request to its front end and write the access-log line.
async fn handle(state: Arc<AppState>, req: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let request_id = state.request_id();
    let method = req.method().clone();
    // The path only: query strings may carry credentials (presigned URLs).
    let path = req.uri().path().to_owned();
    let request_bytes = content_length(req.headers());
    let mut resp = if path == "/healthz" {
        Response::new(Body::from("ok\n"))
    } else if api::ecr::is_ecr_request(&req) {
        api::ecr::handle(&state.service, &state.auth, req, &request_id).await
    } else if api::iam::is_query_request(&req) && path == "/" {
        api::iam::handle(&state.service, &state.auth, req, &request_id).await
    } else if path == "/v2" || path.starts_with("/v2/") {
        let registry = state.hosts.registry_for(req.headers());
        match registry_principal(&state, &registry, &req) {
            Ok(principal) => {
                let ctx = Context {
                    registry,
                    principal,
                    source_ip: peer_ip(req.extensions()),
                };
                registry::handle(&state.service, &ctx, req, &request_id).await
            }
            Err(resp) => registry::finish(*resp, req.method()),
        }
    } else {
        registry::oci_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    tracing::info!(
        target: "access",
        request_id,
        method = %method,
        path,
        status = resp.status().as_u16(),
        request_bytes,
        response_bytes = content_length(resp.headers()),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    resp
}

/// Who a registry request is from: a presigned download URL, or ECR's Basic login.
/// Anything else is answered here: 401 with ECR's challenge, or 403 for an expired token.
fn registry_principal(
    state: &AppState,
    registry: &RegistryKey,
    req: &Request<Body>,
) -> Result<Principal, Box<Response<Body>>> {
    let now = clock::now_ms() / 1000;
    if let Some(principal) = presigned(state, registry, req, now) {
        return Ok(principal);
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state
        .auth
        .registry_caller(authorization, &registry.region, now)
    {
        RegistryAuth::Allowed(p) => Ok(p),
        RegistryAuth::Expired => Err(Box::new(registry::oci_error(
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
            let challenge =
                format!("Basic realm=\"https://{host}/\",service=\"ecr.amazonaws.com\"");
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
    state: &AppState,
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
    let ok = path.contains("/blobs/sha")
        && state.auth.check_url(
            &registry.account_id,
            &registry.region,
            path,
            expires,
            signature,
            now,
        );
    ok.then(|| Principal::Root {
        account_id: registry.account_id.clone(),
    })
}

/// The connection's remote address, put in every request's extensions at accept.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client's IP address (`aws:SourceIp`).
pub fn peer_ip(ext: &axum::http::Extensions) -> Option<String> {
    ext.get::<PeerAddr>()
        .map(|p| p.0.ip().to_canonical().to_string())
}

fn content_length(h: &axum::http::HeaderMap) -> u64 {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Serve until `shutdown` resolves, then let in-flight requests finish (bounded).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(move |req: Request<Body>| handle(state.clone(), req));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    http.http1()
        .max_buf_size(MAX_HEAD_BYTES)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let http = http.http1_only();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: keep serving existing connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = app
            .clone()
            .map_request(move |req: Request<hyper::body::Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(PeerAddr(peer));
                req
            });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = http.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    Ok(())
}

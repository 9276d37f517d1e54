//! HTTP server: connection handling, request ids, access log, host → registry, and
//! dispatch to the front ends (`/v2/` registry, the AWS APIs at `/`, `/healthz`).

pub mod body;
pub mod conn;
pub mod host;
pub mod metrics_endpoint;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use host::HostRouting;

use crate::api;
use crate::audit::Received;
use crate::auth::Authenticator;
use crate::observe::metrics::metrics;
use crate::observe::{Frontend, RequestNote};
use crate::peer::PeerAddr;
use crate::public_url::Scheme;
use crate::registry;
use crate::service::Service;
use body::{BodyState, CountedBody, TrackedBody};
use conn::{Activity, Timeouts, WatchedIo};

/// Largest request head (request line + headers) accepted; larger gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A request body its handler did not need (an early 401, say) is read and discarded up
/// to this size, so the client's retry can use the same connection; a larger one closes
/// the connection, with `Connection: close` so the client knows.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Everything a request handler needs, built once at start.
pub struct AppState {
    pub service: Arc<Service>,
    pub hosts: HostRouting,
    pub auth: Authenticator,
    /// The scheme clients reach Berth with (the login realm names it).
    pub scheme: Scheme,
    /// Serve `/metrics` on this listener (to callers allowed `berth:GetMetrics`).
    pub metrics_public: bool,
    next_request: AtomicU64,
}

impl AppState {
    pub fn new(
        service: Arc<Service>,
        hosts: HostRouting,
        auth: Authenticator,
        scheme: Scheme,
    ) -> AppState {
        AppState {
            service,
            hosts,
            auth,
            scheme,
            metrics_public: true,
            next_request: AtomicU64::new(1),
        }
    }

    /// Whether `/metrics` is served on this listener.
    pub fn with_public_metrics(mut self, on: bool) -> AppState {
        self.metrics_public = on;
        self
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:08x}", std::process::id())
    }

    /// Answer one request in process, without a socket: routing, authentication, the
    /// front end, the service (its tests, in http/tests.rs, use this).
    pub async fn respond(&self, req: Request<Body>) -> Response<Body> {
        let request_id = self.request_id();
        route(self, req, &request_id).await
    }
}

/// One request as the connection hands it over: counted, with a stall timeout on its
/// body; the answer gets its request id, keeps or closes the connection, and is logged
/// once its body has been sent.
async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    activity: Arc<Activity>,
    body_timeout: Duration,
) -> Response<Body> {
    let in_flight = activity.request();
    metrics().in_flight(1);
    let started = Instant::now();
    let request_id = state.request_id();
    let method = req.method().clone();
    // The path only: query strings may carry credentials (presigned URLs).
    let path = req.uri().path().to_owned();
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let note = RequestNote::default();
    // What an audit record needs of the request, kept cheaply (copies, a refcounted
    // header value); made into text only for a request that is audited.
    let peer = req.extensions().get::<crate::peer::PeerAddr>().map(|p| p.0);
    let user_agent = req.headers().get(header::USER_AGENT).cloned();
    let arrived_ms = crate::clock::now_ms();
    let (mut parts, incoming) = req.into_parts();
    parts.extensions.insert(note.clone());
    let (tracked, body_state) = TrackedBody::new(incoming, body_timeout);
    let req = Request::from_parts(parts, Body::new(tracked));
    let mut resp = route(&state, req, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    let unread = Unread {
        declared,
        expects_continue,
    };
    let reusable = finish_request_body(&body_state, unread, body_timeout).await;
    if !reusable {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    let (frontend, operation) = note.labels();
    resp.map(|b| {
        Body::new(CountedBody::new(b, move |response_bytes| {
            drop(in_flight);
            let seconds = started.elapsed().as_secs_f64();
            let m = metrics();
            m.in_flight(-1);
            m.request(
                frontend,
                operation,
                status,
                seconds,
                (body_state.bytes(), response_bytes),
            );
            if let (Some(t), true) = (note.take_transfer(), status < 300) {
                state.service.count_transfer(t, response_bytes);
            }
            let calls = note.take_calls();
            if !calls.is_empty() {
                let received = Received {
                    request_id: request_id.clone(),
                    source_ip: peer.map(|p| p.ip().to_canonical().to_string()),
                    user_agent: user_agent.and_then(|v| v.to_str().ok().map(str::to_owned)),
                    at_ms: arrived_ms,
                };
                for call in calls {
                    state.service.audit().record(call, &received);
                }
            }
            tracing::info!(
                target: "access",
                request_id,
                method = %method,
                path,
                status,
                request_bytes = body_state.bytes(),
                response_bytes,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            );
        }))
    })
}

/// What the request said of its body, for deciding what to do with an unread rest.
struct Unread {
    /// `Content-Length`, if given.
    declared: Option<u64>,
    expects_continue: bool,
}

/// After the handler answered: whether the connection can carry another request. A
/// body the handler left unread is drained when small; not when it is declared larger,
/// nor when the client waits for `100 Continue` and has sent nothing (it sends nothing
/// more either way).
async fn finish_request_body(state: &BodyState, unread: Unread, timeout: Duration) -> bool {
    if state.finished() {
        return true;
    }
    // A body that failed (stalled, or the client went away) is not waited for again.
    if state.failed() {
        return false;
    }
    if unread.expects_continue && !state.polled() {
        return false;
    }
    let rest = unread.declared.map(|n| n.saturating_sub(state.bytes()));
    if rest.is_some_and(|n| n > DRAIN_LIMIT) {
        return false;
    }
    state.drain(DRAIN_LIMIT, timeout).await
}

/// Route one request to its front end: `/healthz`, the registry under `/v2/`, and the
/// AWS APIs at `/` (ECR's and Secrets Manager's JSON protocol, IAM and STS's Query
/// protocol).
async fn route(state: &AppState, req: Request<Body>, request_id: &str) -> Response<Body> {
    let path = req.uri().path();
    let note = RequestNote::of(req.extensions());
    if path == "/healthz" {
        note.frontend(Frontend::Health);
        Response::new(Body::from("ok\n"))
    } else if crate::console::is_console_path(path) {
        let front = crate::console::Front {
            service: &state.service,
            auth: &state.auth,
            secure: state.scheme == Scheme::Https,
            default_region: &state.hosts.default.region,
        };
        crate::console::handle(&front, req).await
    } else if path == "/metrics" {
        note.frontend(Frontend::Metrics);
        metrics_endpoint::public(state, req).await
    } else if path == "/v2" || path.starts_with("/v2/") {
        let registry = state.hosts.registry_for(req.headers());
        let front = registry::Front {
            service: &state.service,
            auth: &state.auth,
            scheme: state.scheme,
        };
        front.handle(registry, req, request_id).await
    } else if api::secretsmanager::is_secretsmanager_request(&req) {
        api::secretsmanager::handle(&state.service, &state.auth, req, request_id).await
    } else if api::signer::is_signer_request(&req) {
        api::signer::handle(&state.service, &state.auth, req, request_id).await
    } else if api::iam::is_query_request(&req) {
        api::iam::handle(&state.service, &state.auth, req, request_id).await
    } else if path == "/" || api::ecr::is_ecr_request(&req) {
        // Whatever else reaches the API's path is answered in its protocol.
        api::ecr::handle(&state.service, &state.auth, req, request_id).await
    } else {
        registry::oci_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }
}

/// Serve until `shutdown` resolves, then let in-flight requests finish (bounded).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    timeouts: Timeouts,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    // The head limit holds for every request of a connection (431). The header timeout
    // is the connection watch's (conn.rs), not hyper's.
    http.timer(TokioTimer::new())
        .max_header_size(MAX_HEAD_BYTES)
        .header_read_timeout(None);
    let http = Arc::new(http);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let connections = tokio_util::task::TaskTracker::new();
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
        let conn = Connection {
            peer,
            state: state.clone(),
            http: http.clone(),
            timeouts,
            stop: stop_rx.clone(),
        };
        connections.spawn(accept(stream, tls.clone(), conn));
    }
    // New clients are refused at once rather than left in the backlog.
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = stop_tx.send(true);
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    Ok(())
}

/// What serving one connection needs.
struct Connection {
    peer: SocketAddr,
    state: Arc<AppState>,
    http: Arc<hyper::server::conn::http1::Builder>,
    timeouts: Timeouts,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Finish accepting a connection (the TLS handshake, within the header timeout), then
/// serve it.
async fn accept(stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>, conn: Connection) {
    let Some(tls) = tls else {
        return connection(stream, conn).await;
    };
    match tokio::time::timeout(conn.timeouts.header, tls.accept(stream)).await {
        Ok(Ok(stream)) => connection(stream, conn).await,
        Ok(Err(e)) => tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %conn.peer, "TLS handshake timed out"),
    }
}

/// Serve one connection until the client closes it, it idles out, or the server stops
/// (then the request in flight, if any, finishes first).
async fn connection<S>(stream: S, conn: Connection)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        peer,
        state,
        http,
        timeouts,
        mut stop,
    } = conn;
    let activity = Activity::new();
    let io = TokioIo::new(WatchedIo::new(stream, activity.clone()));
    let svc = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            let fut = handle(state.clone(), req, activity.clone(), timeouts.body);
            async move { Ok::<_, std::convert::Infallible>(fut.await) }
        })
    };
    let conn = http.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            // No request is in flight: dropping the connection closes it, also when a
            // head is half read (hyper's graceful shutdown would wait for that request).
            () = activity.idled(timeouts.header, timeouts.idle), if !closing => return,
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! `GET /metrics`: the Prometheus exposition, on the public listener to callers allowed
//! `berth:GetMetrics` (HTTP Basic: access key id and secret), and, when configured, on
//! a listener of its own without authentication (for a private address).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use base64::Engine as _;
use hyper_util::rt::TokioIo;

use super::AppState;
use crate::observe::metrics::{metrics, CONTENT_TYPE};
use crate::service::Service;

/// The exposition, with the store's gauges refreshed when due.
pub async fn exposition(service: &Service) -> Response<Body> {
    let m = metrics();
    if m.store_gauges_due() {
        match service.meta().store_gauges().await {
            Ok(g) => m.set_store_gauges(&g),
            Err(e) => tracing::warn!(error = %e, "reading the store's gauges failed"),
        }
    }
    let mut resp = Response::new(Body::from(m.render()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp
}

/// `/metrics` on the public listener.
pub async fn public(state: &AppState, req: Request<Body>) -> Response<Body> {
    let (parts, _) = req.into_parts();
    if !state.metrics_public || !metrics().enabled() {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let Some((id, secret)) = basic_credentials(&parts.headers) else {
        let mut resp = plain(StatusCode::UNAUTHORIZED, "an access key is required\n");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"berth metrics\""),
        );
        return resp;
    };
    let principal = match state.auth.key_pair_caller(&id, &secret).await {
        Ok(p) => p,
        Err(_) => return plain(StatusCode::UNAUTHORIZED, "the access key is not valid\n"),
    };
    let ip = crate::peer::peer_ip(&parts.extensions);
    if let Err(e) = state
        .service
        .authorize_metrics(&principal, ip.as_deref())
        .await
    {
        let mut resp = Response::new(Body::from(format!("{e}\n")));
        *resp.status_mut() = StatusCode::FORBIDDEN;
        return resp;
    }
    exposition(&state.service).await
}

/// (user, password) of a Basic `Authorization` header.
fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Serve `/metrics` alone, unauthenticated, on `listener` (the private metrics address).
pub async fn serve_private(listener: tokio::net::TcpListener, service: Arc<Service>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let service = service.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        exposition(&service).await
                    } else {
                        plain(StatusCode::NOT_FOUND, "not found\n")
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

//! Each front end in process: a request through the router, no socket, no server
//! process. For the cases that need no real client (the end-to-end tests in tests/*.py
//! drive real clients); a handler is tested here in milliseconds.
//!
//! The server runs in `--dev` mode (any key pair is the default account's root, as
//! `berth serve --dev`), so requests need the shape of a signature but not a real one.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt as _;

use crate::auth::{token::TokenKey, Authenticator, KeySource};
use crate::http::{AppState, HostRouting};
use crate::meta::{MetaStore, RegistryKey};
use crate::public_url::{PublicUrl, Scheme};
use crate::service::{Options, Service};

const ACCOUNT: &str = "123456789012";

struct Server {
    state: AppState,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let sealer = crate::secrets::Sealer::from_key(&[7; 32]);
    let meta = MetaStore::open(None, dir.path(), sealer)
        .await
        .expect("metadata");
    let blobs = crate::blobs::fs::FsBlobStore::open(dir.path()).expect("blobs");
    let options = Options {
        create_on_push: false,
        public: PublicUrl::parse("http://localhost:5000").expect("url"),
        gc_grace_ms: 3_600_000,
        blob_redirect: false,
        pull_through: Default::default(),
        spool_dir: dir.path().join("spool"),
        remotes: Vec::new(),
        audit: crate::audit::AuditSettings::default(),
        usage: crate::service::UsageSettings::default(),
    };
    let service = Service::new(meta, Arc::new(blobs), options);
    let keys = KeySource {
        store: service.clone(),
        shared: false,
    };
    let auth = Authenticator::new(TokenKey::new(vec![9; 32]), true, ACCOUNT.into(), keys);
    let hosts = HostRouting {
        domain: "localhost".into(),
        default: RegistryKey {
            account_id: ACCOUNT.parse().expect("an account id"),
            region: "us-east-1".parse().expect("a region"),
        },
    };
    Server {
        state: AppState::new(service, hosts, auth, Scheme::Http),
        _dir: dir,
    }
}

/// The headers of a SigV4-signed request (the signature itself is not checked in dev).
fn signed(builder: axum::http::request::Builder, service: &str) -> axum::http::request::Builder {
    // 2026-12-03T04:35:00Z → 20261203T043500Z
    let now = crate::clock::now_ms() / 1000;
    let stamp: String = crate::iam::context::iso8601(now)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let date = &stamp[..8];
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{date}/us-east-1/{service}/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    builder
        .header(header::HOST, "localhost:5000")
        .header("x-amz-date", stamp)
        .header(header::AUTHORIZATION, auth)
}

async fn ecr(s: &Server, op: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    let req = signed(Request::post("/"), "ecr")
        .header(
            "x-amz-target",
            format!("AmazonEC2ContainerRegistry_V20150921.{op}"),
        )
        .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = s.state.respond(req).await;
    let status = resp.status();
    (
        status,
        serde_json::from_slice(&bytes(resp).await).expect("json"),
    )
}

async fn bytes(resp: Response<Body>) -> Vec<u8> {
    resp.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

#[tokio::test]
async fn ecr_creates_and_describes_a_repository() {
    let s = server().await;
    let (status, out) = ecr(
        &s,
        "CreateRepository",
        serde_json::json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out["repository"]["repositoryArn"],
        "arn:aws:ecr:us-east-1:123456789012:repository/team/app"
    );
    let (status, out) = ecr(&s, "DescribeRepositories", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["repositories"][0]["repositoryName"], "team/app");
    let (status, out) = ecr(
        &s,
        "CreateRepository",
        serde_json::json!({"repositoryName": "team/app"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(out["__type"], "RepositoryAlreadyExistsException");
}

#[tokio::test]
async fn ecr_answers_unknown_and_not_yet_operations_from_the_table() {
    let s = server().await;
    let (status, out) = ecr(&s, "MakeCoffee", serde_json::json!({})).await;
    assert_eq!(
        (status, out["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("UnknownOperationException"))
    );
    for op in crate::api::ecr::OPERATIONS
        .iter()
        .filter(|o| !o.implemented)
    {
        let (status, out) = ecr(&s, op.name, serde_json::json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", op.name);
        assert_eq!(out["__type"], "ValidationException");
        assert_eq!(
            out["message"],
            format!("Berth does not implement ecr:{} yet", op.name)
        );
    }
}

#[tokio::test]
async fn ecr_validates_tag_mutability_once_with_ecr_words() {
    let s = server().await;
    let (status, out) = ecr(
        &s,
        "CreateRepository",
        serde_json::json!({"repositoryName": "app", "imageTagMutability": "MUTABLE",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "x"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = out["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("only allowed with IMMUTABLE_WITH_EXCLUSION"),
        "{out}"
    );
}

#[tokio::test]
async fn iam_answers_in_its_query_protocol() {
    let s = server().await;
    let req = signed(Request::post("/"), "sts")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("Action=GetCallerIdentity&Version=2011-06-15"))
        .expect("request");
    let resp = s.state.respond(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(bytes(resp).await).expect("utf-8");
    assert!(
        text.contains("<Arn>arn:aws:iam::123456789012:root</Arn>"),
        "{text}"
    );
}

#[tokio::test]
async fn the_registry_challenges_then_serves_a_logged_in_client() {
    let s = server().await;
    let req = Request::get("/v2/")
        .header(header::HOST, "localhost:5000")
        .body(Body::empty())
        .expect("request");
    let resp = s.state.respond(req).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"http://localhost:5000/\",service=\"ecr.amazonaws.com\""
    );
    // --dev: any password of user AWS.
    let basic = "Basic QVdTOmFueQ==";
    let get = |path: &str| {
        Request::get(path)
            .header(header::HOST, "localhost:5000")
            .header(header::AUTHORIZATION, basic)
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(s.state.respond(get("/v2/")).await.status(), StatusCode::OK);
    let resp = s.state.respond(get("/v2/nowhere/manifests/latest")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = serde_json::from_slice(&bytes(resp).await).expect("json");
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN");
}

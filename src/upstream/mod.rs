//! The pull-through cache's client to upstream registries: the OCI distribution API
//! as a puller speaks it, with the authentication registries use: none, Basic, and
//! the Bearer-token flow of Docker Hub, GHCR and Quay (a `401` names a token realm;
//! the token, fetched with the rule's credentials, is kept until it expires).
//!
//! Which upstreams exist, and where Berth connects for each, is in [`registries`].

mod challenge;
mod push;
pub mod registries;
pub mod remotes;

pub use push::PushAuth;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};

use crate::blobs::ByteStream;
use crate::oci::manifest::{self, MAX_MANIFEST_BYTES};
use crate::oci::Digest;
use challenge::Challenge;

/// Credentials for an upstream, from the secret a rule names.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// Where one rule's requests go, and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    /// `scheme://host[:port]`, without a trailing slash.
    pub endpoint: String,
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream registry has no such image or layer")]
    NotFound,
    #[error("the upstream registry refused the credentials: {0}")]
    AccessDenied(String),
    #[error("the upstream registry asks to slow down (429)")]
    TooManyRequests,
    #[error("the upstream registry is unavailable: {0}")]
    Unavailable(String),
    #[error("the upstream registry's answer is invalid: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, UpstreamError>;

/// A manifest as the upstream served it, its digest checked.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub media_type: String,
    pub body: Bytes,
    pub digest: Digest,
}

/// Every manifest type Berth stores, for the upstream to choose from.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A token is renewed this long before the upstream said it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// How long a token lives when the upstream does not say (the distribution spec's 60 s).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);

/// A token is kept for the credentials that got it: another rule naming the same
/// upstream and user with another secret gets its own.
#[derive(Hash, PartialEq, Eq)]
struct TokenKey {
    endpoint: String,
    credentials: Option<(String, String)>,
    scope: String,
}

pub struct Client {
    http: reqwest::Client,
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!(
                "berth/",
                env!("CARGO_PKG_VERSION"),
                " (pull-through cache)"
            ))
            .build()
            .unwrap_or_default();
        Client {
            http,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client itself (webhook posts share its connection pool).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Check that the upstream answers and takes the credentials (`GET /v2/`).
    pub async fn check(&self, target: &Target) -> Result<()> {
        let resp = self.send(target, Method::GET, "/v2/", "", None).await?;
        drop(resp);
        Ok(())
    }

    /// A manifest by tag or digest, its digest verified.
    pub async fn manifest(
        &self,
        target: &Target,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let resp = self
            .send(
                target,
                Method::GET,
                &path,
                &pull_scope(repository),
                Some(ACCEPT),
            )
            .await?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| manifest::essence(v).to_owned())
            .unwrap_or_default();
        let announced = announced_digest(resp.headers());
        let body = read_limited(resp, MAX_MANIFEST_BYTES).await?;
        let digest = match reference.parse::<Digest>() {
            Ok(wanted) => {
                if wanted.algorithm().digest(&body) != wanted {
                    return Err(UpstreamError::Invalid(format!(
                        "the manifest served for {wanted} has another digest"
                    )));
                }
                wanted
            }
            Err(_) => {
                let computed = Digest::sha256_of(&body);
                if announced.as_ref().is_some_and(|a| *a != computed) {
                    return Err(UpstreamError::Invalid(
                        "Docker-Content-Digest does not match the manifest".into(),
                    ));
                }
                computed
            }
        };
        Ok(FetchedManifest {
            media_type,
            body,
            digest,
        })
    }

    /// The digest a tag names now (a `HEAD`, which Docker Hub does not count as a pull).
    pub async fn manifest_digest(
        &self,
        target: &Target,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Digest>> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let resp = self
            .send(
                target,
                Method::HEAD,
                &path,
                &pull_scope(repository),
                Some(ACCEPT),
            )
            .await?;
        Ok(announced_digest(resp.headers()))
    }

    /// The digests of the manifests that name `subject` as theirs: from the referrers
    /// API, else from the fallback tag (`sha256-<hex>`) clients push where there is
    /// no such API. Empty if the upstream has neither.
    pub async fn referrers(
        &self,
        target: &Target,
        repository: &str,
        subject: &Digest,
    ) -> Result<Vec<Digest>> {
        const INDEX: &str = "application/vnd.oci.image.index.v1+json";
        let scope = pull_scope(repository);
        let path = format!("/v2/{repository}/referrers/{subject}");
        let body = match self
            .send(target, Method::GET, &path, &scope, Some(INDEX))
            .await
        {
            Ok(resp) => read_limited(resp, MAX_MANIFEST_BYTES).await?,
            Err(UpstreamError::NotFound) => {
                let fallback = format!(
                    "/v2/{repository}/manifests/{}-{}",
                    subject.algorithm().name(),
                    subject.hex()
                );
                match self
                    .send(target, Method::GET, &fallback, &scope, Some(INDEX))
                    .await
                {
                    Ok(resp) => read_limited(resp, MAX_MANIFEST_BYTES).await?,
                    Err(UpstreamError::NotFound) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        #[derive(serde::Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        #[derive(serde::Deserialize)]
        struct Descriptor {
            digest: String,
        }
        let index: Index = serde_json::from_slice(&body)
            .map_err(|_| UpstreamError::Invalid("the referrers list is not an index".into()))?;
        Ok(index
            .manifests
            .iter()
            .filter_map(|d| d.digest.parse().ok())
            .collect())
    }

    /// A blob's bytes as they arrive (not verified here: the caller hashes them) and
    /// its length when the upstream says.
    pub async fn blob(
        &self,
        target: &Target,
        repository: &str,
        digest: &Digest,
    ) -> Result<(Option<u64>, ByteStream)> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let resp = self
            .send(target, Method::GET, &path, &pull_scope(repository), None)
            .await?;
        let length = resp.content_length();
        let stream = resp
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other));
        Ok((length, Box::pin(stream)))
    }

    /// Send a request, answering one authentication challenge if the upstream sends it.
    async fn send(
        &self,
        target: &Target,
        method: Method,
        path: &str,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{path}", target.endpoint);
        let key = TokenKey {
            endpoint: target.endpoint.clone(),
            credentials: target
                .credentials
                .as_ref()
                .map(|c| (c.username.clone(), c.secret.clone())),
            scope: scope.to_owned(),
        };
        let cached = self.cached_token(&key);
        let auth = cached.map(|t| format!("Bearer {t}"));
        let resp = self.request(&method, &url, accept, auth.as_deref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return check_status(resp);
        }
        let challenge = challenge::parse(
            resp.headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let auth = match challenge {
            Some(Challenge::Basic) => match &target.credentials {
                Some(c) => basic(c),
                None => {
                    return Err(UpstreamError::AccessDenied(
                        "the upstream requires credentials".into(),
                    ))
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let scope = asked.unwrap_or_else(|| scope.to_owned());
                let token = self
                    .fetch_token(target, &realm, service.as_deref(), &scope)
                    .await?;
                self.keep_token(key, &token);
                format!("Bearer {}", token.0)
            }
            None => {
                return Err(UpstreamError::AccessDenied(
                    "the upstream refused the request without a challenge Berth can answer".into(),
                ))
            }
        };
        let resp = self.request(&method, &url, accept, Some(&auth)).await?;
        check_status(resp)
    }

    async fn request(
        &self,
        method: &Method,
        url: &str,
        accept: Option<&str>,
        auth: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut req = self.http.request(method.clone(), url);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        req.send()
            .await
            .map_err(|e| UpstreamError::Unavailable(without_url(&e)))
    }

    /// A token from the challenge's realm, asked for with the rule's credentials.
    async fn fetch_token(
        &self,
        target: &Target,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration)> {
        // The credentials go only where the upstream's own scheme would take them.
        if realm.starts_with("http://") && !target.endpoint.starts_with("http://") {
            return Err(UpstreamError::Invalid(
                "the upstream names a token service over plain HTTP".into(),
            ));
        }
        if !realm.starts_with("http://") && !realm.starts_with("https://") {
            return Err(UpstreamError::Invalid(
                "the upstream names a token service that is not a URL".into(),
            ));
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        if !scope.is_empty() {
            query.push(("scope", scope));
        }
        let mut req = self.http.get(realm).query(&query);
        if let Some(c) = &target.credentials {
            req = req.header(header::AUTHORIZATION, basic(c));
        }
        let resp = req.send().await.map_err(|e| {
            UpstreamError::Unavailable(format!("token service: {}", without_url(&e)))
        })?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(UpstreamError::AccessDenied(
                    "the token service refused the credentials".into(),
                ))
            }
            StatusCode::TOO_MANY_REQUESTS => return Err(UpstreamError::TooManyRequests),
            s => {
                return Err(UpstreamError::Unavailable(format!(
                    "token service answered {s}"
                )))
            }
        }
        let body = read_limited(resp, 1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| UpstreamError::Invalid("the token service's answer is not JSON".into()))?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpstreamError::Invalid("the token service sent no token".into()))?;
        let life = answer
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFE, Duration::from_secs);
        Ok((token, life))
    }

    fn cached_token(&self, key: &TokenKey) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        let (token, until) = tokens.get(key)?;
        (Instant::now() < *until).then(|| token.clone())
    }

    fn keep_token(&self, key: TokenKey, (token, life): &(String, Duration)) {
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() > 10_000 {
                tokens.clear();
            }
            let until = Instant::now() + life.saturating_sub(TOKEN_MARGIN);
            tokens.insert(key, (token.clone(), until));
        }
    }
}

fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

fn basic(c: &Credentials) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", c.username, c.secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn announced_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn check_status(resp: reqwest::Response) -> Result<reqwest::Response> {
    match resp.status() {
        s if s.is_success() => Ok(resp),
        StatusCode::NOT_FOUND => Err(UpstreamError::NotFound),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(UpstreamError::AccessDenied(
            format!("the upstream answered {}", resp.status()),
        )),
        StatusCode::TOO_MANY_REQUESTS => Err(UpstreamError::TooManyRequests),
        s => Err(UpstreamError::Unavailable(format!(
            "the upstream answered {s}"
        ))),
    }
}

/// A body of at most `limit` bytes.
async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Bytes> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(UpstreamError::Invalid(format!(
            "the answer is larger than {limit} bytes"
        )));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| UpstreamError::Unavailable(without_url(&e)))?;
        if out.len() + chunk.len() > limit {
            return Err(UpstreamError::Invalid(format!(
                "the answer is larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// A transport error without its URL (a realm's query could carry anything).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_owned(),
    }
}

/// The pull-through cache's deployment settings (`[pull_through_cache]`).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub upstreams: registries::Upstreams,
    /// How long a cached tag is served before the upstream is asked again.
    pub tag_recheck: Duration,
    /// Cached images not pulled for this many days are removed; `None`: kept.
    pub expire_unpulled_days: Option<u32>,
}

/// ECR re-checks a cached tag against its upstream at most once every 24 hours.
pub const DEFAULT_TAG_RECHECK: Duration = Duration::from_secs(24 * 3600);

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            upstreams: registries::Upstreams::default(),
            tag_recheck: DEFAULT_TAG_RECHECK,
            expire_unpulled_days: None,
        }
    }
}

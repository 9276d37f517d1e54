//! The client as a pusher: remote replication sends images to another registry (any
//! OCI registry, or another Berth or ECR) with the distribution API's push: blob
//! existence, a monolithic upload streamed from Berth's store, the manifest. The
//! authorization is settled once per image (`GET /v2/`, then Basic or a Bearer token
//! with `pull,push` scope) and reused for its requests.

use bytes::Bytes;
use reqwest::header;
use reqwest::{Method, StatusCode};

use super::challenge::{self, Challenge};
use super::{basic, check_status, without_url, Client, Result, Target, UpstreamError};
use crate::blobs::ByteStream;

/// Sending a request, its failure as an upstream error.
trait Sent {
    async fn sent(self) -> Result<reqwest::Response>;
}

impl Sent for reqwest::RequestBuilder {
    async fn sent(self) -> Result<reqwest::Response> {
        self.send()
            .await
            .map_err(|e| UpstreamError::Unavailable(without_url(&e)))
    }
}

/// The `Authorization` a push sends (none when the registry asks for none).
#[derive(Debug, Clone)]
pub struct PushAuth(Option<String>);

impl Client {
    /// Settle how to authorize pushes to `repository` at `target`.
    pub async fn push_auth(&self, target: &Target, repository: &str) -> Result<PushAuth> {
        let url = format!("{}/v2/", target.endpoint);
        let resp = self.request(&Method::GET, &url, None, None).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            check_status(resp)?;
            return Ok(PushAuth(None));
        }
        let challenge = challenge::parse(
            resp.headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        match challenge {
            Some(Challenge::Basic) => match &target.credentials {
                Some(c) => Ok(PushAuth(Some(basic(c)))),
                None => Err(UpstreamError::AccessDenied(
                    "the remote registry requires credentials".into(),
                )),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let scope = format!("repository:{repository}:pull,push");
                let (token, _) = self
                    .fetch_token(target, &realm, service.as_deref(), &scope)
                    .await?;
                Ok(PushAuth(Some(format!("Bearer {token}"))))
            }
            None => Err(UpstreamError::AccessDenied(
                "the remote registry refused without a challenge Berth can answer".into(),
            )),
        }
    }

    fn push_request(&self, auth: &PushAuth, method: Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &auth.0 {
            Some(a) => req.header(header::AUTHORIZATION, a),
            None => req,
        }
    }

    async fn present(&self, auth: &PushAuth, url: &str, accept: Option<&str>) -> Result<bool> {
        let mut req = self.push_request(auth, Method::HEAD, url);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = req.sent().await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => check_status(resp).map(|_| false),
        }
    }

    pub async fn blob_present(
        &self,
        target: &Target,
        auth: &PushAuth,
        repository: &str,
        digest: &str,
    ) -> Result<bool> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", target.endpoint);
        self.present(auth, &url, None).await
    }

    pub async fn manifest_present(
        &self,
        target: &Target,
        auth: &PushAuth,
        repository: &str,
        reference: &str,
        media_type: &str,
    ) -> Result<bool> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", target.endpoint);
        self.present(auth, &url, Some(media_type)).await
    }

    /// Upload one blob in two requests: open a session, then send every byte with the
    /// digest (the registry checks it).
    pub async fn push_blob(
        &self,
        target: &Target,
        auth: &PushAuth,
        repository: &str,
        digest: &str,
        size: u64,
        body: ByteStream,
    ) -> Result<()> {
        let url = format!("{}/v2/{repository}/blobs/uploads/", target.endpoint);
        let resp = self
            .push_request(auth, Method::POST, &url)
            .header(header::CONTENT_LENGTH, "0")
            .sent()
            .await?;
        let resp = check_status(resp)?;
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| UpstreamError::Invalid("an upload without a Location".into()))?;
        let mut upload = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", target.endpoint)
        };
        upload.push(if upload.contains('?') { '&' } else { '?' });
        upload.push_str("digest=");
        upload.push_str(digest);
        let resp = self
            .push_request(auth, Method::PUT, &upload)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .sent()
            .await?;
        check_status(resp).map(|_| ())
    }

    pub async fn push_manifest(
        &self,
        target: &Target,
        auth: &PushAuth,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<()> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", target.endpoint);
        let resp = self
            .push_request(auth, Method::PUT, &url)
            .header(header::CONTENT_TYPE, media_type)
            .body(body)
            .sent()
            .await?;
        check_status(resp).map(|_| ())
    }

    /// A registry password from another Berth's (or ECR's) GetAuthorizationToken,
    /// asked for with AWS access keys (SigV4, service `ecr`, in `region`).
    pub async fn ecr_login(
        &self,
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<String> {
        let body = b"{}";
        let host = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, h)| h)
            .trim_end_matches('/')
            .to_owned();
        let amz_date = crate::auth::sigv4::format_amz_date(crate::clock::now_ms() / 1000);
        let target = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
        let headers = vec![
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            ("host".to_owned(), host),
            ("x-amz-date".to_owned(), amz_date.clone()),
            ("x-amz-target".to_owned(), target.to_owned()),
        ];
        use sha2::Digest as _;
        let hash = hex::encode(sha2::Sha256::digest(body));
        let parts = crate::auth::sigv4::RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: &hash,
        };
        let authorization = crate::auth::sigv4::authorization_header(
            &parts,
            access_key_id,
            secret_access_key,
            region,
            "ecr",
            &amz_date,
        );
        let resp = self
            .http
            .post(format!("{}/", endpoint.trim_end_matches('/')))
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-date", amz_date)
            .header("x-amz-target", target)
            .header(header::AUTHORIZATION, authorization)
            .body(body.to_vec())
            .sent()
            .await?;
        let resp = check_status(resp)?;
        let text = resp
            .bytes()
            .await
            .map_err(|e| UpstreamError::Unavailable(without_url(&e)))?;
        let out: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let token = out["authorizationData"][0]["authorizationToken"]
            .as_str()
            .ok_or_else(|| UpstreamError::Invalid("no authorizationToken".into()))?;
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let text = String::from_utf8(decoded).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        text.strip_prefix("AWS:")
            .map(str::to_owned)
            .ok_or_else(|| UpstreamError::Invalid("an authorization token without AWS:".into()))
    }
}

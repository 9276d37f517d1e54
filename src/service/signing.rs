//! Managed signing: a registry's signing configuration (PutSigningConfiguration,
//! GetSigningConfiguration, DeleteSigningConfiguration), the push's signing requests,
//! the job that signs (outbox events `sign_requested`), and DescribeImageSigningStatus.
//!
//! A push to a repository a rule matches asks for one signature per rule's profile,
//! recorded in the push's own transaction: IN_PROGRESS, or FAILED at once when the
//! pusher may not `signer:SignPayload` with the profile (as on ECR). The signing job
//! then signs the image's descriptor (a Notary Project JWS envelope) and stores the
//! signature as a referrer of the image, so it is listed by ListImageReferrers and the
//! referrers API and replicates with the image.

use serde::{Deserialize, Serialize};

use super::signer::parse_profile_arn;
use super::*;
use crate::meta::{DocumentKind, Event, EventKind, SigningRequest, SigningRow};
use crate::signing::{self, SIGNATURE_MANIFEST_MEDIA_TYPE};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningConfig {
    pub rules: Vec<SigningRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningRule {
    pub signing_profile_arn: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repository_filters: Vec<SigningFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningFilter {
    pub filter: String,
    pub filter_type: String,
}

impl SigningConfig {
    /// The profiles that sign images of `repository`, each once, in rule order.
    pub fn profiles_for(&self, repository: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            let matches = r.repository_filters.is_empty()
                || r.repository_filters
                    .iter()
                    .any(|f| crate::oci::name::tag_pattern_matches(&f.filter, repository));
            if matches && !out.contains(&r.signing_profile_arn) {
                out.push(r.signing_profile_arn.clone());
            }
        }
        out
    }
}

/// Berth's signing failure codes (ECR documents none; see docs/compatibility.md).
pub const PERMISSION_DENIED: &str = "SIGNING_PERMISSION_DENIED";
pub const PROFILE_NOT_FOUND: &str = "SIGNING_PROFILE_NOT_FOUND";
pub const PROFILE_CANCELED: &str = "SIGNING_PROFILE_CANCELED";
pub const SIGNING_ERROR: &str = "SIGNING_ERROR";

fn config_not_found(ctx: &Context) -> Error {
    Error::ecr(
        EcrErrorKind::SigningConfigurationNotFound,
        format!(
            "The signing configuration for the registry with id '{}' was not found",
            ctx.registry.account_id
        ),
    )
}

impl Service {
    pub async fn put_signing_configuration(
        &self,
        ctx: &Context,
        config: SigningConfig,
    ) -> Result<SigningConfig> {
        self.authorize_registry(ctx, Action::PutSigningConfiguration)
            .await?;
        let body = serde_json::to_string(&config)
            .map_err(|e| Error::Internal(format!("signing configuration: {e}")))?;
        self.meta
            .put_registry_document(&ctx.registry, DocumentKind::Signing, &body, clock::now_ms())
            .await?;
        Ok(config)
    }

    pub async fn get_signing_configuration(&self, ctx: &Context) -> Result<SigningConfig> {
        self.authorize_registry(ctx, Action::GetSigningConfiguration)
            .await?;
        match self
            .meta
            .registry_document(&ctx.registry, DocumentKind::Signing)
            .await?
        {
            Some(body) => parse_config(&body),
            None => Err(config_not_found(ctx)),
        }
    }

    pub async fn delete_signing_configuration(&self, ctx: &Context) -> Result<SigningConfig> {
        self.authorize_registry(ctx, Action::DeleteSigningConfiguration)
            .await?;
        match self
            .meta
            .delete_registry_document(&ctx.registry, DocumentKind::Signing)
            .await?
        {
            Some(body) => parse_config(&body),
            None => Err(config_not_found(ctx)),
        }
    }

    /// A registry's configuration (empty without one), cached.
    async fn signing_config(&self, reg: &RegistryKey) -> Result<Arc<SigningConfig>> {
        if let Some(c) = self.cache.signing(reg) {
            return Ok(c);
        }
        let seen = self.cache.epoch();
        let config = match self
            .meta
            .registry_document(reg, DocumentKind::Signing)
            .await?
        {
            Some(body) => parse_config(&body)?,
            None => SigningConfig::default(),
        };
        let config = Arc::new(config);
        self.cache.put_signing(seen, reg, config.clone());
        Ok(config)
    }

    /// What a client's push of a new image asks of the signing job: one request per
    /// profile whose rule matches, refused at once when the pusher may not sign with
    /// it. Referrers (signatures among them) are not signed.
    pub(super) async fn signing_requests(
        &self,
        ctx: &Context,
        repository: &RepositoryName,
        has_subject: bool,
    ) -> Result<Vec<SigningRequest>> {
        if has_subject || ctx.principal.is_system() {
            return Ok(Vec::new());
        }
        let config = self.signing_config(&ctx.registry).await?;
        let mut out = Vec::new();
        for arn in config.profiles_for(repository.as_str()) {
            let account = parse_profile_arn(&arn)
                .map(|(reg, _)| reg.account_id.to_string())
                .unwrap_or_else(|| ctx.registry.account_id.to_string());
            let allowed = self
                .authorize_iam(
                    &ctx.principal,
                    ctx.source_ip.as_deref(),
                    "signer:SignPayload",
                    &arn,
                    &account,
                    None,
                )
                .await;
            let refused = match allowed {
                Ok(()) => None,
                Err(Error::AccessDenied(why)) => Some((PERMISSION_DENIED.to_owned(), why)),
                Err(e) => return Err(e),
            };
            out.push(SigningRequest {
                profile_arn: arn,
                refused,
            });
        }
        Ok(out)
    }

    pub async fn describe_image_signing_status(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &ImageId,
    ) -> Result<(ImageId, Vec<SigningRow>)> {
        let (repo, shown) = self
            .image_for_status(ctx, name, id, Action::DescribeImageSigningStatus)
            .await?;
        let digest = shown.digest.as_deref().unwrap_or_default();
        let rows = self.meta.image_signings(repo.id, digest).await?;
        Ok((shown, rows))
    }

    /// The signing job's work for one outbox event: every requested signature of the
    /// image still in progress is made and stored. Idempotent: a signature stored twice
    /// is one more referrer at worst, and a finished request is not redone.
    pub async fn sign_for_event(&self, event: &Event) -> Result<()> {
        if event.kind != EventKind::SignRequested {
            return Ok(());
        }
        let Ok(name) = event.repository_name.parse::<RepositoryName>() else {
            return Ok(());
        };
        let Some(repo) = self
            .meta
            .repository(&event.registry, &name)
            .await?
            .filter(|r| r.id == event.repository_id)
        else {
            return Ok(());
        };
        let pending: Vec<SigningRow> = self
            .meta
            .image_signings(repo.id, &event.digest)
            .await?
            .into_iter()
            .filter(|r| r.status == "IN_PROGRESS")
            .collect();
        for row in pending {
            let outcome = self
                .sign_image(&event.registry, &repo, &event.digest, &row.profile_arn)
                .await;
            let failure = match &outcome {
                Ok(None) => None,
                Ok(Some((code, why))) => Some((*code, why.as_str())),
                Err(Error::Busy | Error::StorageFull) => return outcome.map(|_| ()),
                Err(e) => {
                    tracing::warn!(error = %e, digest = event.digest, "signing failed");
                    Some((SIGNING_ERROR, "Berth could not store the signature"))
                }
            };
            self.meta
                .finish_signing(
                    repo.id,
                    &event.digest,
                    &row.profile_arn,
                    failure,
                    clock::now_ms(),
                )
                .await?;
        }
        Ok(())
    }

    /// Sign one image with one profile and store the signature: `Some` failure when
    /// the profile cannot sign.
    async fn sign_image(
        &self,
        registry: &RegistryKey,
        repo: &Repository,
        digest: &str,
        profile_arn: &str,
    ) -> Result<Option<(&'static str, String)>> {
        let profile = match parse_profile_arn(profile_arn) {
            Some((reg, name)) => self.meta.signing_profile(&reg, &name).await?,
            None => None,
        };
        let Some(profile) = profile else {
            return Ok(Some((
                PROFILE_NOT_FOUND,
                format!("The signing profile {profile_arn} does not exist"),
            )));
        };
        if profile.status != "Active" {
            return Ok(Some((
                PROFILE_CANCELED,
                format!("The signing profile {profile_arn} is canceled"),
            )));
        }
        let Ok(d) = digest.parse::<Digest>() else {
            return Ok(None);
        };
        let Some(image) = self.meta.manifest_by_digest(repo.id, &d).await? else {
            return Ok(None); // deleted since: nothing to sign
        };
        let ca = self.signing_ca().await?;
        let key = signing::KeyAndCert {
            key_pem: profile.key_pem.clone(),
            cert_pem: profile.cert_pem.clone(),
        };
        let target = signing::Target {
            media_type: &image.media_type,
            digest,
            size: image.body.len() as u64,
        };
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let sig = signing::sign(&key, &ca.cert_pem, &target, &now, "Berth managed signing")
            .map_err(|e| Error::Internal(e.to_string()))?;
        let ctx = Context {
            registry: registry.clone(),
            principal: Principal::system("managed signing"),
            source_ip: None,
        };
        for blob in [signing::EMPTY_CONFIG.to_vec(), sig.envelope.clone()] {
            let d = Digest::sha256_of(&blob);
            let body: blobs::ByteStream = Box::pin(futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(Bytes::from(blob))
            }));
            self.upload_blob(&ctx, &repo.name, &d, body).await?;
        }
        let manifest = Bytes::from(sig.manifest);
        let sig_digest = Digest::sha256_of(&manifest);
        self.store_manifest(
            &ctx,
            &repo.name,
            &Reference::Digest(sig_digest.clone()),
            Some(SIGNATURE_MANIFEST_MEDIA_TYPE),
            &manifest,
            PushPath::Signing,
        )
        .await?;
        tracing::info!(repository = %repo.name, digest, signature = %sig_digest, profile = profile_arn, "image signed");
        Ok(None)
    }
}

fn parse_config(body: &str) -> Result<SigningConfig> {
    serde_json::from_str(body)
        .map_err(|e| Error::Internal(format!("stored signing configuration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_wildcard_and_name_each_profile_once() {
        let rule = |arn: &str, filters: &[&str]| SigningRule {
            signing_profile_arn: arn.into(),
            repository_filters: filters
                .iter()
                .map(|f| SigningFilter {
                    filter: (*f).into(),
                    filter_type: "WILDCARD_MATCH".into(),
                })
                .collect(),
        };
        let c = SigningConfig {
            rules: vec![
                rule("a", &["prod/*"]),
                rule("b", &["*/api"]),
                rule("a", &[]),
                rule("c", &["*prod*"]),
            ],
        };
        assert_eq!(c.profiles_for("prod/api"), ["a", "b", "c"]);
        assert_eq!(c.profiles_for("dev/web"), ["a"]);
        assert_eq!(c.profiles_for("myprod"), ["a", "c"]);
    }
}

//! Signing profiles: the small part of AWS Signer that ECR's managed signing needs
//! (PutSigningProfile, GetSigningProfile, ListSigningProfiles, CancelSigningProfile),
//! each authorized as its `signer:` action on the profile's ARN. A profile's key is
//! generated here and sealed in the metadata store; its certificate is issued by the
//! deployment's signing CA (a server secret, so every node signs with the same chain).

use super::*;
use crate::meta::ProfileRow;
use crate::signing::{self, KeyAndCert, NOTATION_PLATFORM};

/// AWS Signer's errors, by exception name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerErrorKind {
    ResourceNotFound,
    Conflict,
    Validation,
}

impl SignerErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            SignerErrorKind::ResourceNotFound => "ResourceNotFoundException",
            SignerErrorKind::Conflict => "ConflictException",
            SignerErrorKind::Validation => "ValidationException",
        }
    }
}

fn err(kind: SignerErrorKind, message: impl Into<String>) -> Error {
    Error::Signer(kind, message.into())
}

/// The server secret the signing CA is kept in.
const CA_SECRET: &str = "signing-ca";
/// AWS Signer's default signature validity: 135 months.
pub const DEFAULT_VALIDITY: (i64, ValidityUnit) = (135, ValidityUnit::Months);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityUnit {
    Days,
    Months,
    Years,
}

impl ValidityUnit {
    pub fn parse(s: &str) -> Option<ValidityUnit> {
        match s {
            "DAYS" => Some(ValidityUnit::Days),
            "MONTHS" => Some(ValidityUnit::Months),
            "YEARS" => Some(ValidityUnit::Years),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ValidityUnit::Days => "DAYS",
            ValidityUnit::Months => "MONTHS",
            ValidityUnit::Years => "YEARS",
        }
    }

    fn seconds(self, n: i64) -> i64 {
        let day = 86_400;
        n.saturating_mul(match self {
            ValidityUnit::Days => day,
            ValidityUnit::Months => 30 * day,
            ValidityUnit::Years => 365 * day,
        })
    }
}

/// A profile's ARN: `arn:aws:signer:<region>:<account>:/signing-profiles/<name>`.
pub fn profile_arn(reg: &RegistryKey, name: &str) -> String {
    format!(
        "arn:aws:signer:{}:{}:/signing-profiles/{name}",
        reg.region, reg.account_id
    )
}

/// The registry and name a profile ARN names, if it is one.
pub fn parse_profile_arn(arn: &str) -> Option<(RegistryKey, String)> {
    let rest = arn.strip_prefix("arn:aws:signer:")?;
    let (region, rest) = rest.split_once(':')?;
    let (account, name) = rest.split_once(":/signing-profiles/")?;
    Some((
        RegistryKey {
            account_id: crate::aws::AccountId::parse(account)?,
            region: crate::aws::Region::parse(region)?,
        },
        name.to_owned(),
    ))
}

/// A profile name: 2 to 64 letters, digits and underscores.
pub fn valid_profile_name(name: &str) -> bool {
    (2..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Service {
    async fn authorize_signer(&self, ctx: &Context, action: &str, resource: &str) -> Result<()> {
        self.authorize_iam(
            &ctx.principal,
            ctx.source_ip.as_deref(),
            &format!("signer:{action}"),
            resource,
            ctx.registry.account_id.as_str(),
            None,
        )
        .await
    }

    /// The deployment's signing CA, created on first use (the first node's wins) and
    /// kept by this process once read.
    pub async fn signing_ca(&self) -> Result<KeyAndCert> {
        self.signing_ca
            .get_or_try_init(|| self.load_signing_ca())
            .await
            .cloned()
    }

    async fn load_signing_ca(&self) -> Result<KeyAndCert> {
        let generate = || {
            let ca = signing::new_ca().unwrap_or_else(|e| panic!("creating the signing CA: {e}"));
            serde_json::to_vec(&serde_json::json!({ "key": ca.key_pem, "cert": ca.cert_pem }))
                .unwrap_or_default()
        };
        let stored = self
            .meta
            .server_secret(CA_SECRET, generate, clock::now_ms())
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&stored)
            .map_err(|e| Error::Internal(format!("the stored signing CA: {e}")))?;
        match (v["key"].as_str(), v["cert"].as_str()) {
            (Some(key), Some(cert)) => Ok(KeyAndCert {
                key_pem: key.to_owned(),
                cert_pem: cert.to_owned(),
            }),
            _ => Err(Error::Internal(
                "the stored signing CA is incomplete".into(),
            )),
        }
    }

    pub async fn put_signing_profile(
        &self,
        ctx: &Context,
        name: &str,
        platform_id: &str,
        validity: (i64, ValidityUnit),
    ) -> Result<ProfileRow> {
        let arn = profile_arn(&ctx.registry, name);
        self.authorize_signer(ctx, "PutSigningProfile", &arn)
            .await?;
        if platform_id != NOTATION_PLATFORM {
            return Err(err(
                SignerErrorKind::Validation,
                format!(
                    "Berth signs with the platform {NOTATION_PLATFORM} only, not '{platform_id}'"
                ),
            ));
        }
        if validity.0 < 1 {
            return Err(err(
                SignerErrorKind::Validation,
                "signatureValidityPeriod.value must be at least 1",
            ));
        }
        let now = clock::now_ms() / 1000;
        let ca = self.signing_ca().await?;
        let cert = signing::issue_profile_cert(
            &ca,
            &arn,
            now - 3600,
            now + validity.1.seconds(validity.0),
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let version: String = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let row = ProfileRow {
            name: name.to_owned(),
            version,
            platform_id: platform_id.to_owned(),
            status: "Active".into(),
            validity_value: validity.0,
            validity_type: validity.1.as_str().into(),
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
            created_at: clock::now_ms(),
        };
        if !self
            .meta
            .insert_signing_profile(&ctx.registry, &row)
            .await?
        {
            return Err(err(
                SignerErrorKind::Conflict,
                format!("A signing profile named {name} already exists"),
            ));
        }
        tracing::info!(profile = arn, "signing profile created");
        Ok(row)
    }

    pub async fn get_signing_profile(&self, ctx: &Context, name: &str) -> Result<ProfileRow> {
        let arn = profile_arn(&ctx.registry, name);
        self.authorize_signer(ctx, "GetSigningProfile", &arn)
            .await?;
        self.meta
            .signing_profile(&ctx.registry, name)
            .await?
            .ok_or_else(|| profile_not_found(name))
    }

    pub async fn list_signing_profiles(
        &self,
        ctx: &Context,
        include_canceled: bool,
    ) -> Result<Vec<ProfileRow>> {
        self.authorize_signer(ctx, "ListSigningProfiles", "*")
            .await?;
        let mut all = self.meta.signing_profiles(&ctx.registry).await?;
        all.retain(|p| include_canceled || p.status == "Active");
        Ok(all)
    }

    pub async fn cancel_signing_profile(&self, ctx: &Context, name: &str) -> Result<()> {
        let arn = profile_arn(&ctx.registry, name);
        self.authorize_signer(ctx, "CancelSigningProfile", &arn)
            .await?;
        if self
            .meta
            .signing_profile(&ctx.registry, name)
            .await?
            .is_none()
        {
            return Err(profile_not_found(name));
        }
        self.meta
            .cancel_signing_profile(&ctx.registry, name)
            .await?;
        Ok(())
    }
}

fn profile_not_found(name: &str) -> Error {
    err(
        SignerErrorKind::ResourceNotFound,
        format!("The signing profile {name} does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_arns_round_trip() {
        let reg = RegistryKey {
            account_id: crate::aws::AccountId::parse("111122223333").expect("id"),
            region: crate::aws::Region::parse("eu-west-1").expect("region"),
        };
        let arn = profile_arn(&reg, "release_key");
        assert_eq!(
            arn,
            "arn:aws:signer:eu-west-1:111122223333:/signing-profiles/release_key"
        );
        assert_eq!(parse_profile_arn(&arn), Some((reg, "release_key".into())));
        assert_eq!(
            parse_profile_arn("arn:aws:ecr:eu-west-1:111122223333:repository/x"),
            None
        );
        assert!(valid_profile_name("ab") && !valid_profile_name("a") && !valid_profile_name("a-b"));
    }
}

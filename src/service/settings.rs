//! Account settings (GetAccountSetting, PutAccountSetting) and the principals whose
//! pulls do not update `lastRecordedPullTime` (pull-time update exclusions).

use super::error::EcrErrorKind as K;
use super::{Action, Context, Error, Result, Service};
use crate::clock;
use crate::meta::RegistryKey;

/// The settings ECR knows, their allowed values, and the default (the first).
const SETTINGS: [(&str, &[&str]); 3] = [
    ("BASIC_SCAN_TYPE_VERSION", &["AWS_NATIVE", "CLAIR"]),
    ("REGISTRY_POLICY_SCOPE", &["V2", "V1"]),
    ("BLOB_MOUNTING", &["DISABLED", "ENABLED"]),
];

/// Exclusions a registry may have.
const MAX_EXCLUSIONS: i64 = 100;

fn setting(name: &str) -> Result<&'static [&'static str]> {
    SETTINGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, values)| *values)
        .ok_or_else(|| {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'name' failed to satisfy constraint: 'Member must satisfy enum value set: [{}]'",
                SETTINGS.map(|(n, _)| n).join(", ")
            ))
        })
}

/// `arn:aws:iam::<12 digits>:user/...` or `:role/...`.
fn check_principal_arn(arn: &str) -> Result<()> {
    let ok = arn.starts_with("arn:aws:iam::")
        && crate::aws::Arn::parse(arn).is_some_and(|a| {
            let res = &a.resource;
            a.service == "iam"
                && crate::aws::is_account_id(&a.account)
                && (res.starts_with("user/") || res.starts_with("role/"))
                && res.len() > 5
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'principalArn' failed to satisfy constraint: 'must be the ARN of an IAM user or role, not {arn}'"
        )))
    }
}

impl Service {
    /// A setting's value (its default when never set).
    pub async fn account_setting(&self, ctx: &Context, name: &str) -> Result<String> {
        let values = setting(name)?;
        self.authorize_registry(ctx, Action::GetAccountSetting)
            .await?;
        Ok(self
            .meta
            .account_setting(&ctx.registry, name)
            .await?
            .unwrap_or_else(|| values[0].to_owned()))
    }

    pub async fn put_account_setting(&self, ctx: &Context, name: &str, value: &str) -> Result<()> {
        let values = setting(name)?;
        self.authorize_registry(ctx, Action::PutAccountSetting)
            .await?;
        if !values.contains(&value) {
            return Err(Error::ecr(
                K::Validation,
                format!(
                    "Invalid value '{value}' for account setting {name}; valid values are {}",
                    values.join(", ")
                ),
            ));
        }
        self.meta
            .put_account_setting(&ctx.registry, name, value)
            .await?;
        Ok(())
    }

    /// Whether cross-repository blob mounting is on in a registry (off by default, as on ECR).
    pub(super) async fn blob_mounting_enabled(&self, reg: &RegistryKey) -> Result<bool> {
        Ok(self
            .meta
            .account_setting(reg, "BLOB_MOUNTING")
            .await?
            .is_some_and(|v| v == "ENABLED"))
    }

    /// RegisterPullTimeUpdateExclusion: returns the creation time (ms).
    pub async fn register_pull_time_exclusion(&self, ctx: &Context, arn: &str) -> Result<i64> {
        self.authorize_registry(ctx, Action::RegisterPullTimeUpdateExclusion)
            .await?;
        check_principal_arn(arn)?;
        let now = clock::now_ms();
        match self
            .meta
            .add_pull_time_exclusion(&ctx.registry, arn, MAX_EXCLUSIONS, now)
            .await?
        {
            Some(true) => Ok(now),
            Some(false) => Err(Error::ecr(
                K::LimitExceeded,
                format!("The registry already has the maximum of {MAX_EXCLUSIONS} pull time update exclusions"),
            )),
            None => Err(Error::ecr(
                K::ExclusionAlreadyExists,
                format!("The pull time update exclusion for '{arn}' already exists"),
            )),
        }
    }

    pub async fn deregister_pull_time_exclusion(&self, ctx: &Context, arn: &str) -> Result<()> {
        self.authorize_registry(ctx, Action::DeregisterPullTimeUpdateExclusion)
            .await?;
        check_principal_arn(arn)?;
        if self
            .meta
            .remove_pull_time_exclusion(&ctx.registry, arn)
            .await?
        {
            Ok(())
        } else {
            Err(Error::ecr(
                K::ExclusionNotFound,
                format!("The pull time update exclusion for '{arn}' does not exist"),
            ))
        }
    }

    pub async fn pull_time_exclusions(&self, ctx: &Context) -> Result<Vec<String>> {
        self.authorize_registry(ctx, Action::ListPullTimeUpdateExclusions)
            .await?;
        Ok(self.meta.pull_time_exclusions(&ctx.registry).await?)
    }
}

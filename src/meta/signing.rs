//! Queries behind managed signing: signing profiles (keys sealed here, opened only for
//! the signer), registries' signing configurations (ECR's JSON) and images' signing
//! statuses.

use super::{Db, Error, MetaStore, RegistryKey, Result};

/// A signing profile as stored (its key opened; never shown by `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct ProfileRow {
    pub name: String,
    pub version: String,
    pub platform_id: String,
    /// `Active` or `Canceled`.
    pub status: String,
    pub validity_value: i64,
    pub validity_type: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub created_at: i64,
}

impl std::fmt::Debug for ProfileRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileRow")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("status", &self.status)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

type ProfileTuple = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
);

/// One profile's signing of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRow {
    pub profile_arn: String,
    /// `IN_PROGRESS`, `COMPLETE` or `FAILED`.
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
}

/// What a push asks of the signing job, per profile (recorded with the push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRequest {
    pub profile_arn: String,
    /// Already decided: the pusher may not sign with the profile (code, reason).
    pub refused: Option<(String, String)>,
}

fn seal_context(reg: &RegistryKey, name: &str) -> String {
    format!("signing-profile:{}:{}:{name}", reg.account_id, reg.region)
}

impl MetaStore {
    // ---- profiles ----

    /// Insert a profile; false if the name is taken (also by a canceled one).
    pub async fn insert_signing_profile(&self, reg: &RegistryKey, p: &ProfileRow) -> Result<bool> {
        let sealed = self
            .sealer
            .seal(p.key_pem.as_bytes(), &seal_context(reg, &p.name));
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO signing_profiles (account_id, region, name, version, platform_id, status,
                 validity_value, validity_type, cert_pem, key_sealed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(&p.name).bind(&p.version)
        .bind(&p.platform_id).bind(&p.status).bind(p.validity_value).bind(&p.validity_type)
        .bind(&p.cert_pem).bind(&sealed).bind(p.created_at)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    pub async fn signing_profile(
        &self,
        reg: &RegistryKey,
        name: &str,
    ) -> Result<Option<ProfileRow>> {
        let row: Option<ProfileTuple> = on_read!(self, pool => sqlx::query_as(
            "SELECT name, version, platform_id, status, validity_value, validity_type, cert_pem,
                    key_sealed, created_at
             FROM signing_profiles WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(name)
        .fetch_optional(pool).await?);
        row.map(|r| self.profile_from_row(reg, r)).transpose()
    }

    pub async fn signing_profiles(&self, reg: &RegistryKey) -> Result<Vec<ProfileRow>> {
        let rows: Vec<ProfileTuple> = on_read!(self, pool => sqlx::query_as(
            "SELECT name, version, platform_id, status, validity_value, validity_type, cert_pem,
                    key_sealed, created_at
             FROM signing_profiles WHERE account_id = $1 AND region = $2 ORDER BY name",
        )
        .bind(&reg.account_id).bind(&reg.region).fetch_all(pool).await?);
        rows.into_iter()
            .map(|r| self.profile_from_row(reg, r))
            .collect()
    }

    fn profile_from_row(&self, reg: &RegistryKey, r: ProfileTuple) -> Result<ProfileRow> {
        let key_pem = self
            .sealer
            .open_text(&r.7, &seal_context(reg, &r.0))
            .map_err(|e| Error::Backend(format!("signing profile {}: {e}", r.0)))?;
        Ok(ProfileRow {
            name: r.0,
            version: r.1,
            platform_id: r.2,
            status: r.3,
            validity_value: r.4,
            validity_type: r.5,
            cert_pem: r.6,
            key_pem,
            created_at: r.8,
        })
    }

    /// Cancel an active profile: true if it was active.
    pub async fn cancel_signing_profile(&self, reg: &RegistryKey, name: &str) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE signing_profiles SET status = 'Canceled'
             WHERE account_id = $1 AND region = $2 AND name = $3 AND status = 'Active'",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(name)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    // ---- images ----

    pub async fn image_signings(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Vec<SigningRow>> {
        let rows: Vec<(String, String, Option<String>, Option<String>)> = on_read!(self, pool => sqlx::query_as(
            "SELECT profile_arn, status, failure_code, failure_reason FROM image_signings
             WHERE repository_id = $1 AND digest = $2 ORDER BY profile_arn",
        )
        .bind(repository_id).bind(digest).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(
                |(profile_arn, status, failure_code, failure_reason)| SigningRow {
                    profile_arn,
                    status,
                    failure_code,
                    failure_reason,
                },
            )
            .collect())
    }

    /// Record how a profile's signing of an image ended.
    pub async fn finish_signing(
        &self,
        repository_id: i64,
        digest: &str,
        profile_arn: &str,
        failure: Option<(&str, &str)>,
        now_ms: i64,
    ) -> Result<()> {
        let status = if failure.is_some() {
            "FAILED"
        } else {
            "COMPLETE"
        };
        on_write!(self, pool => sqlx::query(
            "UPDATE image_signings SET status = $4, failure_code = $5, failure_reason = $6,
                 updated_at = $7
             WHERE repository_id = $1 AND digest = $2 AND profile_arn = $3",
        )
        .bind(repository_id).bind(digest).bind(profile_arn).bind(status)
        .bind(failure.map(|f| f.0)).bind(failure.map(|f| f.1)).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(())
    }
}

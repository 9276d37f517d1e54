//! Queries behind Secrets Manager: one row per secret, its versions one document sealed
//! under the master key and bound to the secret's ARN (a row copied onto another secret
//! does not open). Writes name the revision they read; a write that lost a race changes
//! nothing and says so.

use super::{Db, Error, MetaStore, RegistryKey, Result};

/// A secret as stored; `versions` is the opened (plain) JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    /// JSON array of {"Key","Value"}.
    pub tags: String,
    pub versions: String,
    pub created_at: i64,
    pub changed_at: i64,
    pub accessed_at: Option<i64>,
    pub deletion_at: Option<i64>,
    pub revision: i64,
}

type Row = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
);

const COLUMNS: &str = "id, name, arn, description, kms_key_id, tags, versions, created_at,
     changed_at, accessed_at, deletion_at, revision";

impl MetaStore {
    fn open_row(&self, r: Row) -> Result<SecretRow> {
        let (
            id,
            name,
            arn,
            description,
            kms_key_id,
            tags,
            sealed,
            created_at,
            changed_at,
            accessed_at,
            deletion_at,
            revision,
        ) = r;
        let versions = self
            .sealer
            .open(sealed.as_bytes(), &arn)
            .map_err(|e| Error::Backend(format!("secret {arn}: {e}")))?;
        let versions = String::from_utf8(versions)
            .map_err(|_| Error::Backend(format!("secret {arn}: versions are not UTF-8")))?;
        Ok(SecretRow {
            id,
            name,
            arn,
            description,
            kms_key_id,
            tags,
            versions,
            created_at,
            changed_at,
            accessed_at,
            deletion_at,
            revision,
        })
    }

    /// Store a new secret; false if the registry already has one by that name.
    pub async fn sm_create(&self, reg: &RegistryKey, s: &SecretRow) -> Result<bool> {
        let sealed = self.sealer.seal(s.versions.as_bytes(), &s.arn);
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO sm_secrets (account_id, region, name, arn, description, kms_key_id, tags,
                 versions, created_at, changed_at, accessed_at, deletion_at, revision)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1)
             ON CONFLICT DO NOTHING",
        )
        .bind(&reg.account_id)
        .bind(&reg.region)
        .bind(&s.name)
        .bind(&s.arn)
        .bind(s.description.as_deref())
        .bind(s.kms_key_id.as_deref())
        .bind(&s.tags)
        .bind(&sealed)
        .bind(s.created_at)
        .bind(s.changed_at)
        .bind(s.accessed_at)
        .bind(s.deletion_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// A secret by name or by ARN.
    pub async fn sm_find(
        &self,
        reg: &RegistryKey,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<Option<SecretRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sm_secrets
             WHERE account_id = $1 AND region = $2 AND (name = $3 OR arn = $4)"
        );
        let row: Option<Row> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(&reg.account_id)
            .bind(&reg.region)
            .bind(name)
            .bind(arn)
            .fetch_optional(pool)
            .await?);
        row.map(|r| self.open_row(r)).transpose()
    }

    /// The registry's secrets, oldest first.
    pub async fn sm_list(&self, reg: &RegistryKey) -> Result<Vec<SecretRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sm_secrets WHERE account_id = $1 AND region = $2
             ORDER BY created_at, id"
        );
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(&reg.account_id)
            .bind(&reg.region)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(|r| self.open_row(r)).collect()
    }

    /// Write back a secret read at `s.revision`; false if another write came first.
    pub async fn sm_update(&self, s: &SecretRow) -> Result<bool> {
        let sealed = self.sealer.seal(s.versions.as_bytes(), &s.arn);
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE sm_secrets SET description = $2, kms_key_id = $3, tags = $4, versions = $5,
                 changed_at = $6, accessed_at = $7, deletion_at = $8, revision = revision + 1
             WHERE id = $1 AND revision = $9",
        )
        .bind(s.id)
        .bind(s.description.as_deref())
        .bind(s.kms_key_id.as_deref())
        .bind(&s.tags)
        .bind(&sealed)
        .bind(s.changed_at)
        .bind(s.accessed_at)
        .bind(s.deletion_at)
        .bind(s.revision)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// Remove a secret for good.
    pub async fn sm_delete(&self, id: i64) -> Result<()> {
        on_write!(self, pool => sqlx::query("DELETE FROM sm_secrets WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }
}

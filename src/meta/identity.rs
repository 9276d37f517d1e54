//! Accounts, access keys and the server's shared secrets.

use super::changes::Change;
use super::{Db, Error, MetaStore, Result};

/// An access key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    pub principal_arn: String,
    pub active: bool,
}

/// (id, sealed secret, account, principal ARN, status) as stored.
type KeyRow = (String, String, String, String, String);

impl MetaStore {
    /// Create an account if it does not exist; true if it was created.
    pub async fn ensure_account(&self, account_id: &str, now_ms: i64) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO accounts (account_id, created_at) VALUES ($1, $2)
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(account_id)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    pub async fn create_access_key(&self, key: &AccessKey, now_ms: i64) -> Result<()> {
        let _announce = self.changes.announce(Change::Identities);
        on_write!(self, pool => sqlx::query(
            "INSERT INTO access_keys
                 (access_key_id, secret_access_key, account_id, principal_arn, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.access_key_id)
        .bind(self.sealer.seal(key.secret_access_key.as_bytes(), &key.access_key_id))
        .bind(&key.account_id)
        .bind(&key.principal_arn)
        .bind(if key.active { "Active" } else { "Inactive" })
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        let row: Option<KeyRow> = on_read!(self, pool => sqlx::query_as(
            "SELECT access_key_id, secret_access_key, account_id, principal_arn, status
             FROM access_keys WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(pool)
        .await?);
        row.map(|r| self.access_key_row(r)).transpose()
    }

    /// Access keys of a principal, oldest first.
    pub async fn access_keys_of(&self, principal_arn: &str) -> Result<Vec<AccessKey>> {
        let rows: Vec<KeyRow> = on_read!(self, pool => sqlx::query_as(
            "SELECT access_key_id, secret_access_key, account_id, principal_arn, status
             FROM access_keys WHERE principal_arn = $1 ORDER BY created_at, access_key_id",
        )
        .bind(principal_arn)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(|r| self.access_key_row(r)).collect()
    }

    fn access_key_row(&self, row: KeyRow) -> Result<AccessKey> {
        let (id, sealed, account, arn, status) = row;
        let secret = self
            .sealer
            .open_text(&sealed, &id)
            .map_err(|e| Error::Backend(e.to_string()))?;
        Ok(AccessKey {
            access_key_id: id,
            secret_access_key: secret,
            account_id: account,
            principal_arn: arn,
            active: status == "Active",
        })
    }

    /// Every account, and every (account, region) that holds a repository.
    pub async fn registries_in_use(&self) -> Result<(Vec<String>, Vec<(String, String)>)> {
        let accounts: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT account_id FROM accounts ORDER BY account_id",
        )
        .fetch_all(pool)
        .await?);
        let registries: Vec<(String, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT DISTINCT account_id, region FROM repositories ORDER BY account_id, region",
        )
        .fetch_all(pool)
        .await?);
        Ok((accounts.into_iter().map(|(a,)| a).collect(), registries))
    }

    /// (key id, creation time in ms) of a principal's access keys.
    pub async fn access_key_created(&self, principal_arn: &str) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = on_read!(self, pool => sqlx::query_as(
            "SELECT access_key_id, created_at FROM access_keys WHERE principal_arn = $1",
        )
        .bind(principal_arn)
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// The named secret, created from `generate` on first use. Every node gets the same
    /// value: the first insert wins and everyone reads it back.
    pub async fn server_secret(
        &self,
        name: &str,
        generate: impl FnOnce() -> Vec<u8>,
        now_ms: i64,
    ) -> Result<Vec<u8>> {
        let fresh = self.sealer.seal(&generate(), name).into_bytes();
        on_write!(self, pool => sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        let (value,): (Vec<u8>,) = on_write!(self, pool => sqlx::query_as(
            "SELECT value FROM server_secrets WHERE name = $1",
        )
        .bind(name)
        .fetch_one(pool)
        .await?);
        self.sealer
            .open(&value, name)
            .map_err(|e| Error::Backend(e.to_string()))
    }

    /// Seal the secrets a version before sealing stored in plain text (once, at open).
    pub(super) async fn seal_plaintext_secrets(&self) -> Result<()> {
        let keys: Vec<(String, String)> = on_write!(self, pool => sqlx::query_as(
            "SELECT access_key_id, secret_access_key FROM access_keys",
        )
        .fetch_all(pool)
        .await?);
        for (id, secret) in keys {
            if crate::secrets::Sealer::is_sealed(secret.as_bytes()) {
                continue;
            }
            let sealed = self.sealer.seal(secret.as_bytes(), &id);
            on_write!(self, pool => sqlx::query(
                "UPDATE access_keys SET secret_access_key = $1
                 WHERE access_key_id = $2 AND secret_access_key = $3",
            )
            .bind(sealed)
            .bind(&id)
            .bind(&secret)
            .execute(pool)
            .await?
            .rows_affected());
        }
        let secrets: Vec<(String, Vec<u8>)> = on_write!(self, pool => sqlx::query_as(
            "SELECT name, value FROM server_secrets",
        )
        .fetch_all(pool)
        .await?);
        for (name, value) in secrets {
            if crate::secrets::Sealer::is_sealed(&value) {
                continue;
            }
            let sealed = self.sealer.seal(&value, &name).into_bytes();
            on_write!(self, pool => sqlx::query(
                "UPDATE server_secrets SET value = $1 WHERE name = $2 AND value = $3",
            )
            .bind(sealed)
            .bind(&name)
            .bind(&value)
            .execute(pool)
            .await?
            .rows_affected());
        }
        Ok(())
    }
}

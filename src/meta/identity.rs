//! Accounts, access keys and the server's shared secrets.

use super::{Db, MetaStore, Result};

/// An access key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    pub principal_arn: String,
    pub active: bool,
}

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
        on_write!(self, pool => sqlx::query(
            "INSERT INTO access_keys
                 (access_key_id, secret_access_key, account_id, principal_arn, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.access_key_id)
        .bind(&key.secret_access_key)
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
        type Row = (String, String, String, String, String);
        let row: Option<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT access_key_id, secret_access_key, account_id, principal_arn, status
             FROM access_keys WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(id, secret, account, arn, status)| AccessKey {
            access_key_id: id,
            secret_access_key: secret,
            account_id: account,
            principal_arn: arn,
            active: status == "Active",
        }))
    }

    /// Access keys of a principal, oldest first.
    pub async fn access_keys_of(&self, principal_arn: &str) -> Result<Vec<AccessKey>> {
        type Row = (String, String, String, String, String);
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT access_key_id, secret_access_key, account_id, principal_arn, status
             FROM access_keys WHERE principal_arn = $1 ORDER BY created_at, access_key_id",
        )
        .bind(principal_arn)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(id, secret, account, arn, status)| AccessKey {
                access_key_id: id,
                secret_access_key: secret,
                account_id: account,
                principal_arn: arn,
                active: status == "Active",
            })
            .collect())
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
        let fresh = generate();
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
        Ok(value)
    }
}

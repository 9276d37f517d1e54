//! Queries behind the pull-through cache: its rules (bodies are JSON), the manifests
//! learnt from upstreams, and the end of a fetch's lease.

use super::changes::Change;
use super::{Db, Lease, MetaStore, RegistryKey, Result};

/// A manifest as an upstream served it for a reference, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamManifest {
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
    pub checked_at: i64,
}

impl MetaStore {
    /// Insert a rule; false if the prefix has one.
    pub async fn insert_cache_rule(
        &self,
        reg: &RegistryKey,
        prefix: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO ptc_rules (account_id, region, prefix, body, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(prefix).bind(body).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// How many rules a registry has.
    pub async fn count_cache_rules(&self, reg: &RegistryKey) -> Result<i64> {
        let (n,): (i64,) = on_read!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM ptc_rules WHERE account_id = $1 AND region = $2",
        )
        .bind(&reg.account_id).bind(&reg.region).fetch_one(pool).await?);
        Ok(n)
    }

    pub async fn update_cache_rule(
        &self,
        reg: &RegistryKey,
        prefix: &str,
        body: &str,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE ptc_rules SET body = $4 WHERE account_id = $1 AND region = $2 AND prefix = $3",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(prefix).bind(body)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Every rule body of a registry, by prefix.
    pub async fn cache_rules(&self, reg: &RegistryKey) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT body FROM ptc_rules WHERE account_id = $1 AND region = $2 ORDER BY prefix",
        )
        .bind(&reg.account_id).bind(&reg.region).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Delete a rule, returning its body.
    pub async fn delete_cache_rule(
        &self,
        reg: &RegistryKey,
        prefix: &str,
    ) -> Result<Option<String>> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let row: Option<(String,)> = on_write!(self, pool => sqlx::query_as(
            "DELETE FROM ptc_rules WHERE account_id = $1 AND region = $2 AND prefix = $3
             RETURNING body",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(prefix).fetch_optional(pool).await?);
        Ok(row.map(|r| r.0))
    }

    /// What the upstream last served for `reference` in a cache repository.
    pub async fn upstream_manifest(
        &self,
        repository_id: i64,
        reference: &str,
    ) -> Result<Option<UpstreamManifest>> {
        let row: Option<(String, String, Vec<u8>, i64)> = on_read!(self, pool => sqlx::query_as(
            "SELECT digest, media_type, body, checked_at FROM upstream_manifests
             WHERE repository_id = $1 AND reference = $2",
        )
        .bind(repository_id).bind(reference).fetch_optional(pool).await?);
        Ok(
            row.map(|(digest, media_type, body, checked_at)| UpstreamManifest {
                digest,
                media_type,
                body,
                checked_at,
            }),
        )
    }

    /// Record what the upstream served for `reference` (now, or re-checked now).
    pub async fn put_upstream_manifest(
        &self,
        repository_id: i64,
        reference: &str,
        m: &UpstreamManifest,
    ) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO upstream_manifests (repository_id, reference, digest, media_type, body, checked_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (repository_id, reference) DO UPDATE SET digest = excluded.digest,
                 media_type = excluded.media_type, body = excluded.body, checked_at = excluded.checked_at",
        )
        .bind(repository_id).bind(reference).bind(&m.digest).bind(&m.media_type).bind(&m.body)
        .bind(m.checked_at)
        .execute(pool).await.map(|_| ())?);
        Ok(())
    }

    /// Remove a lease's row (a one-off job, such as one upstream fetch, is over).
    pub async fn end_lease(&self, lease: &Lease) -> Result<()> {
        on_write!(self, pool => sqlx::query(
            "DELETE FROM jobs WHERE name = $1 AND holder = $2 AND fence = $3",
        )
        .bind(&lease.job).bind(&lease.holder).bind(lease.fence)
        .execute(pool).await.map(|_| ())?);
        Ok(())
    }

    /// Whether a one-off job's row is gone or its lease has run out at `now`.
    pub async fn lease_free(&self, job: &str, now: i64) -> Result<bool> {
        let row: Option<(i64,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT lease_until FROM jobs WHERE name = $1",
        )
        .bind(job).fetch_optional(pool).await?);
        Ok(row.is_none_or(|(until,)| until < now))
    }
}

impl MetaStore {
    /// Every repository of a registry that has pull-through cache rules: (id, registry,
    /// name). Which rule covers which is for the caller to decide.
    pub async fn repositories_with_cache_rules(&self) -> Result<Vec<(i64, RegistryKey, String)>> {
        let rows: Vec<(i64, String, String, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT r.id, r.account_id, r.region, r.name FROM repositories r
             WHERE EXISTS (SELECT 1 FROM ptc_rules p
                           WHERE p.account_id = r.account_id AND p.region = r.region)
             ORDER BY r.id",
        )
        .fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(id, account, region, name)| (id, RegistryKey::from_store(account, region), name))
            .collect())
    }
}

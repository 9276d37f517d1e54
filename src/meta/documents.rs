//! A registry's configuration documents (replication, signing): one JSON body per
//! registry and kind, as ECR shows it.

use super::changes::Change;
use super::{Db, MetaStore, RegistryKey, Result};

/// Which configuration a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Replication,
    Signing,
}

impl DocumentKind {
    fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Replication => "replication",
            DocumentKind::Signing => "signing",
        }
    }
}

impl MetaStore {
    pub async fn registry_document(
        &self,
        reg: &RegistryKey,
        kind: DocumentKind,
    ) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT body FROM registry_documents WHERE account_id = $1 AND region = $2 AND kind = $3",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(kind.as_str())
        .fetch_optional(pool).await?);
        Ok(row.map(|(b,)| b))
    }

    pub async fn put_registry_document(
        &self,
        reg: &RegistryKey,
        kind: DocumentKind,
        body: &str,
        now_ms: i64,
    ) -> Result<()> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        on_write!(self, pool => sqlx::query(
            "INSERT INTO registry_documents (account_id, region, kind, body, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id, region, kind)
             DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(kind.as_str()).bind(body).bind(now_ms)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Remove a document; the body it had.
    pub async fn delete_registry_document(
        &self,
        reg: &RegistryKey,
        kind: DocumentKind,
    ) -> Result<Option<String>> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        let row: Option<(String,)> = on_write!(self, pool => sqlx::query_as(
            "DELETE FROM registry_documents WHERE account_id = $1 AND region = $2 AND kind = $3
             RETURNING body",
        )
        .bind(&reg.account_id).bind(&reg.region).bind(kind.as_str())
        .fetch_optional(pool).await?);
        Ok(row.map(|(b,)| b))
    }
}

//! IAM identities (users, roles, groups), their policies, and repository/registry policies.

use super::changes::Change;
use super::{Db, MetaStore, RegistryKey, Result};

/// What kind of IAM identity a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    User,
    Role,
    Group,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::User => "user",
            IdentityKind::Role => "role",
            IdentityKind::Group => "group",
        }
    }

    fn parse(s: &str) -> IdentityKind {
        match s {
            "role" => IdentityKind::Role,
            "group" => IdentityKind::Group,
            _ => IdentityKind::User,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account_id: String,
    pub kind: IdentityKind,
    pub name: String,
    /// `AIDA...`, `AROA...` or `AGPA...`.
    pub id: String,
    pub path: String,
    pub arn: String,
    /// Roles: the trust policy document.
    pub trust_policy: Option<String>,
    pub description: Option<String>,
    pub max_session_duration: Option<i64>,
    pub created_at: i64,
}

type IdentityRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);
const IDENTITY_COLUMNS: &str = "account_id, kind, name, id, path, arn, trust_policy, description, max_session_duration, created_at";

fn identity_from_row(r: IdentityRow) -> Identity {
    Identity {
        account_id: r.0,
        kind: IdentityKind::parse(&r.1),
        name: r.2,
        id: r.3,
        path: r.4,
        arn: r.5,
        trust_policy: r.6,
        description: r.7,
        max_session_duration: r.8,
        created_at: r.9,
    }
}

/// A managed policy (customer's, or AWS's under account `aws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicyRow {
    pub arn: String,
    pub account_id: String,
    pub name: String,
    pub id: String,
    pub path: String,
    pub description: Option<String>,
    pub document: String,
    pub version_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

type PolicyRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
);
const POLICY_COLUMNS: &str =
    "arn, account_id, name, id, path, description, document, version_id, created_at, updated_at";

fn policy_from_row(r: PolicyRow) -> ManagedPolicyRow {
    ManagedPolicyRow {
        arn: r.0,
        account_id: r.1,
        name: r.2,
        id: r.3,
        path: r.4,
        description: r.5,
        document: r.6,
        version_id: r.7,
        created_at: r.8,
        updated_at: r.9,
    }
}

/// Why an identity or policy could not be deleted (IAM's DeleteConflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    Conflict(&'static str),
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

impl MetaStore {
    /// Insert an identity; false if one of that kind and name exists.
    pub async fn create_identity(&self, i: &Identity) -> Result<bool> {
        let _announce = self.changes.announce(Change::Identities);
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO iam_identities (account_id, kind, name_key, name, id, path, arn,
                 trust_policy, description, max_session_duration, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (account_id, kind, name_key) DO NOTHING",
        )
        .bind(&i.account_id)
        .bind(i.kind.as_str())
        .bind(key(&i.name))
        .bind(&i.name)
        .bind(&i.id)
        .bind(&i.path)
        .bind(&i.arn)
        .bind(i.trust_policy.as_deref())
        .bind(i.description.as_deref())
        .bind(i.max_session_duration)
        .bind(i.created_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    pub async fn identity(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
    ) -> Result<Option<Identity>> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM iam_identities
             WHERE account_id = $1 AND kind = $2 AND name_key = $3"
        );
        let row: Option<IdentityRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(account_id)
            .bind(kind.as_str())
            .bind(key(name))
            .fetch_optional(pool)
            .await?);
        Ok(row.map(identity_from_row))
    }

    pub async fn identity_by_arn(&self, arn: &str) -> Result<Option<Identity>> {
        let sql = format!("SELECT {IDENTITY_COLUMNS} FROM iam_identities WHERE arn = $1");
        let row: Option<IdentityRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(arn)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(identity_from_row))
    }

    /// Replace a role's trust policy (UpdateAssumeRolePolicy); false if no such role.
    pub async fn set_trust_policy(&self, account_id: &str, role: &str, doc: &str) -> Result<bool> {
        let _announce = self.changes.announce(Change::Identities);
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE iam_identities SET trust_policy = $1
             WHERE account_id = $2 AND kind = 'role' AND name_key = $3",
        )
        .bind(doc).bind(account_id).bind(key(role))
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Identities of a kind whose path starts with `path_prefix`, by name.
    pub async fn identities(
        &self,
        account_id: &str,
        kind: IdentityKind,
        path_prefix: &str,
    ) -> Result<Vec<Identity>> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM iam_identities
             WHERE account_id = $1 AND kind = $2 AND substr(path, 1, length($3)) = $3
             ORDER BY name_key"
        );
        let rows: Vec<IdentityRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(account_id)
            .bind(kind.as_str())
            .bind(path_prefix)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(identity_from_row).collect())
    }

    /// Delete an identity that has nothing left attached, as IAM requires.
    pub async fn delete_identity(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
    ) -> Result<DeleteOutcome> {
        let _announce = self.changes.announce(Change::Identities);
        let k = key(name);
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let arn: Option<(String,)> = sqlx::query_as(
                "SELECT arn FROM iam_identities WHERE account_id = $1 AND kind = $2 AND name_key = $3",
            )
            .bind(account_id).bind(kind.as_str()).bind(&k)
            .fetch_optional(&mut *tx).await?;
            let Some((arn,)) = arn else { return Ok(DeleteOutcome::NotFound) };
            let (keys,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM access_keys WHERE principal_arn = $1")
                .bind(&arn).fetch_one(&mut *tx).await?;
            if keys > 0 {
                return Ok(DeleteOutcome::Conflict("Cannot delete entity, must delete access keys first."));
            }
            let (logins,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM iam_login_profiles p JOIN iam_identities i ON p.user_id = i.id
                 WHERE i.arn = $1",
            )
            .bind(&arn).fetch_one(&mut *tx).await?;
            if logins > 0 {
                return Ok(DeleteOutcome::Conflict("Cannot delete entity, must delete login profile first."));
            }
            let (inline,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM iam_inline_policies WHERE account_id = $1 AND kind = $2 AND name_key = $3",
            )
            .bind(account_id).bind(kind.as_str()).bind(&k).fetch_one(&mut *tx).await?;
            if inline > 0 {
                return Ok(DeleteOutcome::Conflict("Cannot delete entity, must delete policies first."));
            }
            let (attached,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM iam_attachments WHERE account_id = $1 AND kind = $2 AND name_key = $3",
            )
            .bind(account_id).bind(kind.as_str()).bind(&k).fetch_one(&mut *tx).await?;
            if attached > 0 {
                return Ok(DeleteOutcome::Conflict("Cannot delete entity, must detach all policies first."));
            }
            let (members,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM iam_group_members WHERE account_id = $1
                 AND ((group_key = $2 AND $3 = 'group') OR (user_key = $2 AND $3 = 'user'))",
            )
            .bind(account_id).bind(&k).bind(kind.as_str()).fetch_one(&mut *tx).await?;
            if members > 0 {
                return Ok(DeleteOutcome::Conflict(if kind == IdentityKind::Group {
                    "Cannot delete entity, must remove users from group first."
                } else {
                    "Cannot delete entity, must remove the user from all groups first."
                }));
            }
            sqlx::query("DELETE FROM iam_identities WHERE account_id = $1 AND kind = $2 AND name_key = $3")
                .bind(account_id).bind(kind.as_str()).bind(&k).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(DeleteOutcome::Deleted)
        })
    }

    pub async fn put_inline_policy(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        let _announce = self.changes.announce(Change::Identities);
        on_write!(self, pool => sqlx::query(
            "INSERT INTO iam_inline_policies (account_id, kind, name_key, policy_name, document)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id, kind, name_key, policy_name) DO UPDATE SET document = excluded.document",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name)).bind(policy_name).bind(document)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn inline_policy(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
        policy_name: &str,
    ) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT document FROM iam_inline_policies
             WHERE account_id = $1 AND kind = $2 AND name_key = $3 AND policy_name = $4",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name)).bind(policy_name)
        .fetch_optional(pool).await?);
        Ok(row.map(|r| r.0))
    }

    pub async fn inline_policy_names(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT policy_name FROM iam_inline_policies
             WHERE account_id = $1 AND kind = $2 AND name_key = $3 ORDER BY policy_name",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name))
        .fetch_all(pool).await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn delete_inline_policy(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
        policy_name: &str,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Identities);
        let n = on_write!(self, pool => sqlx::query(
            "DELETE FROM iam_inline_policies
             WHERE account_id = $1 AND kind = $2 AND name_key = $3 AND policy_name = $4",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name)).bind(policy_name)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Install or refresh a built-in AWS managed policy.
    pub async fn upsert_managed_policy(&self, p: &ManagedPolicyRow) -> Result<()> {
        let _announce = self.changes.announce(Change::Identities);
        on_write!(self, pool => sqlx::query(
            "INSERT INTO iam_managed_policies
                 (arn, account_id, name, id, path, description, document, version_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (arn) DO UPDATE SET document = excluded.document,
                 description = excluded.description, version_id = excluded.version_id",
        )
        .bind(&p.arn).bind(&p.account_id).bind(&p.name).bind(&p.id).bind(&p.path)
        .bind(p.description.as_deref()).bind(&p.document).bind(&p.version_id)
        .bind(p.created_at).bind(p.updated_at)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Insert a customer managed policy; false if its ARN exists.
    pub async fn create_managed_policy(&self, p: &ManagedPolicyRow) -> Result<bool> {
        let _announce = self.changes.announce(Change::Identities);
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO iam_managed_policies
                 (arn, account_id, name, id, path, description, document, version_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (arn) DO NOTHING",
        )
        .bind(&p.arn).bind(&p.account_id).bind(&p.name).bind(&p.id).bind(&p.path)
        .bind(p.description.as_deref()).bind(&p.document).bind(&p.version_id)
        .bind(p.created_at).bind(p.updated_at)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Replace a customer managed policy's document, as its new default version.
    pub async fn set_managed_policy_document(
        &self,
        arn: &str,
        document: &str,
        version_id: &str,
        now_ms: i64,
    ) -> Result<()> {
        let _announce = self.changes.announce(Change::Identities);
        on_write!(self, pool => sqlx::query(
            "UPDATE iam_managed_policies SET document = $1, version_id = $2, updated_at = $3 WHERE arn = $4",
        )
        .bind(document).bind(version_id).bind(now_ms).bind(arn)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicyRow>> {
        let sql = format!("SELECT {POLICY_COLUMNS} FROM iam_managed_policies WHERE arn = $1");
        let row: Option<PolicyRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(arn).fetch_optional(pool).await?);
        Ok(row.map(policy_from_row))
    }

    /// Managed policies visible to an account (its own and AWS's), with attachment counts.
    pub async fn managed_policies(&self, account_id: &str) -> Result<Vec<(ManagedPolicyRow, i64)>> {
        let sql = format!(
            "SELECT {POLICY_COLUMNS},
                 (SELECT COUNT(*) FROM iam_attachments a WHERE a.policy_arn = p.arn AND a.account_id = $1)
             FROM iam_managed_policies p WHERE account_id IN ($1, 'aws') ORDER BY name, arn"
        );
        type Row = (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            String,
            String,
            i64,
            i64,
            i64,
        );
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(account_id).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|r| {
                let count = r.10;
                (
                    policy_from_row((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9)),
                    count,
                )
            })
            .collect())
    }

    pub async fn attachment_count(&self, arn: &str, account_id: &str) -> Result<i64> {
        let (n,): (i64,) = on_read!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM iam_attachments WHERE policy_arn = $1 AND account_id = $2",
        )
        .bind(arn).bind(account_id).fetch_one(pool).await?);
        Ok(n)
    }

    pub async fn delete_managed_policy(&self, arn: &str) -> Result<DeleteOutcome> {
        let _announce = self.changes.announce(Change::Identities);
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let (attached,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM iam_attachments WHERE policy_arn = $1")
                .bind(arn).fetch_one(&mut *tx).await?;
            if attached > 0 {
                return Ok(DeleteOutcome::Conflict("Cannot delete a policy attached to entities."));
            }
            let n = sqlx::query("DELETE FROM iam_managed_policies WHERE arn = $1")
                .bind(arn).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(if n > 0 { DeleteOutcome::Deleted } else { DeleteOutcome::NotFound })
        })
    }

    pub async fn attach_policy(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
        policy_arn: &str,
    ) -> Result<()> {
        let _announce = self.changes.announce(Change::Identities);
        on_write!(self, pool => sqlx::query(
            "INSERT INTO iam_attachments (account_id, kind, name_key, policy_arn) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name)).bind(policy_arn)
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn detach_policy(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
        policy_arn: &str,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Identities);
        let n = on_write!(self, pool => sqlx::query(
            "DELETE FROM iam_attachments WHERE account_id = $1 AND kind = $2 AND name_key = $3 AND policy_arn = $4",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name)).bind(policy_arn)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// (name, arn) of the managed policies attached to an identity.
    pub async fn attached_policies(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT p.name, p.arn FROM iam_attachments a JOIN iam_managed_policies p ON p.arn = a.policy_arn
             WHERE a.account_id = $1 AND a.kind = $2 AND a.name_key = $3 ORDER BY p.name",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name))
        .fetch_all(pool).await?);
        Ok(rows)
    }

    pub async fn add_group_member(&self, account_id: &str, group: &str, user: &str) -> Result<()> {
        let _announce = self.changes.announce(Change::Identities);
        on_write!(self, pool => sqlx::query(
            "INSERT INTO iam_group_members (account_id, group_key, user_key) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(account_id).bind(key(group)).bind(key(user))
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The users in a group, by name.
    pub async fn group_members(&self, account_id: &str, group: &str) -> Result<Vec<Identity>> {
        let sql = format!(
            "SELECT {} FROM iam_identities i JOIN iam_group_members m
                 ON m.account_id = i.account_id AND m.user_key = i.name_key
             WHERE i.account_id = $1 AND i.kind = 'user' AND m.group_key = $2
             ORDER BY i.name_key",
            IDENTITY_COLUMNS
                .split(", ")
                .map(|c| format!("i.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows: Vec<IdentityRow> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(account_id).bind(key(group)).fetch_all(pool).await?);
        Ok(rows.into_iter().map(identity_from_row).collect())
    }

    /// Every policy document that applies to an identity: its inline and attached
    /// policies and, for a user, those of its groups.
    pub async fn identity_policies(
        &self,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "WITH targets (kind, name_key) AS (
                 SELECT CAST($2 AS TEXT), CAST($3 AS TEXT)
                 UNION ALL
                 SELECT 'group', group_key FROM iam_group_members
                 WHERE account_id = $1 AND user_key = $3 AND $2 = 'user'
             )
             SELECT i.document FROM iam_inline_policies i
                 JOIN targets t ON i.kind = t.kind AND i.name_key = t.name_key
                 WHERE i.account_id = $1
             UNION ALL
             SELECT p.document FROM iam_attachments a
                 JOIN targets t ON a.kind = t.kind AND a.name_key = t.name_key
                 JOIN iam_managed_policies p ON p.arn = a.policy_arn
                 WHERE a.account_id = $1",
        )
        .bind(account_id).bind(kind.as_str()).bind(key(name))
        .fetch_all(pool).await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn delete_access_key(
        &self,
        access_key_id: &str,
        principal_arn: &str,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Identities);
        let n = on_write!(self, pool => sqlx::query(
            "DELETE FROM access_keys WHERE access_key_id = $1 AND principal_arn = $2",
        )
        .bind(access_key_id).bind(principal_arn)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    pub async fn set_access_key_status(
        &self,
        access_key_id: &str,
        principal_arn: &str,
        active: bool,
    ) -> Result<bool> {
        let _announce = self.changes.announce(Change::Identities);
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE access_keys SET status = $3 WHERE access_key_id = $1 AND principal_arn = $2",
        )
        .bind(access_key_id).bind(principal_arn).bind(if active { "Active" } else { "Inactive" })
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Set (or with `None` remove) a repository's policy.
    pub async fn set_repository_policy(
        &self,
        repository_id: i64,
        text: Option<&str>,
    ) -> Result<()> {
        let _announce = self.changes.announce(Change::Repository { repository_id });
        on_write!(self, pool => sqlx::query("UPDATE repositories SET policy_text = $2 WHERE id = $1")
            .bind(repository_id).bind(text)
            .execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn repository_policy_text(&self, repository_id: i64) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT policy_text FROM repositories WHERE id = $1",
        )
        .bind(repository_id)
        .fetch_optional(pool).await?);
        Ok(row.and_then(|r| r.0))
    }

    pub async fn registry_policy(&self, reg: &RegistryKey) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT policy_text FROM registry_policies WHERE account_id = $1 AND region = $2",
        )
        .bind(&reg.account_id).bind(&reg.region)
        .fetch_optional(pool).await?);
        Ok(row.map(|r| r.0))
    }

    pub async fn set_registry_policy(&self, reg: &RegistryKey, text: Option<&str>) -> Result<()> {
        let _announce = self.changes.announce(Change::Registry(reg.clone()));
        on_write!(self, pool => {
            match text {
                Some(t) => sqlx::query(
                    "INSERT INTO registry_policies (account_id, region, policy_text) VALUES ($1, $2, $3)
                     ON CONFLICT (account_id, region) DO UPDATE SET policy_text = excluded.policy_text",
                )
                .bind(&reg.account_id).bind(&reg.region).bind(t)
                .execute(pool).await?.rows_affected(),
                None => sqlx::query("DELETE FROM registry_policies WHERE account_id = $1 AND region = $2")
                    .bind(&reg.account_id).bind(&reg.region)
                    .execute(pool).await?.rows_affected(),
            }
        });
        Ok(())
    }
}

//! Provisioning: what the bootstrap (first start, the bootstrap file) and `berth admin`
//! do that no API operation does — accounts, access keys with given secrets, AWS's
//! managed policies, the secrets every node shares. Only the system principal may call
//! these (no front end reaches them); everything else the bootstrap does goes through
//! the ordinary operations as the account's root.

use super::error::IamErrorKind as K;
use super::{Error, Result, Service};
use crate::auth::Principal;
use crate::clock;
use crate::iam::{Policy, PolicyKind};
use crate::meta::{AccessKey, Identity, IdentityKind, ManagedPolicyRow};

/// What importing an access key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyImport {
    Created,
    Unchanged,
    StatusChanged,
}

impl Service {
    fn system_only(who: &Principal) -> Result<()> {
        if who.is_system() {
            Ok(())
        } else {
            Err(Error::AccessDenied(format!(
                "User: {} is not allowed to provision Berth",
                who.arn()
            )))
        }
    }

    /// Make sure an account exists; true if it was created now.
    pub async fn ensure_account(&self, who: &Principal, account_id: &str) -> Result<bool> {
        Self::system_only(who)?;
        Ok(self
            .meta
            .ensure_account(account_id, clock::now_ms())
            .await?)
    }

    /// Install (or refresh) AWS's managed policies, with ids every node agrees on.
    pub async fn install_managed_policies(&self, who: &Principal) -> Result<()> {
        use sha2::Digest as _;
        Self::system_only(who)?;
        let now = clock::now_ms();
        for p in crate::iam::MANAGED {
            let digest = sha2::Sha256::digest(p.name.as_bytes());
            let id: String = digest
                .iter()
                .take(17)
                .map(|b| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(*b) % 32]))
                .collect();
            self.meta
                .upsert_managed_policy(&ManagedPolicyRow {
                    arn: p.arn(),
                    account_id: "aws".into(),
                    name: p.name.into(),
                    id: format!("ANPA{id}"),
                    path: p.path.into(),
                    description: Some(p.description.into()),
                    document: p.document.into(),
                    version_id: p.version.into(),
                    created_at: now,
                    updated_at: now,
                })
                .await?;
        }
        Ok(())
    }

    /// The active access keys of a principal (by ARN).
    pub async fn active_keys_of(&self, who: &Principal, owner_arn: &str) -> Result<Vec<AccessKey>> {
        Self::system_only(who)?;
        let keys = self.meta.access_keys_of(owner_arn).await?;
        Ok(keys.into_iter().filter(|k| k.active).collect())
    }

    /// Store an access key with a given secret (a bootstrap file's, or a new root key),
    /// or check that the key already stored is the same one (updating its status).
    pub async fn import_access_key(&self, who: &Principal, key: &AccessKey) -> Result<KeyImport> {
        Self::system_only(who)?;
        match self.meta.access_key(&key.access_key_id).await? {
            None => {
                self.meta.create_access_key(key, clock::now_ms()).await?;
                Ok(KeyImport::Created)
            }
            Some(found)
                if found.principal_arn != key.principal_arn
                    || found.secret_access_key != key.secret_access_key =>
            {
                Err(Error::iam(
                    K::EntityAlreadyExists,
                    format!(
                        "access key {} already exists with another owner or secret",
                        key.access_key_id
                    ),
                ))
            }
            Some(found) if found.active != key.active => {
                self.meta
                    .set_access_key_status(&key.access_key_id, &key.principal_arn, key.active)
                    .await?;
                Ok(KeyImport::StatusChanged)
            }
            Some(_) => Ok(KeyImport::Unchanged),
        }
    }

    /// A secret every node shares (created on first use).
    pub async fn server_secret(
        &self,
        who: &Principal,
        name: &str,
        generate: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        Self::system_only(who)?;
        Ok(self
            .meta
            .server_secret(name, generate, clock::now_ms())
            .await?)
    }

    /// A user, group or role of an account, if it exists.
    pub async fn find_identity(
        &self,
        who: &Principal,
        account_id: &str,
        kind: IdentityKind,
        name: &str,
    ) -> Result<Option<Identity>> {
        Self::system_only(who)?;
        Ok(self.meta.identity(account_id, kind, name).await?)
    }

    /// The managed policies an account sees (its own and AWS's), by ARN lookup.
    pub async fn visible_managed_policies(
        &self,
        who: &Principal,
        account_id: &str,
    ) -> Result<Vec<ManagedPolicyRow>> {
        Self::system_only(who)?;
        let rows = self.meta.managed_policies(account_id).await?;
        Ok(rows.into_iter().map(|(p, _)| p).collect())
    }

    /// Make a customer managed policy's document `document` (a new default version),
    /// creating nothing; false if no such policy exists.
    pub async fn replace_managed_policy_document(
        &self,
        who: &Principal,
        arn: &str,
        document: &str,
    ) -> Result<bool> {
        Self::system_only(who)?;
        let Some(row) = self.meta.managed_policy(arn).await? else {
            return Ok(false);
        };
        if row.document == document {
            return Ok(true);
        }
        Policy::parse(document, PolicyKind::Identity)
            .map_err(|e| Error::iam(K::MalformedPolicyDocument, e.0))?;
        let version = row
            .version_id
            .trim_start_matches('v')
            .parse::<u32>()
            .unwrap_or(1)
            + 1;
        self.meta
            .set_managed_policy_document(arn, document, &format!("v{version}"), clock::now_ms())
            .await?;
        Ok(true)
    }
}

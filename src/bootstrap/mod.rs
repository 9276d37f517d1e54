//! What the first start creates: the default account, its root access key, the AWS
//! shared-credentials file in the data directory, and the registry-token signing key.
//! `file` applies the declarative bootstrap file.

pub mod file;

use sha2::Digest as _;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::auth::{self, token::TokenKey};
use crate::clock;
use crate::config::Settings;
use crate::meta::AccessKey;
use crate::service::Service;

/// The credentials file, in AWS shared-credentials format (profile `default`).
pub const CREDENTIALS_FILE: &str = "credentials";

/// A root access key created by this start.
pub struct Created {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub credentials_file: PathBuf,
}

/// Install (or refresh) AWS's managed policies that Berth has built in.
pub async fn managed_policies(service: &Service) -> anyhow::Result<()> {
    let now = clock::now_ms();
    for p in crate::iam::MANAGED {
        // A stable id per policy, so that every node agrees.
        let digest = sha2::Sha256::digest(p.name.as_bytes());
        let id: String = digest
            .iter()
            .take(17)
            .map(|b| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(*b) % 32]))
            .collect();
        service
            .meta()
            .upsert_managed_policy(&crate::meta::ManagedPolicyRow {
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

/// Make sure the default account has a root access key and the credentials file holds
/// it. Returns the key if it was created now (to be shown once).
pub async fn identity(service: &Service, settings: &Settings) -> anyhow::Result<Option<Created>> {
    let meta = service.meta();
    let account = &settings.account_id;
    let now = clock::now_ms();
    meta.ensure_account(account, now).await?;
    let root_arn = crate::aws::Arn::root(account).to_string();
    let existing = meta
        .access_keys_of(&root_arn)
        .await?
        .into_iter()
        .find(|k| k.active);
    let path = settings.data_dir.join(CREDENTIALS_FILE);
    let (key, created) = match existing {
        Some(k) => (k, false),
        None => {
            let (id, secret) = auth::new_access_key();
            let key = AccessKey {
                access_key_id: id,
                secret_access_key: secret,
                account_id: account.clone(),
                principal_arn: root_arn,
                active: true,
            };
            meta.create_access_key(&key, now).await?;
            (key, true)
        }
    };
    if created || !path.exists() {
        write_credentials(&path, &key)?;
    }
    if !created {
        return Ok(None);
    }
    Ok(Some(Created {
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
        credentials_file: path,
    }))
}

/// A new root access key for an account (created if new).
pub async fn root_key(service: &Service, account_id: &str) -> anyhow::Result<AccessKey> {
    let meta = service.meta();
    let now = clock::now_ms();
    meta.ensure_account(account_id, now).await?;
    let (id, secret) = auth::new_access_key();
    let key = AccessKey {
        access_key_id: id,
        secret_access_key: secret,
        account_id: account_id.to_owned(),
        principal_arn: crate::aws::Arn::root(account_id).to_string(),
        active: true,
    };
    meta.create_access_key(&key, now).await?;
    Ok(key)
}

/// Write the file readable by its owner only, replacing it atomically.
fn write_credentials(path: &std::path::Path, key: &AccessKey) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    write!(
        f,
        "# Root access key of account {} in this Berth. Keep it secret.\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        key.account_id, key.access_key_id, key.secret_access_key
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The registry-token key every node shares (created on first use).
pub async fn token_key(service: &Service) -> anyhow::Result<TokenKey> {
    let bytes = service
        .meta()
        .server_secret(
            "registry-token-key",
            || auth::random_bytes(32),
            clock::now_ms(),
        )
        .await?;
    Ok(TokenKey::new(bytes))
}

//! What the first start creates: the default account, its root access key, the AWS
//! shared-credentials file in the data directory, and the registry-token signing key.
//! `file` applies the declarative bootstrap file.

pub mod file;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::auth::{self, token::TokenKey, Principal};
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
    let system = Principal::system("install AWS managed policies");
    service.install_managed_policies(&system).await?;
    Ok(())
}

/// Make sure the default account has a root access key and the credentials file holds
/// it. Returns the key if it was created now (to be shown once).
pub async fn identity(service: &Service, settings: &Settings) -> anyhow::Result<Option<Created>> {
    let system = Principal::system("first start: the default account and its root key");
    let account = &settings.account_id;
    service.ensure_account(&system, account).await?;
    let root_arn = crate::aws::Arn::root(account).to_string();
    let existing = service
        .active_keys_of(&system, &root_arn)
        .await?
        .into_iter()
        .next();
    let path = settings.data_dir.join(CREDENTIALS_FILE);
    let (key, created) = match existing {
        Some(k) => (k, false),
        None => {
            let (id, secret) = auth::new_access_key();
            let key = AccessKey {
                access_key_id: id,
                secret_access_key: secret,
                account_id: account.to_string(),
                principal_arn: root_arn,
                active: true,
            };
            service.import_access_key(&system, &key).await?;
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
    let system = Principal::system("berth admin create-account");
    service.ensure_account(&system, account_id).await?;
    let (id, secret) = auth::new_access_key();
    let key = AccessKey {
        access_key_id: id,
        secret_access_key: secret,
        account_id: account_id.to_owned(),
        principal_arn: crate::aws::Arn::root(account_id).to_string(),
        active: true,
    };
    service.import_access_key(&system, &key).await?;
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
    let system = Principal::system("load the registry-token key");
    let bytes = service
        .server_secret(&system, "registry-token-key", || auth::random_bytes(32))
        .await?;
    Ok(TokenKey::new(bytes))
}

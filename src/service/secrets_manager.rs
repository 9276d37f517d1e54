//! Secrets Manager, the part ECR needs (pull-through cache credentials): secrets with
//! versions and staging labels, scheduled deletion and restore, tags. Every operation is
//! authorized as its `secretsmanager:` IAM action on the secret's ARN, then acts.
//!
//! Values are sealed at rest under the deployment's master key (meta/secrets_manager.rs)
//! and never logged. ARNs end with the random six-character suffix Secrets Manager
//! gives them, so a secret re-created under an old name is a new resource.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{Context, Error, Result, Service};
use crate::clock;
use crate::meta::SecretRow;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Versions without a staging label kept beyond these are dropped, oldest first.
const MAX_VERSIONS: usize = 100;
const MAX_TAGS: usize = 50;
/// Tries of a read-modify-write that lost a race to another writer.
const WRITE_TRIES: usize = 5;

/// Secrets Manager's errors, by exception name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsErrorKind {
    ResourceNotFound,
    ResourceExists,
    InvalidRequest,
    InvalidParameter,
    Validation,
    LimitExceeded,
}

impl SecretsErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            SecretsErrorKind::ResourceNotFound => "ResourceNotFoundException",
            SecretsErrorKind::ResourceExists => "ResourceExistsException",
            SecretsErrorKind::InvalidRequest => "InvalidRequestException",
            SecretsErrorKind::InvalidParameter => "InvalidParameterException",
            SecretsErrorKind::Validation => "ValidationException",
            SecretsErrorKind::LimitExceeded => "LimitExceededException",
        }
    }
}

fn err(kind: SecretsErrorKind, message: impl Into<String>) -> Error {
    Error::Secrets(kind, message.into())
}

fn not_found() -> Error {
    err(
        SecretsErrorKind::ResourceNotFound,
        "Secrets Manager can't find the specified secret.",
    )
}

fn marked_for_deletion() -> Error {
    err(
        SecretsErrorKind::InvalidRequest,
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

/// A secret's value: text or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValue {
    String(String),
    Binary(Vec<u8>),
}

/// A secret name, as Secrets Manager accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName(String);

impl SecretName {
    pub fn parse(name: &str) -> Result<SecretName> {
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
        if name.is_empty() || name.len() > 512 || !valid_chars {
            return Err(err(
                SecretsErrorKind::InvalidParameter,
                "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
            ));
        }
        Ok(SecretName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tag of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// One version as the sealed document keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Version {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    string: Option<String>,
    /// Base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    binary: Option<String>,
    stages: Vec<String>,
    created_at: i64,
}

impl Version {
    fn value(&self) -> Result<SecretValue> {
        match (&self.string, &self.binary) {
            (Some(s), _) => Ok(SecretValue::String(s.clone())),
            (None, Some(b)) => B64
                .decode(b)
                .map(SecretValue::Binary)
                .map_err(|_| Error::Internal("a stored secret value is not base64".into())),
            (None, None) => Err(Error::Internal(
                "a stored secret version has no value".into(),
            )),
        }
    }

    fn holds(&self, value: &SecretValue) -> bool {
        match value {
            SecretValue::String(s) => self.string.as_deref() == Some(s.as_str()),
            SecretValue::Binary(b) => self.binary.as_deref() == Some(B64.encode(b).as_str()),
        }
    }
}

/// A secret as DescribeSecret and ListSecrets show it.
#[derive(Debug, Clone)]
pub struct SecretInfo {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<Tag>,
    pub created_at: i64,
    pub changed_at: i64,
    /// The day (midnight UTC) it was last read, as Secrets Manager reports it.
    pub accessed_at: Option<i64>,
    pub deletion_at: Option<i64>,
    /// Version id → its staging labels.
    pub versions: Vec<(String, Vec<String>)>,
}

/// What GetSecretValue answers.
#[derive(Debug, Clone)]
pub struct SecretVersionValue {
    pub name: String,
    pub arn: String,
    pub version_id: String,
    pub value: SecretValue,
    pub stages: Vec<String>,
    pub created_at: i64,
}

/// Which version GetSecretValue asks for.
#[derive(Debug, Clone, Default)]
pub struct VersionSelector {
    pub id: Option<String>,
    pub stage: Option<String>,
}

/// A secret as loaded: its row and its versions.
struct Loaded {
    row: SecretRow,
    versions: Vec<Version>,
    tags: Vec<Tag>,
}

impl Loaded {
    fn new(row: SecretRow) -> Result<Loaded> {
        let versions = serde_json::from_str(&row.versions)
            .map_err(|e| Error::Internal(format!("stored versions of {}: {e}", row.arn)))?;
        let tags = serde_json::from_str(&row.tags)
            .map_err(|e| Error::Internal(format!("stored tags of {}: {e}", row.arn)))?;
        Ok(Loaded {
            row,
            versions,
            tags,
        })
    }

    fn store(&mut self) -> Result<()> {
        self.row.versions = serde_json::to_string(&self.versions)
            .map_err(|e| Error::Internal(format!("versions: {e}")))?;
        self.row.tags =
            serde_json::to_string(&self.tags).map_err(|e| Error::Internal(format!("tags: {e}")))?;
        Ok(())
    }

    fn info(&self) -> SecretInfo {
        SecretInfo {
            name: self.row.name.clone(),
            arn: self.row.arn.clone(),
            description: self.row.description.clone(),
            kms_key_id: self.row.kms_key_id.clone(),
            tags: self.tags.clone(),
            created_at: self.row.created_at,
            changed_at: self.row.changed_at,
            accessed_at: self.row.accessed_at.map(|t| t - t.rem_euclid(DAY_MS)),
            deletion_at: self.row.deletion_at,
            versions: self
                .versions
                .iter()
                .filter(|v| !v.stages.is_empty())
                .map(|v| (v.id.clone(), v.stages.clone()))
                .collect(),
        }
    }

    /// Add a version holding `value` under `stages` (moving those labels, and
    /// AWSPREVIOUS to the version AWSCURRENT leaves). A token already used is a retry
    /// if the value is the same, a conflict otherwise.
    fn add_version(
        &mut self,
        id: String,
        value: &SecretValue,
        stages: Vec<String>,
        now: i64,
    ) -> Result<bool> {
        if let Some(existing) = self.versions.iter().find(|v| v.id == id) {
            if existing.holds(value) {
                return Ok(false);
            }
            return Err(err(
                SecretsErrorKind::ResourceExists,
                "You can't modify an existing version, you can only create a new version.",
            ));
        }
        let moves_current = stages.iter().any(|s| s == CURRENT);
        let old_current = self
            .versions
            .iter()
            .position(|v| v.stages.iter().any(|s| s == CURRENT));
        for v in &mut self.versions {
            v.stages.retain(|s| !stages.contains(s));
        }
        if let (true, Some(i)) = (moves_current, old_current) {
            for v in &mut self.versions {
                v.stages.retain(|s| s != PREVIOUS);
            }
            self.versions[i].stages.push(PREVIOUS.to_owned());
        }
        let (string, binary) = match value {
            SecretValue::String(s) => (Some(s.clone()), None),
            SecretValue::Binary(b) => (None, Some(B64.encode(b))),
        };
        self.versions.push(Version {
            id,
            string,
            binary,
            stages,
            created_at: now,
        });
        while self.versions.len() > MAX_VERSIONS {
            match self.versions.iter().position(|v| v.stages.is_empty()) {
                Some(i) => {
                    self.versions.remove(i);
                }
                None => break,
            }
        }
        Ok(true)
    }
}

/// The version id a request names (ClientRequestToken), else a new one.
fn version_id(token: Option<&str>) -> Result<String> {
    match token {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(t) if (32..=64).contains(&t.len()) => Ok(t.to_owned()),
        Some(_) => Err(err(
            SecretsErrorKind::Validation,
            "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length greater than or equal to 32",
        )),
    }
}

/// Six characters from Secrets Manager's ARN suffix alphabet.
fn arn_suffix() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = [0u8; 6];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Internal(format!("random: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

fn check_tags(tags: &[Tag]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(err(
            SecretsErrorKind::InvalidParameter,
            "Number of tags exceeds Secrets Manager limit of 50",
        ));
    }
    for t in tags {
        if t.key.is_empty() || t.key.len() > 128 || t.value.len() > 256 {
            return Err(err(
                SecretsErrorKind::Validation,
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length between 1 and 128 (keys) and at most 256 (values)",
            ));
        }
    }
    Ok(())
}

/// What CreateSecret asks for.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub name: SecretName,
    pub token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<SecretValue>,
    pub tags: Vec<Tag>,
}

/// What UpdateSecret asks for.
#[derive(Debug, Clone, Default)]
pub struct SecretUpdate {
    pub token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<SecretValue>,
}

impl Service {
    fn secret_arn(ctx: &Context, name: &str, suffix: &str) -> String {
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:{name}-{suffix}",
            ctx.registry.region, ctx.registry.account_id
        )
    }

    async fn authorize_secret(&self, ctx: &Context, action: &str, resource: &str) -> Result<()> {
        self.authorize_iam(
            &ctx.principal,
            ctx.source_ip.as_deref(),
            &format!("secretsmanager:{action}"),
            resource,
            ctx.registry.account_id.as_str(),
            None,
        )
        .await
    }

    /// A secret by name or ARN (also an ARN without its suffix), authorized as `action`;
    /// one whose recovery window has passed is removed and not found.
    async fn load_secret(&self, ctx: &Context, id: &str, action: &str) -> Result<Loaded> {
        let row = if id.starts_with("arn:") {
            match self.meta.sm_find(&ctx.registry, None, Some(id)).await? {
                Some(row) => Some(row),
                // A partial ARN: the name is everything after "secret:".
                None => match id.split_once(":secret:") {
                    Some((_, name)) => self.meta.sm_find(&ctx.registry, Some(name), None).await?,
                    None => None,
                },
            }
        } else {
            self.meta.sm_find(&ctx.registry, Some(id), None).await?
        };
        let resource = row
            .as_ref()
            .map_or_else(|| Self::secret_arn(ctx, id, "*"), |r| r.arn.clone());
        self.authorize_secret(ctx, action, &resource).await?;
        let Some(row) = row else {
            return Err(not_found());
        };
        if row.deletion_at.is_some_and(|at| at <= clock::now_ms()) {
            self.meta.sm_delete(row.id).await?;
            return Err(not_found());
        }
        Loaded::new(row)
    }

    /// A secret's current value read by Berth for its own use (a pull-through cache
    /// rule's credentials), as ECR reads it with its own role: not as the caller, and
    /// not recorded as an access. `None`: no such secret, or it is marked for deletion.
    pub(super) async fn secret_for_service(
        &self,
        registry: &crate::meta::RegistryKey,
        arn: &str,
    ) -> Result<Option<SecretValue>> {
        let Some(row) = self.meta.sm_find(registry, None, Some(arn)).await? else {
            return Ok(None);
        };
        if row.deletion_at.is_some() {
            return Ok(None);
        }
        let loaded = Loaded::new(row)?;
        loaded
            .versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == CURRENT))
            .map(Version::value)
            .transpose()
    }

    /// Load, change and write back a secret, again if another writer came between.
    async fn modify_secret<T>(
        &self,
        ctx: &Context,
        id: &str,
        action: &str,
        mut change: impl FnMut(&mut Loaded) -> Result<T>,
    ) -> Result<(Loaded, T)> {
        for _ in 0..WRITE_TRIES {
            let mut loaded = self.load_secret(ctx, id, action).await?;
            let out = change(&mut loaded)?;
            loaded.store()?;
            if self.meta.sm_update(&loaded.row).await? {
                loaded.row.revision += 1;
                return Ok((loaded, out));
            }
        }
        Err(Error::Busy)
    }

    pub async fn create_secret(
        &self,
        ctx: &Context,
        s: NewSecret,
    ) -> Result<(String, String, Option<String>)> {
        check_tags(&s.tags)?;
        let arn = Self::secret_arn(ctx, s.name.as_str(), &arn_suffix()?);
        self.authorize_secret(ctx, "CreateSecret", &arn).await?;
        if let Some(existing) = self
            .meta
            .sm_find(&ctx.registry, Some(s.name.as_str()), None)
            .await?
        {
            let expired = existing.deletion_at.is_some_and(|at| at <= clock::now_ms());
            if !expired {
                return Err(if existing.deletion_at.is_some() {
                    err(
                        SecretsErrorKind::InvalidRequest,
                        "You can't create this secret because a secret with this name is already scheduled for deletion.",
                    )
                } else {
                    err(
                        SecretsErrorKind::ResourceExists,
                        format!(
                            "The operation failed because the secret {} already exists.",
                            s.name.as_str()
                        ),
                    )
                });
            }
            self.meta.sm_delete(existing.id).await?;
        }
        let now = clock::now_ms();
        let mut loaded = Loaded {
            row: SecretRow {
                id: 0,
                name: s.name.as_str().to_owned(),
                arn: arn.clone(),
                description: s.description,
                kms_key_id: s.kms_key_id,
                tags: String::new(),
                versions: String::new(),
                created_at: now,
                changed_at: now,
                accessed_at: None,
                deletion_at: None,
                revision: 0,
            },
            versions: Vec::new(),
            tags: s.tags,
        };
        let version = match &s.value {
            Some(value) => {
                let id = version_id(s.token.as_deref())?;
                loaded.add_version(id.clone(), value, vec![CURRENT.to_owned()], now)?;
                Some(id)
            }
            None => None,
        };
        loaded.store()?;
        if !self.meta.sm_create(&ctx.registry, &loaded.row).await? {
            return Err(err(
                SecretsErrorKind::ResourceExists,
                format!(
                    "The operation failed because the secret {} already exists.",
                    s.name.as_str()
                ),
            ));
        }
        Ok((arn, loaded.row.name, version))
    }

    pub async fn get_secret_value(
        &self,
        ctx: &Context,
        id: &str,
        which: &VersionSelector,
    ) -> Result<SecretVersionValue> {
        let loaded = self.load_secret(ctx, id, "GetSecretValue").await?;
        if loaded.row.deletion_at.is_some() {
            return Err(marked_for_deletion());
        }
        let stage = which
            .stage
            .clone()
            .or_else(|| which.id.is_none().then(|| CURRENT.to_owned()));
        let version = loaded.versions.iter().find(|v| {
            which.id.as_ref().is_none_or(|id| &v.id == id)
                && stage.as_ref().is_none_or(|s| v.stages.contains(s))
        });
        let Some(version) = version else {
            let what = match (&which.id, &stage) {
                (Some(id), _) => format!("VersionId: {id}"),
                (None, Some(s)) => format!("staging label: {s}"),
                (None, None) => "the secret".to_owned(),
            };
            return Err(err(
                SecretsErrorKind::ResourceNotFound,
                format!("Secrets Manager can't find the specified secret value for {what}"),
            ));
        };
        let out = SecretVersionValue {
            name: loaded.row.name.clone(),
            arn: loaded.row.arn.clone(),
            version_id: version.id.clone(),
            value: version.value()?,
            stages: version.stages.clone(),
            created_at: version.created_at,
        };
        // Secrets Manager records the day of the last read; one write a day.
        let now = clock::now_ms();
        let today = now - now.rem_euclid(DAY_MS);
        if loaded.row.accessed_at.is_none_or(|t| t < today) {
            let mut row = loaded.row;
            row.accessed_at = Some(now);
            // Losing this race to another writer loses nothing worth a retry.
            let _ = self.meta.sm_update(&row).await?;
        }
        Ok(out)
    }

    /// PutSecretValue: (arn, name, version id, its staging labels).
    pub async fn put_secret_value(
        &self,
        ctx: &Context,
        id: &str,
        token: Option<&str>,
        value: SecretValue,
        stages: Option<Vec<String>>,
    ) -> Result<(String, String, String, Vec<String>)> {
        let version = version_id(token)?;
        let stages = stages.unwrap_or_else(|| vec![CURRENT.to_owned()]);
        let now = clock::now_ms();
        let (loaded, ()) = self
            .modify_secret(ctx, id, "PutSecretValue", |l| {
                if l.row.deletion_at.is_some() {
                    return Err(marked_for_deletion());
                }
                if l.add_version(version.clone(), &value, stages.clone(), now)? {
                    l.row.changed_at = now;
                }
                Ok(())
            })
            .await?;
        let stages = loaded
            .versions
            .iter()
            .find(|v| v.id == version)
            .map(|v| v.stages.clone())
            .unwrap_or_default();
        Ok((loaded.row.arn, loaded.row.name, version, stages))
    }

    /// UpdateSecret: (arn, name, the new version's id if a value was given).
    pub async fn update_secret(
        &self,
        ctx: &Context,
        id: &str,
        update: SecretUpdate,
    ) -> Result<(String, String, Option<String>)> {
        let version = match &update.value {
            Some(_) => Some(version_id(update.token.as_deref())?),
            None => None,
        };
        let now = clock::now_ms();
        let (loaded, ()) = self
            .modify_secret(ctx, id, "UpdateSecret", |l| {
                if l.row.deletion_at.is_some() {
                    return Err(marked_for_deletion());
                }
                if let Some(d) = &update.description {
                    l.row.description = Some(d.clone());
                }
                if let Some(k) = &update.kms_key_id {
                    l.row.kms_key_id = Some(k.clone());
                }
                if let (Some(value), Some(v)) = (&update.value, &version) {
                    l.add_version(v.clone(), value, vec![CURRENT.to_owned()], now)?;
                }
                l.row.changed_at = now;
                Ok(())
            })
            .await?;
        Ok((loaded.row.arn, loaded.row.name, version))
    }

    pub async fn describe_secret(&self, ctx: &Context, id: &str) -> Result<SecretInfo> {
        Ok(self.load_secret(ctx, id, "DescribeSecret").await?.info())
    }

    /// The registry's secrets (with those scheduled for deletion if asked).
    pub async fn list_secrets(
        &self,
        ctx: &Context,
        include_deleted: bool,
    ) -> Result<Vec<SecretInfo>> {
        let all = Self::secret_arn(ctx, "*", "")
            .trim_end_matches('-')
            .to_owned();
        self.authorize_secret(ctx, "ListSecrets", &all).await?;
        let now = clock::now_ms();
        let mut out = Vec::new();
        for row in self.meta.sm_list(&ctx.registry).await? {
            match row.deletion_at {
                Some(at) if at <= now => continue,
                Some(_) if !include_deleted => continue,
                _ => {}
            }
            out.push(Loaded::new(row)?.info());
        }
        Ok(out)
    }

    /// DeleteSecret: (arn, name, when it is deleted).
    pub async fn delete_secret(
        &self,
        ctx: &Context,
        id: &str,
        recovery_days: Option<i64>,
        force: bool,
    ) -> Result<(String, String, i64)> {
        if force && recovery_days.is_some() {
            return Err(err(
                SecretsErrorKind::InvalidParameter,
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        let days = recovery_days.unwrap_or(30);
        if !force && !(7..=30).contains(&days) {
            return Err(err(
                SecretsErrorKind::InvalidParameter,
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            ));
        }
        let now = clock::now_ms();
        if force {
            let loaded = self.load_secret(ctx, id, "DeleteSecret").await?;
            self.meta.sm_delete(loaded.row.id).await?;
            return Ok((loaded.row.arn, loaded.row.name, now));
        }
        let (loaded, at) = self
            .modify_secret(ctx, id, "DeleteSecret", |l| {
                // Deleting again keeps the first schedule.
                let at = *l.row.deletion_at.get_or_insert(now + days * DAY_MS);
                Ok(at)
            })
            .await?;
        Ok((loaded.row.arn, loaded.row.name, at))
    }

    pub async fn restore_secret(&self, ctx: &Context, id: &str) -> Result<(String, String)> {
        let (loaded, ()) = self
            .modify_secret(ctx, id, "RestoreSecret", |l| {
                l.row.deletion_at = None;
                Ok(())
            })
            .await?;
        Ok((loaded.row.arn, loaded.row.name))
    }

    pub async fn tag_secret(&self, ctx: &Context, id: &str, tags: Vec<Tag>) -> Result<()> {
        self.modify_secret(ctx, id, "TagResource", |l| {
            for t in &tags {
                l.tags.retain(|old| old.key != t.key);
                l.tags.push(t.clone());
            }
            check_tags(&l.tags)
        })
        .await?;
        Ok(())
    }

    pub async fn untag_secret(&self, ctx: &Context, id: &str, keys: Vec<String>) -> Result<()> {
        self.modify_secret(ctx, id, "UntagResource", |l| {
            l.tags.retain(|t| !keys.contains(&t.key));
            Ok(())
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded() -> Loaded {
        Loaded {
            row: SecretRow {
                id: 1,
                name: "n".into(),
                arn: "a".into(),
                description: None,
                kms_key_id: None,
                tags: "[]".into(),
                versions: "[]".into(),
                created_at: 0,
                changed_at: 0,
                accessed_at: None,
                deletion_at: None,
                revision: 1,
            },
            versions: Vec::new(),
            tags: Vec::new(),
        }
    }

    fn stages(l: &Loaded) -> Vec<(String, Vec<String>)> {
        l.versions
            .iter()
            .map(|v| (v.id.clone(), v.stages.clone()))
            .collect()
    }

    #[test]
    fn staging_labels_move_as_secrets_manager_moves_them() {
        let mut l = loaded();
        let s = |v: &str| SecretValue::String(v.into());
        let current = || vec![CURRENT.to_owned()];
        assert!(l
            .add_version("v1".into(), &s("one"), current(), 1)
            .expect("added"));
        assert!(l
            .add_version("v2".into(), &s("two"), current(), 2)
            .expect("added"));
        assert_eq!(
            stages(&l),
            [
                ("v1".into(), vec![PREVIOUS.to_owned()]),
                ("v2".into(), current())
            ]
        );
        assert!(l
            .add_version("v3".into(), &s("three"), current(), 3)
            .expect("added"));
        assert_eq!(
            stages(&l),
            [
                ("v1".into(), vec![]),
                ("v2".into(), vec![PREVIOUS.to_owned()]),
                ("v3".into(), current())
            ]
        );
        // A retry with the same token and value changes nothing; another value conflicts.
        assert!(!l
            .add_version("v3".into(), &s("three"), current(), 4)
            .expect("retry"));
        assert!(l
            .add_version("v3".into(), &s("other"), current(), 4)
            .is_err());
        // A custom label moves alone.
        assert!(l
            .add_version("v4".into(), &s("four"), vec!["AWSPENDING".into()], 5)
            .expect("added"));
        assert_eq!(l.versions[3].stages, vec!["AWSPENDING".to_owned()]);
        assert_eq!(l.versions[2].stages, current());
    }

    #[test]
    fn names_are_checked() {
        assert!(SecretName::parse("ecr-pullthroughcache/docker-hub").is_ok());
        assert!(SecretName::parse("a b").is_err());
        assert!(SecretName::parse("").is_err());
        assert!(SecretName::parse(&"a".repeat(513)).is_err());
    }
}

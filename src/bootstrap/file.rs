//! The declarative bootstrap file: accounts, their root keys, users, groups, roles,
//! policies, access keys and repositories, applied at every start (`berth serve
//! --bootstrap FILE`) or on demand (`berth admin bootstrap FILE`).
//!
//! Applying is idempotent and additive: what the file names is created, or brought to
//! what the file says; what it does not name is left alone. Everything goes through
//! the same operations as the IAM and ECR APIs, called as each account's root, so the
//! file is validated exactly as those calls would be (a malformed policy fails the
//! start with IAM's message). See docs/bootstrap.md.

use crate::observe::progress;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::auth::Principal;
use crate::aws::{AccountId, Region};
use crate::meta::{AccessKey, IdentityKind, RegistryKey, RepositorySettings};
use crate::mutability::{self, TagMutability};
use crate::oci::RepositoryName;
use crate::resource_tags::ResourceTags;
use crate::service::{Context, Error, IamCaller, KeyImport, NewIdentity, Service};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapFile {
    /// `[[account]]` tables.
    #[serde(default, rename = "account")]
    pub accounts: Vec<Account>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub id: AccountId,
    /// Access keys of the account's root.
    #[serde(default)]
    pub root_keys: Vec<Key>,
    /// Customer managed policies (`[[account.policy]]`).
    #[serde(default, rename = "policy")]
    pub policies: Vec<ManagedPolicy>,
    #[serde(default, rename = "group")]
    pub groups: Vec<Group>,
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
    #[serde(default, rename = "role")]
    pub roles: Vec<Role>,
    #[serde(default, rename = "repository")]
    pub repositories: Vec<Repository>,
    /// Registry policy per region.
    #[serde(default)]
    pub registry_policy: BTreeMap<Region, Document>,
}

/// An access key with its secret given in the file (reproducible CI credentials).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub id: String,
    pub secret: String,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedPolicy {
    pub name: String,
    pub path: Option<String>,
    pub description: Option<String>,
    pub document: Document,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub path: Option<String>,
    /// Policy names (AWS's or the account's) or ARNs.
    #[serde(default)]
    pub managed_policies: Vec<String>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Document>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub path: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub keys: Vec<Key>,
    #[serde(default)]
    pub managed_policies: Vec<String>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Document>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    pub path: Option<String>,
    pub description: Option<String>,
    pub max_session_duration: Option<i64>,
    pub trust_policy: Document,
    #[serde(default)]
    pub managed_policies: Vec<String>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Document>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub name: String,
    /// Defaults to the server's default region.
    pub region: Option<Region>,
    pub image_tag_mutability: Option<String>,
    /// Wildcard filters for the `*_WITH_EXCLUSION` mutabilities.
    #[serde(default)]
    pub image_tag_mutability_exclusion_filters: Vec<String>,
    pub scan_on_push: Option<bool>,
    pub policy: Option<Document>,
    /// A table of key = value.
    #[serde(default, deserialize_with = "tags_table")]
    pub tags: ResourceTags,
}

fn tags_table<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ResourceTags, D::Error> {
    let table = BTreeMap::<String, String>::deserialize(d)?;
    ResourceTags::parse(table.into_iter().collect()).map_err(serde::de::Error::custom)
}

/// A policy document: JSON text in a string, or written as a TOML/JSON table.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Document(serde_json::Value);

impl Document {
    fn text(&self) -> String {
        match &self.0 {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }
}

impl BootstrapFile {
    /// Read a TOML file, or JSON when the name ends in `.json`.
    pub fn read(path: &Path) -> anyhow::Result<BootstrapFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading bootstrap file {}", path.display()))?;
        let file: BootstrapFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(anyhow::Error::from)
        } else {
            toml::from_str(&text).map_err(anyhow::Error::from)
        }
        .with_context(|| format!("parsing bootstrap file {}", path.display()))?;
        file.check()
            .with_context(|| format!("in bootstrap file {}", path.display()))?;
        Ok(file)
    }

    /// What can be checked without the database.
    fn check(&self) -> anyhow::Result<()> {
        for a in &self.accounts {
            let keys = a
                .root_keys
                .iter()
                .chain(a.users.iter().flat_map(|u| &u.keys));
            for k in keys {
                check_key(k)?;
            }
            for u in &a.users {
                if u.keys.len() > 2 {
                    bail!("user {}: at most 2 access keys (IAM's quota)", u.name);
                }
            }
        }
        Ok(())
    }
}

/// Key ids are what IAM issues (`AKIA` and upper-case letters and digits); secrets must
/// not be guessable-short.
fn check_key(k: &Key) -> anyhow::Result<()> {
    let id_ok = k.id.starts_with("AKIA")
        && (16..=128).contains(&k.id.len())
        && k.id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !id_ok {
        bail!(
            "access key id '{}' must be AKIA followed by 12 to 124 upper-case letters or digits",
            k.id
        );
    }
    let secret_ok =
        (16..=128).contains(&k.secret.len()) && k.secret.bytes().all(|b| b.is_ascii_graphic());
    if !secret_ok {
        bail!(
            "the secret of access key {} must be 16 to 128 printable characters",
            k.id
        );
    }
    Ok(())
}

/// A service error with its code, as an API client would see it.
fn described(e: Error) -> anyhow::Error {
    match e {
        Error::Iam(kind, message) => anyhow::anyhow!("{kind:?}: {message}"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// What applying did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub accounts: usize,
    pub created: usize,
}

/// Apply the file: every account's IAM first (so that policies may name principals of
/// any account in the file), then repositories and registry policies.
pub async fn apply(
    service: &Service,
    file: &BootstrapFile,
    default_region: &Region,
) -> anyhow::Result<Applied> {
    let mut applied = Applied::default();
    let entries: usize = file
        .accounts
        .iter()
        .map(|a| 1 + a.roles.len() + a.repositories.len() + a.registry_policy.len())
        .sum();
    progress::phase("bootstrap: entries", Some(entries as u64));
    for a in &file.accounts {
        let step = Step::new(service, &a.id);
        progress::advance(1);
        step.account(a, &mut applied)
            .await
            .with_context(|| format!("bootstrap: account {}", a.id))?;
    }
    for a in &file.accounts {
        let step = Step::new(service, &a.id);
        for r in &a.roles {
            progress::advance(1);
            step.role(r, &mut applied)
                .await
                .with_context(|| format!("bootstrap: account {}, role {}", a.id, r.name))?;
        }
    }
    for a in &file.accounts {
        let step = Step::new(service, &a.id);
        for r in &a.repositories {
            let region = r.region.as_ref().unwrap_or(default_region);
            progress::advance(1);
            step.repository(r, region, &mut applied)
                .await
                .with_context(|| format!("bootstrap: account {}, repository {}", a.id, r.name))?;
        }
        for (region, doc) in &a.registry_policy {
            progress::advance(1);
            step.service
                .put_registry_policy(&step.ctx(region), &doc.text())
                .await
                .map_err(described)
                .with_context(|| format!("bootstrap: account {}, registry policy", a.id))?;
        }
    }
    applied.accounts = file.accounts.len();
    Ok(applied)
}

/// Applying one account's part, as its root.
struct Step<'a> {
    service: &'a Service,
    account: &'a AccountId,
    /// The account's root, for what the IAM operations do.
    caller: IamCaller,
    /// Berth itself, for provisioning (accounts, keys with given secrets).
    system: Principal,
}

impl<'a> Step<'a> {
    fn new(service: &'a Service, account: &'a AccountId) -> Step<'a> {
        Step {
            service,
            account,
            system: Principal::system("bootstrap file"),
            caller: IamCaller {
                principal: Principal::system_as_root(account, "bootstrap file"),
                source_ip: None,
            },
        }
    }

    fn ctx(&self, region: &Region) -> Context {
        Context {
            registry: RegistryKey {
                account_id: self.account.clone(),
                region: region.clone(),
            },
            principal: self.caller.principal.clone(),
            source_ip: None,
        }
    }

    async fn account(&self, a: &Account, applied: &mut Applied) -> anyhow::Result<()> {
        if self
            .service
            .ensure_account(&self.system, self.account)
            .await
            .map_err(described)?
        {
            applied.created += 1;
        }
        let root_arn = crate::aws::Arn::root(self.account).to_string();
        for k in &a.root_keys {
            self.key(k, &root_arn, applied).await?;
        }
        for p in &a.policies {
            self.managed_policy(p, applied)
                .await
                .with_context(|| format!("policy {}", p.name))?;
        }
        for g in &a.groups {
            self.identity(IdentityKind::Group, &g.name, g.path.as_deref(), applied)
                .await
                .with_context(|| format!("group {}", g.name))?;
            self.policies(
                IdentityKind::Group,
                &g.name,
                &g.managed_policies,
                &g.inline_policies,
            )
            .await
            .with_context(|| format!("group {}", g.name))?;
        }
        for u in &a.users {
            self.user(u, applied)
                .await
                .with_context(|| format!("user {}", u.name))?;
        }
        Ok(())
    }

    async fn user(&self, u: &User, applied: &mut Applied) -> anyhow::Result<()> {
        let user = self
            .identity(IdentityKind::User, &u.name, u.path.as_deref(), applied)
            .await?;
        for g in &u.groups {
            self.service
                .add_user_to_group(&self.caller, g, &u.name)
                .await
                .map_err(described)?;
        }
        for k in &u.keys {
            self.key(k, &user.arn, applied).await?;
        }
        self.policies(
            IdentityKind::User,
            &u.name,
            &u.managed_policies,
            &u.inline_policies,
        )
        .await
    }

    async fn role(&self, r: &Role, applied: &mut Applied) -> anyhow::Result<()> {
        let trust = r.trust_policy.text();
        let existing = self
            .service
            .find_identity(&self.system, self.account, IdentityKind::Role, &r.name)
            .await
            .map_err(described)?;
        match existing {
            Some(role) if role.trust_policy.as_deref() != Some(trust.as_str()) => {
                self.service
                    .update_trust_policy(&self.caller, &r.name, &trust)
                    .await
                    .map_err(described)?;
            }
            Some(_) => {}
            None => {
                self.service
                    .create_identity(
                        &self.caller,
                        NewIdentity {
                            kind: IdentityKind::Role,
                            name: &r.name,
                            path: r.path.as_deref(),
                            trust_policy: Some(&trust),
                            description: r.description.as_deref(),
                            max_session_duration: r.max_session_duration,
                        },
                    )
                    .await
                    .map_err(described)?;
                applied.created += 1;
            }
        }
        self.policies(
            IdentityKind::Role,
            &r.name,
            &r.managed_policies,
            &r.inline_policies,
        )
        .await
    }

    /// A user or group: the existing one, or a new one.
    async fn identity(
        &self,
        kind: IdentityKind,
        name: &str,
        path: Option<&str>,
        applied: &mut Applied,
    ) -> anyhow::Result<crate::meta::Identity> {
        if let Some(found) = self
            .service
            .find_identity(&self.system, self.account, kind, name)
            .await
            .map_err(described)?
        {
            return Ok(found);
        }
        let created = self
            .service
            .create_identity(
                &self.caller,
                NewIdentity {
                    kind,
                    name,
                    path,
                    trust_policy: None,
                    description: None,
                    max_session_duration: None,
                },
            )
            .await?;
        applied.created += 1;
        Ok(created)
    }

    /// Attach the named managed policies and put the inline ones.
    async fn policies(
        &self,
        kind: IdentityKind,
        name: &str,
        managed: &[String],
        inline: &BTreeMap<String, Document>,
    ) -> anyhow::Result<()> {
        for m in managed {
            let arn = self.policy_arn(m).await?;
            self.service
                .attach_policy(&self.caller, kind, name, &arn)
                .await
                .map_err(described)?;
        }
        for (policy_name, doc) in inline {
            self.service
                .put_inline_policy(&self.caller, kind, name, policy_name, &doc.text())
                .await
                .map_err(described)
                .with_context(|| format!("inline policy {policy_name}"))?;
        }
        Ok(())
    }

    /// An ARN as given, or the ARN of the account's (first) or AWS's policy of that name.
    async fn policy_arn(&self, reference: &str) -> anyhow::Result<String> {
        if reference.starts_with("arn:") {
            return Ok(reference.to_owned());
        }
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let visible = self
            .service
            .visible_managed_policies(&self.system, self.account)
            .await
            .map_err(described)?;
        visible
            .iter()
            .filter(|p| p.name == name)
            .min_by_key(|p| p.account_id == "aws")
            .map(|p| p.arn.clone())
            .with_context(|| format!("no managed policy named {reference}"))
    }

    /// Create a customer managed policy, or make its document the file's.
    async fn managed_policy(&self, p: &ManagedPolicy, applied: &mut Applied) -> anyhow::Result<()> {
        let doc = p.document.text();
        let path = p.path.as_deref().unwrap_or("/");
        let arn = crate::aws::Arn::policy(self.account, path, &p.name).to_string();
        let replaced = self
            .service
            .replace_managed_policy_document(&self.system, &arn, &doc)
            .await
            .map_err(described)?;
        if !replaced {
            self.service
                .create_managed_policy(
                    &self.caller,
                    &p.name,
                    Some(path),
                    p.description.as_deref(),
                    &doc,
                )
                .await
                .map_err(described)?;
            applied.created += 1;
        }
        Ok(())
    }

    /// An access key with a given secret: created, or checked to be the same key.
    async fn key(&self, k: &Key, owner_arn: &str, applied: &mut Applied) -> anyhow::Result<()> {
        let key = AccessKey {
            access_key_id: k.id.clone(),
            secret_access_key: k.secret.clone(),
            account_id: self.account.to_string(),
            principal_arn: owner_arn.to_owned(),
            active: k.active,
        };
        let outcome = self
            .service
            .import_access_key(&self.system, &key)
            .await
            .map_err(|e| match e {
                Error::Iam(_, message) => anyhow::anyhow!("{message}"),
                other => described(other),
            })?;
        if outcome == KeyImport::Created {
            applied.created += 1;
        }
        Ok(())
    }

    async fn repository(
        &self,
        r: &Repository,
        region: &Region,
        applied: &mut Applied,
    ) -> anyhow::Result<()> {
        let name: RepositoryName = r
            .name
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid repository name: {e}"))?;
        let ctx = self.ctx(region);
        let mutability = mutability(r)?;
        let mut settings = RepositorySettings::default();
        if let Some(m) = &mutability {
            settings.tag_mutability = m.clone();
        }
        if let Some(s) = r.scan_on_push {
            settings.scan_on_push = s;
        }
        match self
            .service
            .create_repository_with(&ctx, &name, &settings, &r.tags)
            .await
        {
            Ok(_) => applied.created += 1,
            Err(Error::RepositoryAlreadyExists { .. }) => {
                if let Some(m) = &mutability {
                    self.service
                        .put_image_tag_mutability(&ctx, &name, m)
                        .await
                        .map_err(described)?;
                }
                if let Some(s) = r.scan_on_push {
                    self.service
                        .put_image_scanning_configuration(&ctx, &name, s)
                        .await
                        .map_err(described)?;
                }
                if !r.tags.is_empty() {
                    self.service
                        .tag_resource(&ctx, &name, &r.tags)
                        .await
                        .map_err(described)?;
                }
            }
            Err(e) => return Err(described(e)),
        }
        if let Some(policy) = &r.policy {
            self.service
                .set_repository_policy(&ctx, &name, &policy.text(), true)
                .await
                .map_err(described)?;
        }
        Ok(())
    }
}

/// The mutability and its filters, checked together as PutImageTagMutability does.
fn mutability(r: &Repository) -> anyhow::Result<Option<TagMutability>> {
    let filters = r.image_tag_mutability_exclusion_filters.clone();
    let Some(mode) = r.image_tag_mutability.as_deref() else {
        if filters.is_empty() {
            return Ok(None);
        }
        bail!(
            "image_tag_mutability_exclusion_filters: {}",
            mutability::Invalid::FiltersWithoutExclusionMode
        );
    };
    let mode = mutability::Mode::parse(mode)
        .map_err(|e| anyhow::anyhow!("image_tag_mutability '{mode}': {e}"))?;
    TagMutability::new(mode, filters)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("image_tag_mutability_exclusion_filters: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<BootstrapFile> {
        let f: BootstrapFile = toml::from_str(text)?;
        f.check()?;
        Ok(f)
    }

    #[test]
    fn documents_may_be_text_or_tables() {
        let f = parse(
            r#"
            [[account]]
            id = "111111111111"
            [[account.user]]
            name = "ci"
            [account.user.inline_policies]
            text = '{"Version":"2012-10-17","Statement":[]}'
            table = { Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "ecr:*", Resource = "*" }] }
            "#,
        )
        .expect("parses");
        let docs = &f.accounts[0].users[0].inline_policies;
        assert_eq!(
            docs["text"].text(),
            r#"{"Version":"2012-10-17","Statement":[]}"#
        );
        let table: serde_json::Value =
            serde_json::from_str(&docs["table"].text()).expect("JSON text");
        assert_eq!(table["Statement"][0]["Action"], "ecr:*");
    }

    #[test]
    fn rejects_bad_ids_keys_and_unknown_fields() {
        assert!(parse("[[account]]\nid = \"12\"").is_err());
        assert!(parse("[[account]]\nid = \"111111111111\"\ncolour = 1").is_err());
        let key = |id: &str, secret: &str| {
            parse(&format!(
                "[[account]]\nid = \"111111111111\"\nroot_keys = [{{ id = \"{id}\", secret = \"{secret}\" }}]"
            ))
        };
        assert!(key("AKIAROOT0000000001", "0123456789abcdef0123").is_ok());
        assert!(key("ASIAROOT0000000001", "0123456789abcdef0123").is_err());
        assert!(key("AKIAshort", "0123456789abcdef0123").is_err());
        assert!(key("AKIAROOT0000000001", "short").is_err());
    }

    #[test]
    fn exclusion_filters_need_their_mutability() {
        let repo = |m: Option<&str>, filters: &[&str]| Repository {
            name: "app".into(),
            region: None,
            image_tag_mutability: m.map(str::to_owned),
            image_tag_mutability_exclusion_filters: filters.iter().map(|s| s.to_string()).collect(),
            scan_on_push: None,
            policy: None,
            tags: ResourceTags::default(),
        };
        assert_eq!(
            mutability(&repo(Some("IMMUTABLE"), &[]))
                .expect("ok")
                .map(|m| m.mode()),
            Some(mutability::Mode::Immutable)
        );
        assert!(mutability(&repo(None, &[])).expect("ok").is_none());
        assert!(mutability(&repo(None, &["dev-*"])).is_err());
        assert!(mutability(&repo(Some("IMMUTABLE"), &["dev-*"])).is_err());
        assert!(mutability(&repo(Some("IMMUTABLE_WITH_EXCLUSION"), &[])).is_err());
        assert!(mutability(&repo(Some("SOMETIMES"), &[])).is_err());
        let m = mutability(&repo(Some("IMMUTABLE_WITH_EXCLUSION"), &["dev-*"]))
            .expect("ok")
            .expect("set");
        assert_eq!(m.exclusions(), ["dev-*"]);
    }
}

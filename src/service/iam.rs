//! IAM and STS operations: users, access keys, roles, groups, inline and managed
//! policies, GetCallerIdentity and AssumeRole. Each is authorized as its `iam:*` or
//! `sts:*` action against the caller's policies, like every ECR operation.

use super::error::IamErrorKind as K;
use super::{Error, Result, Service};
use crate::auth::{self, Authenticator, Principal, RoleSession};
use crate::aws::Arn;
use crate::clock;
use crate::iam::{Policy, PolicyKind};
use crate::meta::{AccessKey, IamDeleteOutcome, Identity, IdentityKind, ManagedPolicyRow};

/// Who calls an IAM or STS operation, and from where.
pub struct IamCaller {
    pub principal: Principal,
    pub source_ip: Option<String>,
}

impl IamCaller {
    fn account(&self) -> Result<&str> {
        self.principal
            .account_id()
            .ok_or_else(|| Error::iam(K::InvalidInput, "no account"))
    }
}

/// CreateUser / CreateRole / CreateGroup input.
pub struct NewIdentity<'a> {
    pub kind: IdentityKind,
    pub name: &'a str,
    pub path: Option<&'a str>,
    /// Roles: the trust policy.
    pub trust_policy: Option<&'a str>,
    pub description: Option<&'a str>,
    pub max_session_duration: Option<i64>,
}

/// Access keys a user may have at once (IAM's quota).
const MAX_KEYS_PER_USER: usize = 2;
/// Managed policies attachable to one identity (IAM's default quota).
const MAX_ATTACHED: usize = 10;
/// Default and bounds of AssumeRole's DurationSeconds.
const DEFAULT_SESSION_SECONDS: i64 = 3600;
const MIN_SESSION_SECONDS: i64 = 900;

/// A unique id: `AIDA` + 17 characters, like IAM's.
fn unique_id(prefix: &str) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = auth::random_bytes(17)
        .iter()
        .map(|b| char::from(CHARS[usize::from(*b) % CHARS.len()]))
        .collect();
    format!("{prefix}{tail}")
}

fn noun(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::User => "user",
        IdentityKind::Role => "role",
        IdentityKind::Group => "group",
    }
}

fn titled(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::User => "User",
        IdentityKind::Role => "Role",
        IdentityKind::Group => "Group",
    }
}

/// `[\w+=,.@-]+` of at most `max` characters.
pub fn check_name(field: &str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::iam(
            K::ValidationError,
            format!("1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"),
        ))
    }
}

/// `/` or `/a/b/`.
pub fn check_path(path: &str) -> Result<()> {
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && path.chars().all(|c| ('!'..='~').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::iam(
            K::ValidationError,
            format!("1 validation error detected: Value '{path}' at 'path' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007F]+\\u002F)"),
        ))
    }
}

fn malformed(e: crate::iam::PolicyError) -> Error {
    Error::iam(K::MalformedPolicyDocument, e.0)
}

fn no_such(kind: IdentityKind, name: &str) -> Error {
    Error::iam(
        K::NoSuchEntity,
        format!("The {} with name {name} cannot be found.", noun(kind)),
    )
}

fn no_such_policy(kind: IdentityKind, policy_name: &str) -> Error {
    Error::iam(
        K::NoSuchEntity,
        format!(
            "The {} policy with name {policy_name} cannot be found.",
            noun(kind)
        ),
    )
}

fn identity_arn(account: &str, kind: IdentityKind, path: &str, name: &str) -> String {
    Arn::identity(account, noun(kind), path, name).to_string()
}

impl Service {
    async fn authorize_iam_action(
        &self,
        c: &IamCaller,
        action: &str,
        resource: &str,
    ) -> Result<()> {
        let account = c.account()?.to_owned();
        self.authorize_iam(
            &c.principal,
            c.source_ip.as_deref(),
            action,
            resource,
            &account,
            None,
        )
        .await
    }

    async fn existing(&self, c: &IamCaller, kind: IdentityKind, name: &str) -> Result<Identity> {
        self.meta
            .identity(c.account()?, kind, name)
            .await?
            .ok_or_else(|| no_such(kind, name))
    }

    /// Authorize `action` on an identity, then return it: denial comes before
    /// NoSuchEntity, as in IAM. One lookup serves both.
    pub(super) async fn authorized(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
        action: &str,
    ) -> Result<Identity> {
        let found = self.meta.identity(c.account()?, kind, name).await?;
        let arn = match &found {
            Some(i) => i.arn.clone(),
            None => identity_arn(c.account()?, kind, "/", name),
        };
        self.authorize_iam_action(c, action, &arn).await?;
        found.ok_or_else(|| no_such(kind, name))
    }

    /// The ARN an identity has (or would have, with the default path) for authorization.
    async fn arn_for(&self, c: &IamCaller, kind: IdentityKind, name: &str) -> Result<String> {
        Ok(match self.meta.identity(c.account()?, kind, name).await? {
            Some(i) => i.arn,
            None => identity_arn(c.account()?, kind, "/", name),
        })
    }

    // ---- users, roles, groups ----

    pub async fn create_identity(&self, c: &IamCaller, new: NewIdentity<'_>) -> Result<Identity> {
        let NewIdentity {
            kind,
            name,
            path,
            trust_policy,
            description,
            max_session_duration,
        } = new;
        check_name(
            &format!("{}Name", noun(kind)),
            name,
            if kind == IdentityKind::Group { 128 } else { 64 },
        )?;
        let path = path.unwrap_or("/");
        check_path(path)?;
        let account = c.account()?.to_owned();
        let arn = identity_arn(&account, kind, path, name);
        self.authorize_iam_action(c, &format!("iam:Create{}", titled(kind)), &arn)
            .await?;
        if let Some(doc) = trust_policy {
            self.check_trust_policy(doc).await?;
        }
        if let Some(d) = max_session_duration {
            if !(3600..=43200).contains(&d) {
                return Err(Error::iam(K::ValidationError, format!("1 validation error detected: Value '{d}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value less than or equal to 43200")));
            }
        }
        let prefix = match kind {
            IdentityKind::User => "AIDA",
            IdentityKind::Role => "AROA",
            IdentityKind::Group => "AGPA",
        };
        let identity = Identity {
            account_id: account,
            kind,
            name: name.to_owned(),
            id: unique_id(prefix),
            path: path.to_owned(),
            arn,
            trust_policy: trust_policy.map(str::to_owned),
            description: description.map(str::to_owned),
            max_session_duration: (kind == IdentityKind::Role)
                .then(|| max_session_duration.unwrap_or(DEFAULT_SESSION_SECONDS)),
            created_at: clock::now_ms(),
        };
        if !self.meta.create_identity(&identity).await? {
            return Err(Error::iam(
                K::EntityAlreadyExists,
                format!("{} with name {name} already exists.", titled(kind)),
            ));
        }
        Ok(identity)
    }

    /// UpdateAssumeRolePolicy: replace a role's trust policy.
    pub async fn update_trust_policy(&self, c: &IamCaller, role: &str, doc: &str) -> Result<()> {
        self.authorized(c, IdentityKind::Role, role, "iam:UpdateAssumeRolePolicy")
            .await?;
        self.check_trust_policy(doc).await?;
        self.meta.set_trust_policy(c.account()?, role, doc).await?;
        Ok(())
    }

    /// A trust policy: valid, `sts:` actions only, and naming principals that exist.
    async fn check_trust_policy(&self, doc: &str) -> Result<()> {
        Policy::parse(doc, PolicyKind::Trust).map_err(malformed)?;
        let v: serde_json::Value = serde_json::from_str(doc)
            .map_err(|_| Error::iam(K::MalformedPolicyDocument, "Syntax errors in policy."))?;
        if !statement_strings(&v, "Action")
            .iter()
            .chain(&statement_strings(&v, "NotAction"))
            .all(|a| a.to_ascii_lowercase().starts_with("sts:"))
        {
            return Err(Error::iam(
                K::MalformedPolicyDocument,
                "AssumeRole policy may only specify STS AssumeRole actions.",
            ));
        }
        for arn in principal_arns(&v) {
            if (arn.contains(":user/") || arn.contains(":role/"))
                && self.meta.identity_by_arn(&arn).await?.is_none()
            {
                return Err(Error::iam(
                    K::MalformedPolicyDocument,
                    format!("Invalid principal in policy: \"AWS\":\"{arn}\""),
                ));
            }
        }
        Ok(())
    }

    /// GetUser / GetRole / GetGroup. GetUser without a name is the calling user.
    pub async fn get_identity(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: Option<&str>,
    ) -> Result<Identity> {
        let name = match (name, &c.principal) {
            (Some(n), _) => n.to_owned(),
            (None, Principal::User { name, .. }) => name.clone(),
            (None, Principal::Root { account_id, .. }) if kind == IdentityKind::User => {
                return Ok(Identity {
                    account_id: account_id.clone(),
                    kind,
                    name: String::new(),
                    id: account_id.clone(),
                    path: "/".into(),
                    arn: c.principal.arn(),
                    trust_policy: None,
                    description: None,
                    max_session_duration: None,
                    created_at: 0,
                });
            }
            (None, _) => {
                return Err(Error::iam(
                    K::ValidationError,
                    "Must specify userName when calling with non-User credentials",
                ))
            }
        };
        self.authorized(c, kind, &name, &format!("iam:Get{}", titled(kind)))
            .await
    }

    pub async fn list_identities(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        path_prefix: Option<&str>,
    ) -> Result<Vec<Identity>> {
        let account = c.account()?.to_owned();
        let resource = Arn::identity(&account, noun(kind), "/", "").to_string();
        self.authorize_iam_action(c, &format!("iam:List{}s", titled(kind)), &resource)
            .await?;
        Ok(self
            .meta
            .identities(&account, kind, path_prefix.unwrap_or("/"))
            .await?)
    }

    pub async fn delete_identity(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
    ) -> Result<()> {
        let arn = self.arn_for(c, kind, name).await?;
        self.authorize_iam_action(c, &format!("iam:Delete{}", titled(kind)), &arn)
            .await?;
        let outcome = self.meta.delete_identity(c.account()?, kind, name).await?;
        match outcome {
            IamDeleteOutcome::Deleted => Ok(()),
            IamDeleteOutcome::NotFound => Err(no_such(kind, name)),
            IamDeleteOutcome::Conflict(m) => Err(Error::iam(K::DeleteConflict, m)),
        }
    }

    /// The users of a group (GetGroup lists them with the group).
    pub async fn group_members(&self, c: &IamCaller, group: &str) -> Result<Vec<Identity>> {
        Ok(self.meta.group_members(c.account()?, group).await?)
    }

    pub async fn add_user_to_group(&self, c: &IamCaller, group: &str, user: &str) -> Result<()> {
        self.authorized(c, IdentityKind::Group, group, "iam:AddUserToGroup")
            .await?;
        self.existing(c, IdentityKind::User, user).await?;
        self.meta
            .add_group_member(c.account()?, group, user)
            .await?;
        Ok(())
    }

    // ---- access keys ----

    /// The user an access-key operation is about (the named one, or the calling user;
    /// `None` for a root acting on its own keys), authorized as `action`, and the ARN its
    /// keys belong to.
    async fn key_owner(
        &self,
        c: &IamCaller,
        user: Option<&str>,
        action: &str,
    ) -> Result<(Option<Identity>, String)> {
        let name = match (user, &c.principal) {
            (Some(n), _) => n,
            (None, Principal::User { name, .. }) => name.as_str(),
            (None, Principal::Root { .. }) => {
                self.authorize_iam_action(c, action, &c.principal.arn())
                    .await?;
                return Ok((None, c.principal.arn()));
            }
            (None, _) => {
                return Err(Error::iam(
                    K::ValidationError,
                    "Must specify userName when calling with non-User credentials",
                ))
            }
        };
        let owner = self.authorized(c, IdentityKind::User, name, action).await?;
        let arn = owner.arn.clone();
        Ok((Some(owner), arn))
    }

    pub async fn create_access_key(
        &self,
        c: &IamCaller,
        user: Option<&str>,
    ) -> Result<(AccessKey, Option<String>)> {
        let (owner, principal_arn) = self.key_owner(c, user, "iam:CreateAccessKey").await?;
        if self.meta.access_keys_of(&principal_arn).await?.len() >= MAX_KEYS_PER_USER {
            return Err(Error::iam(
                K::LimitExceeded,
                "Cannot exceed quota for AccessKeysPerUser: 2",
            ));
        }
        let (id, secret) = auth::new_access_key();
        let key = AccessKey {
            access_key_id: id,
            secret_access_key: secret,
            account_id: c.account()?.to_owned(),
            principal_arn,
            active: true,
        };
        self.meta.create_access_key(&key, clock::now_ms()).await?;
        Ok((key, owner.map(|u| u.name)))
    }

    pub async fn list_access_keys(
        &self,
        c: &IamCaller,
        user: Option<&str>,
    ) -> Result<(Option<String>, Vec<(AccessKey, i64)>)> {
        let (owner, principal_arn) = self.key_owner(c, user, "iam:ListAccessKeys").await?;
        let keys = self.meta.access_keys_of(&principal_arn).await?;
        let created = self.meta.access_key_created(&principal_arn).await?;
        Ok((
            owner.map(|u| u.name),
            keys.into_iter()
                .map(|k| {
                    let at = created
                        .iter()
                        .find(|(id, _)| *id == k.access_key_id)
                        .map_or(0, |(_, t)| *t);
                    (k, at)
                })
                .collect(),
        ))
    }

    /// DeleteAccessKey (`status` None) or UpdateAccessKey.
    pub async fn change_access_key(
        &self,
        c: &IamCaller,
        user: Option<&str>,
        key_id: &str,
        status: Option<bool>,
    ) -> Result<()> {
        let action = if status.is_some() {
            "iam:UpdateAccessKey"
        } else {
            "iam:DeleteAccessKey"
        };
        let (_, principal_arn) = self.key_owner(c, user, action).await?;
        let done = match status {
            Some(active) => {
                self.meta
                    .set_access_key_status(key_id, &principal_arn, active)
                    .await?
            }
            None => self.meta.delete_access_key(key_id, &principal_arn).await?,
        };
        if done {
            Ok(())
        } else {
            Err(Error::iam(
                K::NoSuchEntity,
                format!("The Access Key with id {key_id} cannot be found."),
            ))
        }
    }

    // ---- inline policies ----

    pub async fn put_inline_policy(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        check_name("policyName", policy_name, 128)?;
        self.authorized(c, kind, name, &format!("iam:Put{}Policy", titled(kind)))
            .await?;
        Policy::parse(document, PolicyKind::Identity).map_err(malformed)?;
        self.meta
            .put_inline_policy(c.account()?, kind, name, policy_name, document)
            .await?;
        Ok(())
    }

    pub async fn get_inline_policy(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
        policy_name: &str,
    ) -> Result<(Identity, String)> {
        let who = self
            .authorized(c, kind, name, &format!("iam:Get{}Policy", titled(kind)))
            .await?;
        let doc = self
            .meta
            .inline_policy(c.account()?, kind, name, policy_name)
            .await?
            .ok_or_else(|| no_such_policy(kind, policy_name))?;
        Ok((who, doc))
    }

    pub async fn list_inline_policies(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
    ) -> Result<Vec<String>> {
        self.authorized(c, kind, name, &format!("iam:List{}Policies", titled(kind)))
            .await?;
        Ok(self
            .meta
            .inline_policy_names(c.account()?, kind, name)
            .await?)
    }

    pub async fn delete_inline_policy(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
        policy_name: &str,
    ) -> Result<()> {
        self.authorized(c, kind, name, &format!("iam:Delete{}Policy", titled(kind)))
            .await?;
        let deleted = self
            .meta
            .delete_inline_policy(c.account()?, kind, name, policy_name)
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(no_such_policy(kind, policy_name))
        }
    }

    // ---- managed policies ----

    pub async fn create_managed_policy(
        &self,
        c: &IamCaller,
        name: &str,
        path: Option<&str>,
        description: Option<&str>,
        document: &str,
    ) -> Result<ManagedPolicyRow> {
        check_name("policyName", name, 128)?;
        let path = path.unwrap_or("/");
        check_path(path)?;
        let account = c.account()?.to_owned();
        let arn = Arn::policy(&account, path, name).to_string();
        self.authorize_iam_action(c, "iam:CreatePolicy", &arn)
            .await?;
        Policy::parse(document, PolicyKind::Identity).map_err(malformed)?;
        let now = clock::now_ms();
        let row = ManagedPolicyRow {
            arn,
            account_id: account,
            name: name.to_owned(),
            id: unique_id("ANPA"),
            path: path.to_owned(),
            description: description.map(str::to_owned),
            document: document.to_owned(),
            version_id: "v1".into(),
            created_at: now,
            updated_at: now,
        };
        if !self.meta.create_managed_policy(&row).await? {
            return Err(Error::iam(
                K::EntityAlreadyExists,
                format!("A policy called {name} already exists. Duplicate names are not allowed."),
            ));
        }
        Ok(row)
    }

    /// A managed policy the caller's account can see, and its attachment count there.
    pub async fn get_managed_policy(
        &self,
        c: &IamCaller,
        arn: &str,
    ) -> Result<(ManagedPolicyRow, i64)> {
        self.authorize_iam_action(c, "iam:GetPolicy", arn).await?;
        self.visible_policy(c, arn).await
    }

    async fn visible_policy(&self, c: &IamCaller, arn: &str) -> Result<(ManagedPolicyRow, i64)> {
        let account = c.account()?.to_owned();
        let row = self
            .meta
            .managed_policy(arn)
            .await?
            .filter(|p| p.account_id == account || p.account_id == "aws")
            .ok_or_else(|| {
                Error::iam(
                    K::NoSuchEntity,
                    format!("Policy {arn} does not exist or is not attachable."),
                )
            })?;
        let n = self.meta.attachment_count(arn, &account).await?;
        Ok((row, n))
    }

    pub async fn get_policy_version(
        &self,
        c: &IamCaller,
        arn: &str,
        version: &str,
    ) -> Result<ManagedPolicyRow> {
        self.authorize_iam_action(c, "iam:GetPolicyVersion", arn)
            .await?;
        let (row, _) = self.visible_policy(c, arn).await?;
        if row.version_id != version {
            return Err(Error::iam(
                K::NoSuchEntity,
                format!("Policy {arn} version {version} does not exist or is not attachable."),
            ));
        }
        Ok(row)
    }

    /// ListPolicies; `scope` is All, AWS or Local.
    pub async fn list_managed_policies(
        &self,
        c: &IamCaller,
        scope: &str,
        only_attached: bool,
        path_prefix: Option<&str>,
    ) -> Result<Vec<(ManagedPolicyRow, i64)>> {
        let account = c.account()?.to_owned();
        self.authorize_iam_action(
            c,
            "iam:ListPolicies",
            &Arn::policy(&account, "/", "").to_string(),
        )
        .await?;
        let prefix = path_prefix.unwrap_or("/");
        Ok(self
            .meta
            .managed_policies(&account)
            .await?
            .into_iter()
            .filter(|(p, n)| {
                let in_scope = match scope {
                    "AWS" => p.account_id == "aws",
                    "Local" => p.account_id != "aws",
                    _ => true,
                };
                in_scope && (!only_attached || *n > 0) && p.path.starts_with(prefix)
            })
            .collect())
    }

    pub async fn delete_managed_policy(&self, c: &IamCaller, arn: &str) -> Result<()> {
        self.authorize_iam_action(c, "iam:DeletePolicy", arn)
            .await?;
        let account = c.account()?.to_owned();
        match self.meta.managed_policy(arn).await? {
            Some(p) if p.account_id == account => {}
            _ => {
                return Err(Error::iam(
                    K::NoSuchEntity,
                    format!("Policy {arn} was not found."),
                ))
            }
        }
        match self.meta.delete_managed_policy(arn).await? {
            IamDeleteOutcome::Deleted => Ok(()),
            IamDeleteOutcome::NotFound => Err(Error::iam(
                K::NoSuchEntity,
                format!("Policy {arn} was not found."),
            )),
            IamDeleteOutcome::Conflict(m) => Err(Error::iam(K::DeleteConflict, m)),
        }
    }

    pub async fn attach_policy(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
        policy_arn: &str,
    ) -> Result<()> {
        self.authorized(c, kind, name, &format!("iam:Attach{}Policy", titled(kind)))
            .await?;
        self.visible_policy(c, policy_arn).await?;
        let attached = self
            .meta
            .attached_policies(c.account()?, kind, name)
            .await?;
        if attached.len() >= MAX_ATTACHED && !attached.iter().any(|(_, a)| a == policy_arn) {
            return Err(Error::iam(
                K::LimitExceeded,
                format!(
                    "Cannot exceed quota for PoliciesPer{}: {MAX_ATTACHED}",
                    titled(kind)
                ),
            ));
        }
        self.meta
            .attach_policy(c.account()?, kind, name, policy_arn)
            .await?;
        Ok(())
    }

    pub async fn detach_policy(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
        policy_arn: &str,
    ) -> Result<()> {
        self.authorized(c, kind, name, &format!("iam:Detach{}Policy", titled(kind)))
            .await?;
        let detached = self
            .meta
            .detach_policy(c.account()?, kind, name, policy_arn)
            .await?;
        if detached {
            Ok(())
        } else {
            Err(Error::iam(
                K::NoSuchEntity,
                format!("Policy {policy_arn} was not found."),
            ))
        }
    }

    pub async fn list_attached_policies(
        &self,
        c: &IamCaller,
        kind: IdentityKind,
        name: &str,
    ) -> Result<Vec<(String, String)>> {
        self.authorized(
            c,
            kind,
            name,
            &format!("iam:ListAttached{}Policies", titled(kind)),
        )
        .await?;
        Ok(self
            .meta
            .attached_policies(c.account()?, kind, name)
            .await?)
    }

    // ---- STS ----

    /// Act as an AWS service (`ecs-tasks.amazonaws.com`) assuming a role, as ECS does
    /// for a task's execution role: allowed only when the role's trust policy names that
    /// service. Local administration only (`berth admin assume-role --as-service`).
    pub async fn assume_role_as_service(
        &self,
        auth: &Authenticator,
        role_arn: &str,
        service_principal: &str,
        session_name: &str,
        duration: Option<i64>,
    ) -> Result<AssumedRole> {
        check_session_name(session_name)?;
        let deny = || {
            Error::AccessDenied(format!(
                "Service: {service_principal} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            ))
        };
        let (role, trust) = self.role_with_trust(role_arn).await?.ok_or_else(deny)?;
        if !trust.trusts_service(service_principal, "sts:AssumeRole") {
            return Err(deny());
        }
        self.issue_role_session(auth, &role, session_name, duration)
    }

    /// The role an ARN names and its trust policy; `None` when there is no such role or
    /// its trust policy does not parse (nobody may assume it then).
    pub(super) async fn role_with_trust(
        &self,
        role_arn: &str,
    ) -> Result<Option<(Identity, Policy)>> {
        let Some(role) = self
            .meta
            .identity_by_arn(role_arn)
            .await?
            .filter(|r| r.kind == IdentityKind::Role)
        else {
            return Ok(None);
        };
        let trust = role
            .trust_policy
            .as_deref()
            .and_then(|t| Policy::parse(t, PolicyKind::Trust).ok());
        Ok(trust.map(|t| (role, t)))
    }

    /// AssumeRole: the caller must be allowed `sts:AssumeRole` by the role's trust policy
    /// (and, if the trust policy names only its account, by its own identity policies).
    pub async fn assume_role(
        &self,
        c: &IamCaller,
        auth: &Authenticator,
        role_arn: &str,
        session_name: &str,
        duration: Option<i64>,
    ) -> Result<AssumedRole> {
        check_session_name(session_name)?;
        let deny = || {
            Error::AccessDenied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                c.principal.arn()
            ))
        };
        if matches!(c.principal, Principal::Root { .. }) {
            return Err(Error::AccessDenied(
                "Roles may not be assumed by root accounts.".into(),
            ));
        }
        let (role, trust) = self.role_with_trust(role_arn).await?.ok_or_else(deny)?;
        self.authorize_iam(
            &c.principal,
            c.source_ip.as_deref(),
            "sts:AssumeRole",
            role_arn,
            &role.account_id,
            Some(&trust),
        )
        .await
        .map_err(|_| deny())?;
        self.issue_role_session(auth, &role, session_name, duration)
    }

    /// Temporary credentials of a session of `role`, once the caller may assume it.
    fn issue_role_session(
        &self,
        auth: &Authenticator,
        role: &Identity,
        session_name: &str,
        duration: Option<i64>,
    ) -> Result<AssumedRole> {
        let max = role.max_session_duration.unwrap_or(DEFAULT_SESSION_SECONDS);
        let seconds = duration.unwrap_or(DEFAULT_SESSION_SECONDS);
        if seconds < MIN_SESSION_SECONDS {
            return Err(Error::iam(K::ValidationError, format!("1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900")));
        }
        if seconds > max {
            return Err(Error::iam(
                K::ValidationError,
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        let expires = clock::now_ms() / 1000 + seconds;
        let session = RoleSession {
            account_id: role.account_id.clone(),
            role_name: role.name.clone(),
            role_id: role.id.clone(),
            role_arn: role.arn.clone(),
            session_name: session_name.to_owned(),
        };
        let (principal, access_key_id, secret_access_key, session_token) =
            auth.issue_session(session, expires);
        Ok(AssumedRole {
            arn: principal.arn(),
            assumed_role_id: principal.user_id(),
            access_key_id,
            secret_access_key,
            session_token,
            expires,
        })
    }
}

/// What AssumeRole returns.
pub struct AssumedRole {
    pub arn: String,
    pub assumed_role_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Epoch seconds.
    pub expires: i64,
}

fn check_session_name(name: &str) -> Result<()> {
    let ok = (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::iam(K::ValidationError, format!("1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*")))
    }
}

/// The statements of a document (`Statement` may be one object or a list).
fn statements(doc: &serde_json::Value) -> Vec<&serde_json::Value> {
    match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.iter().collect(),
        Some(s) => vec![s],
        None => Vec::new(),
    }
}

/// The strings of a string-or-list value.
fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every string of a statement field (`Action`), across the document's statements.
fn statement_strings(doc: &serde_json::Value, field: &str) -> Vec<String> {
    statements(doc)
        .into_iter()
        .flat_map(|s| strings(s.get(field)))
        .collect()
}

/// Every `"AWS"` principal ARN a document names.
pub fn principal_arns(doc: &serde_json::Value) -> Vec<String> {
    statements(doc)
        .into_iter()
        .flat_map(|s| {
            ["Principal", "NotPrincipal"]
                .into_iter()
                .flat_map(move |f| strings(s.get(f).and_then(|p| p.get("AWS"))))
        })
        .filter(|a| a.starts_with("arn:"))
        .collect()
}

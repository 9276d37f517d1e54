//! Who is calling. A [`Principal`] is made by authentication only: every variant carries
//! a [`Seal`] that no module outside `auth` can create, so the rest of the code can read
//! and match a principal but never forge one. Local administration, bootstrap and
//! background jobs act through explicit constructors that log what they act for.

use serde::{Deserialize, Serialize};

use crate::aws::Arn;

/// Proof that a principal came from `auth`: its field is private to this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal(());

impl Seal {
    pub(super) fn new() -> Seal {
        Seal(())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Principal {
    /// An account's root user.
    Root {
        account_id: String,
        #[serde(skip, default = "Seal::new")]
        seal: Seal,
    },
    /// An IAM user.
    User {
        account_id: String,
        name: String,
        /// `AIDA...`
        id: String,
        arn: String,
        #[serde(skip, default = "Seal::new")]
        seal: Seal,
    },
    /// A role session from STS AssumeRole.
    AssumedRole {
        account_id: String,
        role_name: String,
        /// `AROA...`
        role_id: String,
        role_arn: String,
        session_name: String,
        /// When the session's credentials expire (epoch seconds).
        expires: i64,
        #[serde(skip, default = "Seal::new")]
        seal: Seal,
    },
    /// Berth itself: `berth admin`, the bootstrap, background jobs. Policies do not
    /// apply to it; every use is logged with its purpose.
    #[serde(rename = "Admin")]
    System {
        #[serde(skip, default = "Seal::new")]
        seal: Seal,
    },
}

/// The role session an AssumeRole grants (see `Authenticator::issue_session`).
#[derive(Debug, Clone)]
pub struct RoleSession {
    pub account_id: String,
    pub role_name: String,
    pub role_id: String,
    pub role_arn: String,
    pub session_name: String,
}

impl Principal {
    /// Berth acting for itself, for `purpose` (logged: the audit trail of system acts).
    pub fn system(purpose: &str) -> Principal {
        tracing::info!(target: "berth::audit", purpose, "acting as the system principal");
        Principal::System { seal: Seal::new() }
    }

    /// Berth acting as an account's root, for `purpose` (logged): the bootstrap file
    /// and `berth admin` commands that do what the account's owner would.
    pub fn system_as_root(account_id: &str, purpose: &str) -> Principal {
        tracing::info!(target: "berth::audit", account_id, purpose, "acting as the account's root");
        Principal::root(account_id)
    }

    pub(super) fn root(account_id: &str) -> Principal {
        Principal::Root {
            account_id: account_id.to_owned(),
            seal: Seal::new(),
        }
    }

    pub(super) fn user(account_id: String, name: String, id: String, arn: String) -> Principal {
        Principal::User {
            account_id,
            name,
            id,
            arn,
            seal: Seal::new(),
        }
    }

    /// A role session Berth itself opens for an AWS service whose role it plays (the
    /// pull-through cache's `customRoleArn`, trusted by
    /// `pullthroughcache.ecr.amazonaws.com`): the caller checked the trust. Logged.
    pub fn service_role_session(s: RoleSession, expires: i64, service: &str) -> Principal {
        tracing::info!(target: "berth::audit", role = s.role_arn, service, "a service assumes a role");
        Self::assumed_role(s, expires)
    }

    pub(super) fn assumed_role(s: RoleSession, expires: i64) -> Principal {
        Principal::AssumedRole {
            account_id: s.account_id,
            role_name: s.role_name,
            role_id: s.role_id,
            role_arn: s.role_arn,
            session_name: s.session_name,
            expires,
            seal: Seal::new(),
        }
    }

    pub fn is_system(&self) -> bool {
        matches!(self, Principal::System { .. })
    }

    pub fn is_root(&self) -> bool {
        matches!(self, Principal::Root { .. })
    }

    pub fn arn(&self) -> String {
        match self {
            Principal::Root { account_id, .. } => Arn::root(account_id).to_string(),
            Principal::User { arn, .. } => arn.clone(),
            Principal::AssumedRole {
                account_id,
                role_name,
                session_name,
                ..
            } => Arn::assumed_role(account_id, role_name, session_name).to_string(),
            Principal::System { .. } => "arn:aws:iam::berth:admin".to_owned(),
        }
    }

    pub fn account_id(&self) -> Option<&str> {
        match self {
            Principal::Root { account_id, .. }
            | Principal::User { account_id, .. }
            | Principal::AssumedRole { account_id, .. } => Some(account_id),
            Principal::System { .. } => None,
        }
    }

    /// `aws:userid` / GetCallerIdentity's `UserId`.
    pub fn user_id(&self) -> String {
        match self {
            Principal::Root { account_id, .. } => account_id.clone(),
            Principal::User { id, .. } => id.clone(),
            Principal::AssumedRole {
                role_id,
                session_name,
                ..
            } => format!("{role_id}:{session_name}"),
            Principal::System { .. } => "berth-admin".to_owned(),
        }
    }

    /// The caller as policies see it; `None` for the system principal.
    pub fn caller(&self) -> Option<crate::iam::Caller> {
        use crate::iam::{Caller, CallerKind};
        let (kind, principal_arn, user_name) = match self {
            Principal::Root { .. } => (CallerKind::Account, self.arn(), None),
            Principal::User { arn, name, .. } => {
                (CallerKind::User, arn.clone(), Some(name.clone()))
            }
            Principal::AssumedRole { role_arn, .. } => {
                (CallerKind::AssumedRole, role_arn.clone(), None)
            }
            Principal::System { .. } => return None,
        };
        Some(Caller {
            kind,
            account_id: self.account_id()?.to_owned(),
            arn: self.arn(),
            principal_arn,
            user_id: self.user_id(),
            user_name,
        })
    }
}

//! IAM login profiles: an IAM user's console password, kept only as an argon2id hash.
//! The operations are IAM's (CreateLoginProfile, GetLoginProfile, UpdateLoginProfile,
//! DeleteLoginProfile), each authorized as its `iam:` action on the user's ARN.

use super::{Error, IamCaller, IamErrorKind as K, Result, Service};
use crate::clock;
use crate::meta::{Identity, IdentityKind, LoginProfileRow};

/// A login profile as IAM shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginProfile {
    pub user_name: String,
    pub created_at: i64,
    pub reset_required: bool,
}

/// IAM's default password policy: 8 to 128 characters, at least three of upper-case
/// letters, lower-case letters, digits and symbols.
fn check_password(password: &str) -> Result<()> {
    let len = password.chars().count();
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if !(8..=128).contains(&len) || classes < 3 {
        return Err(Error::iam(
            K::PasswordPolicyViolation,
            "Password does not conform to the account password policy.",
        ));
    }
    Ok(())
}

async fn hash(password: &str) -> Result<String> {
    crate::auth::password::hash(password)
        .await
        .map_err(Error::Internal)
}

fn no_profile(user: &str) -> Error {
    Error::iam(
        K::NoSuchEntity,
        format!("Login Profile for User {user} cannot be found."),
    )
}

impl Service {
    /// The user a login-profile operation is about (named, or the calling user),
    /// authorized as `action`.
    async fn profile_owner(
        &self,
        c: &IamCaller,
        user: Option<&str>,
        action: &str,
    ) -> Result<Identity> {
        let name = match (user, &c.principal) {
            (Some(n), _) => n.to_owned(),
            (None, super::Principal::User { name, .. }) => name.clone(),
            (None, _) => {
                return Err(Error::iam(
                    K::ValidationError,
                    "Must specify userName when calling with non-User credentials",
                ))
            }
        };
        self.authorized(c, IdentityKind::User, &name, action).await
    }

    pub async fn create_login_profile(
        &self,
        c: &IamCaller,
        user: Option<&str>,
        password: &str,
        reset_required: bool,
    ) -> Result<LoginProfile> {
        let owner = self
            .profile_owner(c, user, "iam:CreateLoginProfile")
            .await?;
        check_password(password)?;
        let row = LoginProfileRow {
            password_hash: hash(password).await?,
            reset_required,
            created_at: clock::now_ms(),
        };
        if !self.meta.create_login_profile(&owner.id, &row).await? {
            return Err(Error::iam(
                K::EntityAlreadyExists,
                format!("Login Profile for user {} already exists.", owner.name),
            ));
        }
        Ok(LoginProfile {
            user_name: owner.name,
            created_at: row.created_at,
            reset_required,
        })
    }

    pub async fn get_login_profile(
        &self,
        c: &IamCaller,
        user: Option<&str>,
    ) -> Result<LoginProfile> {
        let owner = self.profile_owner(c, user, "iam:GetLoginProfile").await?;
        let row = self
            .meta
            .login_profile(&owner.id)
            .await?
            .ok_or_else(|| no_profile(&owner.name))?;
        Ok(LoginProfile {
            user_name: owner.name,
            created_at: row.created_at,
            reset_required: row.reset_required,
        })
    }

    pub async fn update_login_profile(
        &self,
        c: &IamCaller,
        user: Option<&str>,
        password: Option<&str>,
        reset_required: Option<bool>,
    ) -> Result<()> {
        let owner = self
            .profile_owner(c, user, "iam:UpdateLoginProfile")
            .await?;
        let hashed = match password {
            Some(p) => {
                check_password(p)?;
                Some(hash(p).await?)
            }
            None => None,
        };
        if !self
            .meta
            .update_login_profile(&owner.id, hashed.as_deref(), reset_required)
            .await?
        {
            return Err(no_profile(&owner.name));
        }
        Ok(())
    }

    pub async fn delete_login_profile(&self, c: &IamCaller, user: Option<&str>) -> Result<()> {
        let owner = self
            .profile_owner(c, user, "iam:DeleteLoginProfile")
            .await?;
        if !self.meta.delete_login_profile(&owner.id).await? {
            return Err(no_profile(&owner.name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_password_policy() {
        assert!(check_password("Correct-Horse-1").is_ok());
        assert!(check_password("short1A").is_err());
        assert!(check_password("alllowercaseletters").is_err());
        assert!(check_password("lower-and-symbols").is_err());
        assert!(check_password("lower-symbols-digits-1").is_ok());
        assert!(check_password(&"aA1".repeat(50)).is_err());
    }
}

//! Console sessions: who signed in, carried in a cookie the server signs (so any node
//! can check it without a lookup), with the session's CSRF token inside. Sign-in is by
//! an access key pair (an account's root or a user) or by an IAM user's password.

use serde::{Deserialize, Serialize};

use super::{keys::KeyOwnerIdentity, ApiAuthError, Authenticator, Principal};

/// How long a console session lasts (epoch seconds).
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// What the cookie asserts. `console_session` (the CSRF token) is a field no other token
/// this server signs has, so no other token passes for a session, nor a session for one.
#[derive(Serialize, Deserialize)]
struct ConsoleClaims {
    console_session: String,
    exp: i64,
    principal: Principal,
}

/// A valid console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub principal: Principal,
    /// Every form of the session carries it back.
    pub csrf: String,
    pub expires: i64,
}

/// A user's console password as stored, and the user.
#[derive(Clone)]
pub struct StoredLogin {
    pub password_hash: String,
    pub owner: KeyOwnerIdentity,
}

impl Authenticator {
    /// A session for `principal`: the cookie value, and the session.
    pub fn issue_console_session(
        &self,
        principal: &Principal,
        now: i64,
    ) -> (String, ConsoleSession) {
        let csrf = super::random_token();
        let claims = ConsoleClaims {
            console_session: csrf.clone(),
            exp: now + SESSION_SECONDS,
            principal: principal.clone(),
        };
        let cookie = self.token_key.issue_as(&claims);
        (
            cookie,
            ConsoleSession {
                principal: principal.clone(),
                csrf,
                expires: claims.exp,
            },
        )
    }

    /// The session a cookie value carries, if it is this server's and not expired.
    pub fn console_session(&self, cookie: &str, now: i64) -> Option<ConsoleSession> {
        let claims: ConsoleClaims = self.token_key.verify_as(cookie).ok()?;
        (claims.exp > now && !claims.principal.is_system()).then_some(ConsoleSession {
            principal: claims.principal,
            csrf: claims.console_session,
            expires: claims.exp,
        })
    }

    /// An IAM user signing in with the password of its login profile.
    pub async fn password_caller(
        &self,
        account_id: &str,
        user_name: &str,
        password: &str,
    ) -> Result<Principal, ApiAuthError> {
        let found = self
            .keys
            .store()
            .find_login(account_id, user_name)
            .await
            .map_err(ApiAuthError::Backend)?;
        // A missing user costs a hash too, so timing does not tell which users exist.
        let Some(login) = found else {
            let _ = super::password::matches(DUMMY_HASH, password).await;
            return Err(ApiAuthError::UnrecognizedClient);
        };
        if !super::password::matches(&login.password_hash, password).await {
            return Err(ApiAuthError::UnrecognizedClient);
        }
        match login.owner {
            KeyOwnerIdentity::User {
                account_id,
                name,
                id,
                arn,
            } => Ok(Principal::user(account_id, name, id, arn)),
            KeyOwnerIdentity::Root { .. } => Err(ApiAuthError::UnrecognizedClient),
        }
    }
}

/// A hash of a random password, checked when the user does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2gr0QkAcd4sgRgUg4cz5a2B0TRSDGzLH5b4IbWLXvlg";

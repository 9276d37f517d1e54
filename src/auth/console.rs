//! Console sessions: who signed in, carried in a cookie the server signs, with the
//! session's CSRF token inside. Sign-in is by an access key pair (an account's root or
//! a user) or by an IAM user's password. A session lasts while what it was opened with
//! does: deleting or deactivating the key, or deleting or changing the password, ends
//! it (checked on each request, through the key cache or one lookup).

use serde::{Deserialize, Serialize};

use super::{keys::KeyOwnerIdentity, Authenticator, Principal};

/// How long a console session lasts (epoch seconds).
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// What the cookie asserts. `console_session` (the CSRF token) is a field no other token
/// this server signs has, so no other token passes for a session, nor a session for one.
#[derive(Serialize, Deserialize)]
struct ConsoleClaims {
    console_session: String,
    exp: i64,
    principal: Principal,
    via: SignedInWith,
}

/// What a session was opened with, checked again on each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedInWith {
    /// An access key, by id.
    AccessKey(String),
    /// A password: a fingerprint of the stored hash, so that a new password ends the
    /// sessions opened with the old one.
    Password(String),
}

/// What a sign-in form presents.
pub enum Credentials<'a> {
    AccessKey {
        id: &'a str,
        secret: &'a str,
    },
    Password {
        account_id: &'a str,
        user_name: &'a str,
        password: &'a str,
    },
}

/// How a sign-in ended. A refusal names the identity when it exists (a wrong secret or
/// password), for the audit trail; never to the user.
pub enum SignIn {
    Accepted(Principal, SignedInWith),
    Refused(Option<Principal>),
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
        via: SignedInWith,
        now: i64,
    ) -> (String, ConsoleSession) {
        let csrf = super::random_token();
        let claims = ConsoleClaims {
            console_session: csrf.clone(),
            exp: now + SESSION_SECONDS,
            principal: principal.clone(),
            via,
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

    /// The session a cookie value carries, if it is this server's, not expired, and
    /// what it was opened with still stands.
    pub async fn console_session(&self, cookie: &str, now: i64) -> Option<ConsoleSession> {
        let (session, via) = self.decode_console_session(cookie, now)?;
        self.still_valid(&session.principal, &via)
            .await
            .then_some(session)
    }

    /// A cookie's session, checked for its signature and expiry only.
    fn decode_console_session(
        &self,
        cookie: &str,
        now: i64,
    ) -> Option<(ConsoleSession, SignedInWith)> {
        let claims: ConsoleClaims = self.token_key.verify_as(cookie).ok()?;
        (claims.exp > now && !claims.principal.is_system()).then_some((
            ConsoleSession {
                principal: claims.principal,
                csrf: claims.console_session,
                expires: claims.exp,
            },
            claims.via,
        ))
    }

    async fn still_valid(&self, principal: &Principal, via: &SignedInWith) -> bool {
        match via {
            SignedInWith::AccessKey(id) => matches!(
                self.keys.owner(id).await,
                Ok(Some(k)) if k.active && k.principal == *principal
            ),
            SignedInWith::Password(fingerprint) => {
                let Principal::User {
                    account_id, name, ..
                } = principal
                else {
                    return false;
                };
                matches!(
                    self.keys.store().find_login(account_id, name).await,
                    Ok(Some(login)) if password_fingerprint(&login.password_hash) == *fingerprint
                )
            }
        }
    }

    /// Check a sign-in form's credentials.
    pub async fn console_sign_in(&self, credentials: Credentials<'_>) -> SignIn {
        match credentials {
            Credentials::AccessKey { id, secret } => self.key_sign_in(id, secret).await,
            Credentials::Password {
                account_id,
                user_name,
                password,
            } => self.password_sign_in(account_id, user_name, password).await,
        }
    }

    async fn key_sign_in(&self, id: &str, secret: &str) -> SignIn {
        let Ok(Some(key)) = self.keys.owner(id).await else {
            return SignIn::Refused(None);
        };
        if key.active && super::same_secret(key.secret_access_key.as_bytes(), secret.as_bytes()) {
            SignIn::Accepted(
                key.principal.clone(),
                SignedInWith::AccessKey(id.to_owned()),
            )
        } else {
            SignIn::Refused(Some(key.principal.clone()))
        }
    }

    /// An IAM user signing in with the password of its login profile.
    async fn password_sign_in(&self, account_id: &str, user_name: &str, password: &str) -> SignIn {
        let found = match self.keys.store().find_login(account_id, user_name).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "looking up a login profile failed");
                return SignIn::Refused(None);
            }
        };
        // A missing user costs a hash too, so timing does not tell which users exist.
        let Some(login) = found else {
            let _ = super::password::matches(DUMMY_HASH, password).await;
            return SignIn::Refused(None);
        };
        let KeyOwnerIdentity::User {
            account_id,
            name,
            id,
            arn,
        } = login.owner
        else {
            return SignIn::Refused(None);
        };
        let principal = Principal::user(account_id, name, id, arn);
        if super::password::matches(&login.password_hash, password).await {
            let via = SignedInWith::Password(password_fingerprint(&login.password_hash));
            SignIn::Accepted(principal, via)
        } else {
            SignIn::Refused(Some(principal))
        }
    }
}

/// A hash of a random password, checked when the user does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2gr0QkAcd4sgRgUg4cz5a2B0TRSDGzLH5b4IbWLXvlg";

/// A short digest of a stored password hash (the hash itself stays out of cookies).
fn password_fingerprint(hash: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(hash.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_sessions_are_signed_and_expire() {
        let auth = super::super::tests::test_authenticator();
        let root = Principal::root("111122223333");
        let via = SignedInWith::AccessKey("AKIAEXAMPLE".into());
        let (cookie, session) = auth.issue_console_session(&root, via.clone(), 1000);
        let (back, back_via) = auth.decode_console_session(&cookie, 2000).expect("valid");
        assert_eq!((back.principal, back_via), (root.clone(), via));
        assert_eq!(back.csrf, session.csrf);
        assert!(auth
            .decode_console_session(&cookie, 1000 + SESSION_SECONDS)
            .is_none());
        // Tampered, or another token this server signs: refused.
        let mut forged = cookie.clone();
        forged.insert(3, 'x');
        assert!(auth.decode_console_session(&forged, 2000).is_none());
        let (pw, _) = auth.issue_token(&root, "us-east-1", 1000);
        assert!(auth.decode_console_session(&pw, 2000).is_none());
    }

    #[tokio::test]
    async fn a_session_ends_with_its_key() {
        // The test store has no keys: the key a session was opened with is gone.
        let auth = super::super::tests::test_authenticator();
        let root = Principal::root("111122223333");
        let via = SignedInWith::AccessKey("AKIAEXAMPLE".into());
        let (cookie, _) = auth.issue_console_session(&root, via, 1000);
        assert!(auth.decode_console_session(&cookie, 2000).is_some());
        assert!(auth.console_session(&cookie, 2000).await.is_none());
    }
}

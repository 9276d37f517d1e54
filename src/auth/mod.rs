//! Authentication: who is calling. SigV4 for the API, `Basic AWS:<token>` for the
//! registry. Each yields a [`Principal`]; authorization (what it may do) is the service's.

pub mod console;
mod keys;
pub mod password;
mod principal;
pub mod sigv4;
pub mod token;

pub use keys::{KeyOwnerIdentity, KeySource, KeyStore, StoredKey};
pub use principal::{Principal, RoleSession, Seal};

use crate::aws::Region;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use token::{Claims, TokenKey};

/// Lifetime of a registry token (ECR: 12 hours).
pub const TOKEN_LIFETIME_SECONDS: i64 = 12 * 3600;

impl Principal {
    fn from_claims(c: &Claims) -> Principal {
        c.p.clone().unwrap_or_else(|| Principal::root(&c.acct))
    }
}

/// Why an API request was not authenticated, in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    #[error(transparent)]
    Signature(#[from] sigv4::SigError),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    #[error("{0}")]
    Backend(String),
}

/// A registry request's credentials, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Allowed(Principal),
    /// No usable credentials for this registry: answer with the Basic challenge.
    Challenge,
    /// A genuine token past its expiry.
    Expired,
}

/// A long-term access key: what its signatures are checked with, and who signs with it.
#[derive(Debug)]
pub struct KeyOwner {
    secret_access_key: String,
    pub active: bool,
    pub principal: Principal,
    /// The last signing key derived, with its scope (date, region, service): clients
    /// sign every request of a day in the same scope.
    signing: Mutex<Option<(String, Vec<u8>)>>,
}

impl KeyOwner {
    pub fn new(secret_access_key: String, active: bool, principal: Principal) -> KeyOwner {
        KeyOwner {
            secret_access_key,
            active,
            principal,
            signing: Mutex::new(None),
        }
    }

    /// Check a request signed with this key.
    fn verify(
        &self,
        req: &sigv4::RequestParts<'_>,
        p: &sigv4::Presented,
    ) -> Result<(), sigv4::SigError> {
        let scope = format!("{}/{}/{}", p.scope_date, p.region, p.service);
        let cached = self.signing.lock().ok().and_then(|s| {
            s.as_ref()
                .filter(|(sc, _)| *sc == scope)
                .map(|(_, k)| k.clone())
        });
        let key = cached.unwrap_or_else(|| {
            let key = sigv4::signing_key(
                &self.secret_access_key,
                &p.scope_date,
                &p.region,
                &p.service,
            );
            if let Ok(mut s) = self.signing.lock() {
                *s = Some((scope, key.clone()));
            }
            key
        });
        sigv4::verify_with_key(req, p, &key)
    }
}

/// Who will have signed a request, once its body is there to check the signature.
pub enum Signer {
    /// `--dev`: anyone, as the default account's root.
    Dev(Principal),
    Key(Arc<KeyOwner>),
    Session(SessionClaims),
}

/// A request whose headers passed [`Authenticator::api_precheck`].
pub struct PendingCaller {
    presented: sigv4::Presented,
    region: Region,
    signer: Signer,
}

/// The result of checking a request's signature: the caller and the region it signed for.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub principal: Principal,
    pub region: Region,
}

const CACHE_LIMIT: usize = 10_000;

/// What an STS session token asserts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionClaims {
    akid: String,
    exp: i64,
    principal: Principal,
}

pub struct Authenticator {
    token_key: TokenKey,
    /// `--dev`: any access key is accepted as the default account's root.
    dev: bool,
    default_account: String,
    /// Verified registry credentials by hash of the header value: (claims).
    verified: Mutex<HashMap<[u8; 32], Claims>>,
    keys: Arc<keys::KeyCache>,
}

impl Authenticator {
    /// Subscribe [`Authenticator::key_changes`] to the metadata store's changes.
    pub fn new(
        token_key: TokenKey,
        dev: bool,
        default_account: String,
        keys: KeySource,
    ) -> Authenticator {
        Authenticator {
            token_key,
            dev,
            default_account,
            verified: Mutex::new(HashMap::new()),
            keys: Arc::new(keys::KeyCache::new(keys)),
        }
    }

    /// What must hear of key and identity changes, so that a revoked key stops working.
    pub fn key_changes(&self) -> Arc<dyn crate::meta::Listener> {
        self.keys.clone()
    }

    /// Everything about a signed request that its headers tell, before its body is read:
    /// the signature's shape, scope and date, and that its key exists and is active.
    pub async fn api_precheck(
        &self,
        headers: &[(String, String)],
        query: &str,
        service: &str,
        now: i64,
    ) -> Result<PendingCaller, ApiAuthError> {
        let presented = sigv4::presented(headers, query)?;
        sigv4::check_scope(&presented, service, now)?;
        let region = Region::parse(&presented.region).ok_or(sigv4::SigError::WrongRegion)?;
        let signer = if self.dev {
            Signer::Dev(Principal::root(&self.default_account))
        } else if presented.access_key_id.starts_with("ASIA") {
            Signer::Session(self.session(&presented)?)
        } else {
            let key = self
                .keys
                .owner(&presented.access_key_id)
                .await
                .map_err(ApiAuthError::Backend)?
                .filter(|k| k.active)
                .ok_or(ApiAuthError::UnrecognizedClient)?;
            Signer::Key(key)
        };
        Ok(PendingCaller {
            presented,
            region,
            signer,
        })
    }

    /// Who holds an access key pair presented whole (HTTP Basic on `/metrics`, the
    /// console's sign-in): the key must exist, be active, and the secret match.
    pub async fn key_pair_caller(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Principal, ApiAuthError> {
        let key = self
            .keys
            .owner(access_key_id)
            .await
            .map_err(ApiAuthError::Backend)?
            .filter(|k| k.active)
            .ok_or(ApiAuthError::UnrecognizedClient)?;
        if !same_secret(
            key.secret_access_key.as_bytes(),
            secret_access_key.as_bytes(),
        ) {
            return Err(ApiAuthError::UnrecognizedClient);
        }
        Ok(key.principal.clone())
    }

    /// Finish [`api_precheck`](Self::api_precheck) once the body's hash is known.
    pub fn api_verify(
        &self,
        pending: PendingCaller,
        req: &sigv4::RequestParts<'_>,
        now: i64,
    ) -> Result<ApiCaller, ApiAuthError> {
        let PendingCaller {
            presented,
            region,
            signer,
        } = pending;
        let principal = match signer {
            Signer::Dev(principal) => principal,
            Signer::Key(key) => {
                key.verify(req, &presented)?;
                key.principal.clone()
            }
            Signer::Session(session) => {
                sigv4::verify(req, &presented, &self.session_secret(&session.akid))?;
                if session.exp <= now {
                    return Err(ApiAuthError::ExpiredToken);
                }
                session.principal
            }
        };
        Ok(ApiCaller { principal, region })
    }

    /// The session a request signed with STS temporary credentials claims: the session
    /// token carries it, signed by this server; the secret is derived from the key id.
    fn session(&self, presented: &sigv4::Presented) -> Result<SessionClaims, ApiAuthError> {
        let token = presented
            .session_token
            .as_deref()
            .ok_or(ApiAuthError::UnrecognizedClient)?;
        let session: SessionClaims = self
            .token_key
            .verify_as(token)
            .map_err(|_| ApiAuthError::UnrecognizedClient)?;
        if session.akid != presented.access_key_id {
            return Err(ApiAuthError::UnrecognizedClient);
        }
        Ok(session)
    }

    fn session_secret(&self, akid: &str) -> String {
        URL_SAFE_NO_PAD.encode(
            self.token_key
                .sign(format!("sts-secret\n{akid}").as_bytes()),
        )[..40]
            .to_owned()
    }

    /// A role session the caller was allowed to assume, and its temporary credentials:
    /// (principal, key id, secret, session token).
    pub fn issue_session(
        &self,
        session: RoleSession,
        expires: i64,
    ) -> (Principal, String, String, String) {
        let principal = Principal::assumed_role(session, expires);
        let (id, _) = new_access_key();
        let akid = format!("ASIA{}", &id[4..]);
        let claims = SessionClaims {
            akid: akid.clone(),
            exp: expires,
            principal: principal.clone(),
        };
        let token = self.token_key.issue_as(&claims);
        let secret = self.session_secret(&akid);
        (principal, akid, secret, token)
    }

    /// A registry password for `principal` in `region`, and its expiry (epoch seconds).
    pub fn issue_token(&self, principal: &Principal, region: &str, now: i64) -> (String, i64) {
        let mut exp = now + TOKEN_LIFETIME_SECONDS;
        if let Principal::AssumedRole { expires, .. } = principal {
            exp = exp.min(*expires);
        }
        let claims = Claims {
            p: Some(principal.clone()).filter(|p| !matches!(p, Principal::Root { .. })),
            v: 1,
            acct: principal
                .account_id()
                .unwrap_or(&self.default_account)
                .to_owned(),
            arn: principal.arn(),
            region: region.to_owned(),
            exp,
        };
        (self.token_key.issue(&claims), exp)
    }

    /// Signature of a download URL for `path` in a registry, valid until `expires`.
    pub fn sign_url(&self, account_id: &str, region: &str, path: &str, expires: i64) -> String {
        hex::encode(
            self.token_key
                .sign(format!("{account_id}\n{region}\n{path}\n{expires}").as_bytes()),
        )
    }

    /// The caller a presigned download URL stands for: the registry's account, if the
    /// URL is genuine and unexpired.
    pub fn presigned_caller(
        &self,
        account_id: &str,
        region: &str,
        path: &str,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> Option<Principal> {
        let Ok(sig) = hex::decode(signature) else {
            return None;
        };
        let genuine = now < expires
            && self.token_key.check(
                format!("{account_id}\n{region}\n{path}\n{expires}").as_bytes(),
                &sig,
            );
        genuine.then(|| Principal::root(account_id))
    }

    /// Judge a registry request's `Authorization` header for a registry in `region`.
    pub fn registry_caller(
        &self,
        authorization: Option<&str>,
        region: &str,
        now: i64,
    ) -> RegistryAuth {
        let Some(header) = authorization else {
            return RegistryAuth::Challenge;
        };
        let id: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        let cached = self.verified.lock().ok().and_then(|m| m.get(&id).cloned());
        let claims = match cached {
            Some(c) => c,
            None => {
                let Some(password) = token::password_from_basic(header) else {
                    return RegistryAuth::Challenge;
                };
                match self.token_key.verify(&password) {
                    Ok(c) => {
                        if let Ok(mut m) = self.verified.lock() {
                            if m.len() >= CACHE_LIMIT {
                                m.clear();
                            }
                            m.insert(id, c.clone());
                        }
                        c
                    }
                    // `--dev`: any password of user AWS is the default account's root.
                    Err(_) if self.dev => {
                        return RegistryAuth::Allowed(Principal::root(&self.default_account))
                    }
                    Err(_) => return RegistryAuth::Challenge,
                }
            }
        };
        // A token is valid in the registries of its own region only.
        if claims.region != region {
            return RegistryAuth::Challenge;
        }
        if claims.exp <= now {
            return RegistryAuth::Expired;
        }
        RegistryAuth::Allowed(Principal::from_claims(&claims))
    }
}

/// Fresh random bytes for keys and secrets.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    // The OS generator; failing it leaves no safe way to make credentials.
    if getrandom::getrandom(&mut v).is_err() {
        panic!("the operating system's random number generator failed");
    }
    v
}

/// A random URL-safe token (32 bytes of the OS generator).
pub fn random_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(32))
}

/// A new access key id (`AKIA` + 16 characters) and secret (40 characters).
pub fn new_access_key() -> (String, String) {
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let id: String = random_bytes(16)
        .iter()
        .map(|b| char::from(ID_CHARS[usize::from(*b) % ID_CHARS.len()]))
        .collect();
    let secret: String = random_bytes(40)
        .iter()
        .map(|b| char::from(SECRET_CHARS[usize::from(*b) % SECRET_CHARS.len()]))
        .collect();
    (format!("AKIA{id}"), secret)
}

/// Compare secrets in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn test_authenticator() -> Authenticator {
        struct NoKeys;
        #[async_trait::async_trait]
        impl KeyStore for NoKeys {
            async fn find_key(&self, _: &str) -> Result<Option<StoredKey>, String> {
                Ok(None)
            }
            async fn find_login(
                &self,
                _: &str,
                _: &str,
            ) -> Result<Option<console::StoredLogin>, String> {
                Ok(None)
            }
        }
        Authenticator::new(
            TokenKey::new(vec![1; 32]),
            false,
            "000000000000".into(),
            KeySource {
                store: Arc::new(NoKeys),
                shared: false,
            },
        )
    }

    #[test]
    fn registry_tokens_are_region_bound_and_expire() {
        let auth = test_authenticator();
        let root = Principal::root("111122223333");
        let (pw, exp) = auth.issue_token(&root, "us-east-1", 1000);
        assert_eq!(exp, 1000 + TOKEN_LIFETIME_SECONDS);
        let header = format!("Basic {}", token::authorization_token(&pw));
        assert_eq!(
            auth.registry_caller(Some(&header), "us-east-1", 2000),
            RegistryAuth::Allowed(root.clone())
        );
        // Cached the second time; same answer.
        assert_eq!(
            auth.registry_caller(Some(&header), "us-east-1", 2000),
            RegistryAuth::Allowed(root)
        );
        assert_eq!(
            auth.registry_caller(Some(&header), "eu-west-1", 2000),
            RegistryAuth::Challenge
        );
        assert_eq!(
            auth.registry_caller(Some(&header), "us-east-1", exp),
            RegistryAuth::Expired
        );
        assert_eq!(
            auth.registry_caller(None, "us-east-1", 2000),
            RegistryAuth::Challenge
        );
        assert_eq!(
            auth.registry_caller(Some("Basic QVdTOndyb25n"), "us-east-1", 2000),
            RegistryAuth::Challenge
        );
    }

    #[test]
    fn access_keys_look_like_aws_keys() {
        let (id, secret) = new_access_key();
        assert!(id.starts_with("AKIA") && id.len() == 20);
        assert_eq!(secret.len(), 40);
        assert_ne!(new_access_key().0, id);
    }
}

//! Authentication: who is calling. SigV4 for the API, `Basic AWS:<token>` for the
//! registry. Each yields a [`Principal`]; authorization (what it may do) is the service's.

pub mod sigv4;
pub mod token;

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use crate::meta::MetaStore;
use token::{Claims, TokenKey};

/// Lifetime of a registry token (ECR: 12 hours).
pub const TOKEN_LIFETIME_SECONDS: i64 = 12 * 3600;

/// An authenticated caller. Only this module (and local administration) builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An account's root user.
    Root { account_id: String },
    /// Local administration: the `berth admin` command.
    Admin,
}

impl Principal {
    pub fn arn(&self) -> String {
        match self {
            Principal::Root { account_id } => format!("arn:aws:iam::{account_id}:root"),
            Principal::Admin => "arn:aws:iam::berth:admin".to_owned(),
        }
    }

    pub fn account_id(&self) -> Option<&str> {
        match self {
            Principal::Root { account_id } => Some(account_id),
            Principal::Admin => None,
        }
    }

    fn from_claims(c: &Claims) -> Principal {
        Principal::Root {
            account_id: c.acct.clone(),
        }
    }
}

/// Why an API request was not authenticated, in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    #[error(transparent)]
    Signature(#[from] sigv4::SigError),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
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

/// The result of checking a request's signature: the caller and the region it signed for.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub principal: Principal,
    pub region: String,
}

const CACHE_LIMIT: usize = 10_000;

pub struct Authenticator {
    token_key: TokenKey,
    /// `--dev`: any access key is accepted as the default account's root.
    dev: bool,
    default_account: String,
    /// Verified registry credentials by hash of the header value: (claims).
    verified: Mutex<HashMap<[u8; 32], Claims>>,
}

impl Authenticator {
    pub fn new(token_key: TokenKey, dev: bool, default_account: String) -> Authenticator {
        Authenticator {
            token_key,
            dev,
            default_account,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Check a SigV4-signed API request. `headers` are (lowercase name, value) pairs.
    pub async fn api_caller(
        &self,
        meta: &MetaStore,
        req: &sigv4::RequestParts<'_>,
        service: &str,
        now: i64,
    ) -> Result<ApiCaller, ApiAuthError> {
        let presented = sigv4::presented(req.headers, req.query)?;
        sigv4::check_scope(&presented, service, now)?;
        if !crate::http::host::is_region(&presented.region) {
            return Err(sigv4::SigError::WrongRegion.into());
        }
        if self.dev {
            return Ok(ApiCaller {
                principal: Principal::Root {
                    account_id: self.default_account.clone(),
                },
                region: presented.region,
            });
        }
        let key = meta
            .access_key(&presented.access_key_id)
            .await
            .map_err(|e| ApiAuthError::Backend(e.to_string()))?
            .filter(|k| k.active)
            .ok_or(ApiAuthError::UnrecognizedClient)?;
        sigv4::verify(req, &presented, &key.secret_access_key)?;
        Ok(ApiCaller {
            principal: Principal::Root {
                account_id: key.account_id,
            },
            region: presented.region,
        })
    }

    /// A registry password for `principal` in `region`, and its expiry (epoch seconds).
    pub fn issue_token(&self, principal: &Principal, region: &str, now: i64) -> (String, i64) {
        let exp = now + TOKEN_LIFETIME_SECONDS;
        let claims = Claims {
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

    /// Whether a presigned download URL is genuine and unexpired.
    pub fn check_url(
        &self,
        account_id: &str,
        region: &str,
        path: &str,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> bool {
        let Ok(sig) = hex::decode(signature) else {
            return false;
        };
        now < expires
            && self.token_key.check(
                format!("{account_id}\n{region}\n{path}\n{expires}").as_bytes(),
                &sig,
            )
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
                        return RegistryAuth::Allowed(Principal::Root {
                            account_id: self.default_account.clone(),
                        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_tokens_are_region_bound_and_expire() {
        let auth = Authenticator::new(TokenKey::new(vec![1; 32]), false, "000000000000".into());
        let root = Principal::Root {
            account_id: "111122223333".into(),
        };
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

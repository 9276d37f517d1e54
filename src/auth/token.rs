//! Registry passwords, as GetAuthorizationToken issues them.
//!
//! A password is `base64url(claims) "." base64url(hmac_sha256(key, claims))`: it names the
//! principal, the region and the expiry, so any node holding the key verifies it without
//! a lookup. It never contains `:` (the CLI splits `AWS:<password>` on it) nor whitespace.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a registry password asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Format version.
    pub v: u8,
    /// Account of the principal.
    pub acct: String,
    /// ARN of the principal.
    pub arn: String,
    /// Region the token is valid in.
    pub region: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// The principal, when it is not the account's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<super::Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is invalid")]
    BadSignature,
}

/// The server's token-signing key.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl TokenKey {
    pub fn new(bytes: Vec<u8>) -> TokenKey {
        TokenKey(bytes)
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac
    }

    /// HMAC of arbitrary data with this key (for presigned download URLs).
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        self.mac(data).finalize().into_bytes().to_vec()
    }

    /// Constant-time check of [`TokenKey::sign`]'s output.
    pub fn check(&self, data: &[u8], sig: &[u8]) -> bool {
        self.mac(data).verify_slice(sig).is_ok()
    }

    /// The password for these claims.
    pub fn issue(&self, claims: &Claims) -> String {
        self.issue_as(claims)
    }

    /// The claims of a password this key issued. Expiry is the caller's to check.
    pub fn verify(&self, password: &str) -> Result<Claims, TokenError> {
        self.verify_as(password)
    }

    /// Any serializable claims, signed like a registry password.
    pub fn issue_as<T: Serialize>(&self, claims: &T) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let sig = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The claims of a token [`TokenKey::issue_as`] made.
    pub fn verify_as<T: serde::de::DeserializeOwned>(
        &self,
        password: &str,
    ) -> Result<T, TokenError> {
        let (payload, sig) = password.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(&payload)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }
}

/// `authorizationToken` as ECR returns it: standard base64 of `AWS:<password>`.
pub fn authorization_token(password: &str) -> String {
    STANDARD.encode(format!("AWS:{password}"))
}

/// The password of a `Basic` credential, if the user is `AWS`.
pub fn password_from_basic(header_value: &str) -> Option<String> {
    let encoded = header_value
        .strip_prefix("Basic ")
        .or_else(|| header_value.strip_prefix("basic "))?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == "AWS").then(|| password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            v: 1,
            acct: "111122223333".into(),
            arn: "arn:aws:iam::111122223333:root".into(),
            region: "us-east-1".into(),
            exp: 1_900_000_000,
            p: None,
        }
    }

    #[test]
    fn issue_and_verify() {
        let key = TokenKey::new(vec![7; 32]);
        let pw = key.issue(&claims());
        assert!(!pw.contains(':') && !pw.contains(char::is_whitespace));
        assert_eq!(key.verify(&pw), Ok(claims()));
        assert_eq!(
            TokenKey::new(vec![8; 32]).verify(&pw),
            Err(TokenError::BadSignature)
        );
        let (payload, _) = pw.split_once('.').expect("dot");
        let forged = format!("{payload}.AAAA");
        assert_eq!(key.verify(&forged), Err(TokenError::BadSignature));
        assert_eq!(key.verify("nonsense"), Err(TokenError::Malformed));
    }

    #[test]
    fn basic_credentials_round_trip() {
        let token = authorization_token("secret.pw");
        assert_eq!(
            password_from_basic(&format!("Basic {token}")).as_deref(),
            Some("secret.pw")
        );
        let other = STANDARD.encode("bob:secret");
        assert_eq!(password_from_basic(&format!("Basic {other}")), None);
        assert_eq!(password_from_basic("Bearer x"), None);
    }
}

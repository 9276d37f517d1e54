//! Secrets at rest: every secret the metadata store keeps (secret access keys, the
//! registry-token key, ...) is sealed with XChaCha20-Poly1305 under one master key, read
//! from a file outside the database. A dump of the database alone reveals no secret.
//!
//! A sealed value is `berth-sealed-v1:` + base64(nonce ‖ ciphertext ‖ tag). Each is bound
//! to what it is the secret of (the associated data, e.g. the access key id), so a value
//! copied onto another row does not open.

use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::fsutil;

const PREFIX: &str = "berth-sealed-v1:";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the master key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the master key file {0} does not hold a key (base64 of 32 bytes)")]
    BadKeyFile(String),
    #[error(
        "a stored secret does not open with this master key (is --master-key-file the file this data was created with?)"
    )]
    WrongKey,
}

/// The master key. Deliberately not `Debug`: it must never reach a log.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub fn from_key(key: &[u8; KEY_BYTES]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Read the master key from `path`, creating it (random, mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> Result<Sealer, SecretsError> {
        let io = |source| SecretsError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let mut key = [0u8; KEY_BYTES];
            getrandom::getrandom(&mut key).map_err(|e| io(std::io::Error::other(e)))?;
            let text = format!("{}\n", B64.encode(key));
            // Only missing directories are created (0700); an existing one, such as
            // /etc, is never changed.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.exists() {
                    fsutil::create_private_dir(dir).map_err(io)?;
                }
            }
            // Another process may have created it meanwhile: then read theirs.
            fsutil::create_private_new(path, text.as_bytes()).map_err(io)?;
        }
        fsutil::make_private(path).map_err(io)?;
        let text = std::fs::read_to_string(path).map_err(io)?;
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| SecretsError::BadKeyFile(path.display().to_string()))?;
        let key: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| SecretsError::BadKeyFile(path.display().to_string()))?;
        Ok(Sealer::from_key(&key))
    }

    pub fn is_sealed(stored: &[u8]) -> bool {
        stored.starts_with(PREFIX.as_bytes())
    }

    /// Seal `plain`, bound to `context` (what it is the secret of).
    pub fn seal(&self, plain: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        // The OS's random source failing is not something a server can continue after.
        getrandom::getrandom(&mut nonce).unwrap_or_else(|e| panic!("no random nonce: {e}"));
        let payload = Payload {
            msg: plain,
            aad: context.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any length we store"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Open a value [`seal`](Self::seal) made with the same `context`.
    pub fn open(&self, stored: &[u8], context: &str) -> Result<Vec<u8>, SecretsError> {
        let b64 = stored
            .strip_prefix(PREFIX.as_bytes())
            .ok_or(SecretsError::WrongKey)?;
        let bytes = B64.decode(b64).map_err(|_| SecretsError::WrongKey)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SecretsError::WrongKey);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: sealed,
            aad: context.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SecretsError::WrongKey)
    }

    /// As [`open`](Self::open), for secrets that are text.
    pub fn open_text(&self, stored: &str, context: &str) -> Result<String, SecretsError> {
        String::from_utf8(self.open(stored.as_bytes(), context)?)
            .map_err(|_| SecretsError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let a = Sealer::from_key(&[7; 32]);
        let b = Sealer::from_key(&[8; 32]);
        let sealed = a.seal(b"wJalrXUtnFEMI/K7MDENG", "AKIA1");
        assert!(Sealer::is_sealed(sealed.as_bytes()));
        assert!(!sealed.contains("wJalr"));
        assert_eq!(
            a.open_text(&sealed, "AKIA1").expect("open"),
            "wJalrXUtnFEMI/K7MDENG"
        );
        assert!(a.open(sealed.as_bytes(), "AKIA2").is_err());
        assert!(b.open(sealed.as_bytes(), "AKIA1").is_err());
        assert!(a.open(b"plain", "AKIA1").is_err());
        assert!(a.open(b"berth-sealed-v1:AAAA", "AKIA1").is_err());
        // A fresh nonce each time.
        assert_ne!(a.seal(b"x", "c"), a.seal(b"x", "c"));
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/master.key");
        let first = Sealer::load_or_create(&path).expect("create");
        let sealed = first.seal(b"s", "c");
        let again = Sealer::load_or_create(&path).expect("load");
        assert_eq!(again.open(sealed.as_bytes(), "c").expect("open"), b"s");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "not a key").expect("write");
        assert!(matches!(
            Sealer::load_or_create(&path),
            Err(SecretsError::BadKeyFile(_))
        ));
    }
}

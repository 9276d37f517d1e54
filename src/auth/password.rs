//! Console passwords: argon2id hashes (a fresh salt each), verified in constant time by
//! the argon2 crate. Both are slow on purpose, so they run off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The PHC string (`$argon2id$...`) of `password`.
pub async fn hash(password: &str) -> Result<String, String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).map_err(|e| format!("random: {e}"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| format!("hashing a password: {e}"))
    })
    .await
    .map_err(|e| format!("hashing task: {e}"))?
}

/// Whether `password` is the one `stored` hashes.
pub async fn matches(stored: &str, password: &str) -> bool {
    let (stored, password) = (stored.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let h = hash("Correct-Horse-1").await.expect("hashes");
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("Correct-Horse-1"));
        assert!(matches(&h, "Correct-Horse-1").await);
        assert!(!matches(&h, "Correct-Horse-2").await);
        assert!(!matches("not a hash", "x").await);
    }
}

//! IAM users' login profiles: a password hash per user.

use super::{Db, MetaStore, Result};

/// A user's login profile as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginProfileRow {
    pub password_hash: String,
    pub reset_required: bool,
    pub created_at: i64,
}

impl std::fmt::Debug for LoginProfileRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginProfileRow")
            .field("reset_required", &self.reset_required)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl MetaStore {
    pub async fn login_profile(&self, user_id: &str) -> Result<Option<LoginProfileRow>> {
        let row: Option<(String, i64, i64)> = on_read!(self, pool => sqlx::query_as(
            "SELECT password_hash, reset_required, created_at FROM iam_login_profiles WHERE user_id = $1",
        )
        .bind(user_id).fetch_optional(pool).await?);
        Ok(
            row.map(|(password_hash, reset, created_at)| LoginProfileRow {
                password_hash,
                reset_required: reset != 0,
                created_at,
            }),
        )
    }

    /// Create a profile; false if the user has one already.
    pub async fn create_login_profile(&self, user_id: &str, row: &LoginProfileRow) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "INSERT INTO iam_login_profiles (user_id, password_hash, reset_required, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id).bind(&row.password_hash).bind(i64::from(row.reset_required)).bind(row.created_at)
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    /// Change a profile's password (if given) and reset flag (if given); false if none.
    pub async fn update_login_profile(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
        reset_required: Option<bool>,
    ) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE iam_login_profiles
             SET password_hash = COALESCE($2, password_hash),
                 reset_required = COALESCE($3, reset_required)
             WHERE user_id = $1",
        )
        .bind(user_id).bind(password_hash).bind(reset_required.map(i64::from))
        .execute(pool).await?.rows_affected());
        Ok(n > 0)
    }

    pub async fn delete_login_profile(&self, user_id: &str) -> Result<bool> {
        let n = on_write!(self, pool => sqlx::query("DELETE FROM iam_login_profiles WHERE user_id = $1")
            .bind(user_id).execute(pool).await?.rows_affected());
        Ok(n > 0)
    }
}

-- IAM users' console passwords (CreateLoginProfile): an argon2id hash, never the
-- password. Removed with the user.
CREATE TABLE iam_login_profiles (
    user_id        TEXT    PRIMARY KEY REFERENCES iam_identities (id) ON DELETE CASCADE,
    password_hash  TEXT    NOT NULL,
    reset_required INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

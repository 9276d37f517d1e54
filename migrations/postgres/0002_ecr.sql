-- PostgreSQL twin of migrations/sqlite/0002_ecr.sql.
CREATE TABLE accounts (
    account_id  TEXT   PRIMARY KEY CHECK (length(account_id) = 12),
    created_at  BIGINT NOT NULL
);

CREATE TABLE access_keys (
    access_key_id     TEXT   PRIMARY KEY,
    secret_access_key TEXT   NOT NULL,
    account_id        TEXT   NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    principal_arn     TEXT   NOT NULL,
    status            TEXT   NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Inactive')),
    created_at        BIGINT NOT NULL
);

CREATE TABLE server_secrets (
    name        TEXT   PRIMARY KEY,
    value       BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL
);

ALTER TABLE repositories ADD COLUMN image_tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE';
ALTER TABLE repositories ADD COLUMN mutability_exclusions TEXT;
ALTER TABLE repositories ADD COLUMN scan_on_push BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN encryption_type TEXT NOT NULL DEFAULT 'AES256';
ALTER TABLE repositories ADD COLUMN kms_key TEXT;

CREATE TABLE repository_tags (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    key           TEXT   COLLATE "C" NOT NULL,
    value         TEXT   NOT NULL,
    PRIMARY KEY (repository_id, key)
);

ALTER TABLE manifests ADD COLUMN image_size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN config_media_type TEXT;

-- ECR control plane: accounts and their access keys, the server's signing secrets,
-- repository settings and resource tags, and image details DescribeImages reports.
CREATE TABLE accounts (
    account_id  TEXT    PRIMARY KEY CHECK (length(account_id) = 12),
    created_at  INTEGER NOT NULL
) STRICT;

-- Secrets are kept in clear: SigV4 verification needs them (as AWS does).
CREATE TABLE access_keys (
    access_key_id     TEXT    PRIMARY KEY,
    secret_access_key TEXT    NOT NULL,
    account_id        TEXT    NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    principal_arn     TEXT    NOT NULL,
    status            TEXT    NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Inactive')),
    created_at        INTEGER NOT NULL
) STRICT;

-- Keys shared by every node, e.g. the registry-token HMAC key.
CREATE TABLE server_secrets (
    name        TEXT    PRIMARY KEY,
    value       BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

ALTER TABLE repositories ADD COLUMN image_tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE';
ALTER TABLE repositories ADD COLUMN mutability_exclusions TEXT;
ALTER TABLE repositories ADD COLUMN scan_on_push INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN encryption_type TEXT NOT NULL DEFAULT 'AES256';
ALTER TABLE repositories ADD COLUMN kms_key TEXT;

CREATE TABLE repository_tags (
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (repository_id, key)
) STRICT;

-- Sum of layer sizes (for an index: its largest child), and the config media type.
ALTER TABLE manifests ADD COLUMN image_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN config_media_type TEXT;

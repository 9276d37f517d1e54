-- Governance: lifecycle policies (with the time each repository was last evaluated),
-- their previews and the actions they took; image storage classes; repository creation
-- templates; account settings; principals whose pulls do not update pull times.
ALTER TABLE repositories ADD COLUMN lifecycle_policy TEXT;
ALTER TABLE repositories ADD COLUMN lifecycle_evaluated_at INTEGER;

ALTER TABLE manifests ADD COLUMN storage_class TEXT NOT NULL DEFAULT 'STANDARD'
    CHECK (storage_class IN ('STANDARD', 'ARCHIVE'));
-- Set by the garbage collector while it removes an unlinked blob; any new link clears it.
ALTER TABLE blobs ADD COLUMN gc_mark TEXT;

ALTER TABLE manifests ADD COLUMN transitioned_at INTEGER;
ALTER TABLE manifests ADD COLUMN activated_at INTEGER;

-- The latest preview of each repository; results are JSON.
CREATE TABLE lifecycle_previews (
    repository_id INTEGER PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    policy_text   TEXT    NOT NULL,
    results       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- Every action a lifecycle policy took (kept after the repository is gone).
CREATE TABLE lifecycle_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    repository_name TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    tags            TEXT    NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('EXPIRE', 'TRANSITION')),
    rule_priority   INTEGER NOT NULL,
    at              INTEGER NOT NULL
) STRICT;

-- The template document is the API's RepositoryCreationTemplate JSON.
CREATE TABLE creation_templates (
    account_id  TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    prefix      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, prefix)
) STRICT;

CREATE TABLE account_settings (
    account_id  TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (account_id, region, name)
) STRICT;

CREATE TABLE pull_time_exclusions (
    account_id    TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    principal_arn TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, principal_arn)
) STRICT;

-- Counters one process bumps to tell a running server to drop its caches
-- (`external_writes`), and the server's acknowledgement (`external_writes_seen`).
CREATE TABLE change_signals (
    name   TEXT    PRIMARY KEY,
    value  INTEGER NOT NULL
) STRICT;

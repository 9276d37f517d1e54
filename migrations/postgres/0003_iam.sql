-- PostgreSQL twin of migrations/sqlite/0003_iam.sql.
-- IAM: users, roles and groups of each account, their inline and attached policies,
-- managed policies (AWS's built-ins under account 'aws'), repository and registry policies.
CREATE TABLE iam_identities (
    account_id   TEXT    NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('user', 'role', 'group')),
    -- IAM names are unique case-insensitively; name_key is the lower-cased name.
    name_key     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    id           TEXT    NOT NULL UNIQUE,
    path         TEXT    NOT NULL,
    arn          TEXT    NOT NULL UNIQUE,
    trust_policy TEXT,
    description  TEXT,
    max_session_duration BIGINT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, kind, name_key)
);

CREATE TABLE iam_inline_policies (
    account_id   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    name_key     TEXT    NOT NULL,
    policy_name  TEXT    NOT NULL,
    document     TEXT    NOT NULL,
    PRIMARY KEY (account_id, kind, name_key, policy_name),
    FOREIGN KEY (account_id, kind, name_key) REFERENCES iam_identities ON DELETE CASCADE
);

CREATE TABLE iam_managed_policies (
    arn          TEXT    PRIMARY KEY,
    account_id   TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    description  TEXT,
    document     TEXT    NOT NULL,
    version_id   TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE iam_attachments (
    account_id   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    name_key     TEXT    NOT NULL,
    policy_arn   TEXT    NOT NULL REFERENCES iam_managed_policies (arn),
    PRIMARY KEY (account_id, kind, name_key, policy_arn),
    FOREIGN KEY (account_id, kind, name_key) REFERENCES iam_identities ON DELETE CASCADE
);
CREATE INDEX iam_attachments_by_policy ON iam_attachments (policy_arn);

CREATE TABLE iam_group_members (
    account_id   TEXT    NOT NULL,
    group_key    TEXT    NOT NULL,
    user_key     TEXT    NOT NULL,
    PRIMARY KEY (account_id, group_key, user_key)
);

ALTER TABLE repositories ADD COLUMN policy_text TEXT;

CREATE TABLE registry_policies (
    account_id   TEXT    NOT NULL,
    region       TEXT    NOT NULL,
    policy_text  TEXT    NOT NULL,
    PRIMARY KEY (account_id, region)
);

-- Secrets Manager (the part ECR's pull-through cache needs): one row per secret. Its
-- versions (values and staging labels) are one JSON document sealed under the master
-- key (src/secrets.rs), bound to the secret's ARN; `revision` guards read-modify-write.
CREATE TABLE sm_secrets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    arn         TEXT    NOT NULL UNIQUE,
    description TEXT,
    kms_key_id  TEXT,
    tags        TEXT    NOT NULL,      -- JSON [{"Key":..,"Value":..}]
    versions    TEXT    NOT NULL,      -- sealed JSON
    created_at  INTEGER NOT NULL,      -- ms
    changed_at  INTEGER NOT NULL,
    accessed_at INTEGER,
    deletion_at INTEGER,               -- scheduled deletion (ms); NULL while live
    revision    INTEGER NOT NULL,
    UNIQUE (account_id, region, name)
) STRICT;

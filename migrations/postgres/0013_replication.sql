-- Replication: the last outcome of each image's replication to each destination, and
-- backfill runs with the replications they plan and record; and registry documents.

-- A registry's configuration documents, one per kind ('replication', 'signing'): the
-- body is the configuration as ECR shows it (JSON).
CREATE TABLE registry_documents (
    account_id  TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (account_id, region, kind)
);

CREATE TABLE replication_statuses (
    repository_id BIGINT  NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL,
    dest_account  TEXT    NOT NULL,
    dest_region   TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    failure_code  TEXT,
    updated_at    BIGINT  NOT NULL,
    PRIMARY KEY (repository_id, digest, dest_account, dest_region)
);

-- total is NULL while the run prepares (ECR shows no progress then); ended_at is NULL
-- until the run is terminal.
CREATE TABLE replication_backfills (
    id            TEXT    NOT NULL PRIMARY KEY,
    account_id    TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    dest_account  TEXT    NOT NULL,
    dest_region   TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    failure_code  TEXT,
    total         BIGINT,
    completed     BIGINT  NOT NULL DEFAULT 0,
    failed        BIGINT  NOT NULL DEFAULT 0,
    failure_codes TEXT    NOT NULL DEFAULT '',
    started_at    BIGINT  NOT NULL,
    ended_at      BIGINT
);
-- One unfinished run per registry and destination region: the store itself refuses a
-- second, whichever node starts it.
CREATE UNIQUE INDEX replication_backfills_running
    ON replication_backfills (account_id, region, dest_region) WHERE ended_at IS NULL;
CREATE INDEX replication_backfills_by_start
    ON replication_backfills (account_id, region, started_at);

-- One planned replication (an image and one of its tags, or an untagged image); status
-- is NULL until it is done. The repository is named, not referenced: results outlive it.
CREATE TABLE replication_backfill_items (
    backfill_id       TEXT    NOT NULL REFERENCES replication_backfills (id) ON DELETE CASCADE,
    seq               BIGINT  NOT NULL,
    repository_id     BIGINT  NOT NULL,
    repository_name   TEXT    NOT NULL,
    digest            TEXT    NOT NULL,
    tag               TEXT,
    status            TEXT,
    failure_code      TEXT,
    sub_failure_codes TEXT,
    PRIMARY KEY (backfill_id, seq)
);

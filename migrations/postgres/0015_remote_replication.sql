-- Remote replication's queue: an image (with a tag, or by digest) to push to a remote
-- registry that a rule of the config file names; a row is removed once the remote has
-- it, and otherwise tried again with backoff. One row per remote, image and tag.
CREATE TABLE remote_replications (
    remote          TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    repository_name TEXT    NOT NULL,
    repository_id   BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest          TEXT    NOT NULL,
    tag             TEXT    NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (remote, repository_id, digest, tag)
);
CREATE INDEX remote_replications_due ON remote_replications (next_attempt_at);

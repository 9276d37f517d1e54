-- The audit trail: one CloudTrail-shaped record (JSON text) per audited call, with the
-- columns `berth admin events` and the console look records up by.
CREATE TABLE audit_events (
    seq             BIGSERIAL PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    event_time      BIGINT NOT NULL,
    account_id      TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    event_source    TEXT    NOT NULL,
    event_name      TEXT    NOT NULL,
    user_arn        TEXT,
    user_name       TEXT,
    repository_name TEXT,
    read_only       BIGINT NOT NULL,
    error_code      TEXT,
    record          TEXT    NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (event_time);
CREATE INDEX audit_events_account_time ON audit_events (account_id, event_time);

-- Event notifications a webhook could not take after its attempts: kept to be looked
-- at (`berth admin webhooks dead-letters`) and sent again.
CREATE TABLE webhook_dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    webhook     TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    attempts    BIGINT NOT NULL,
    last_error  TEXT    NOT NULL,
    failed_at   BIGINT NOT NULL
);

-- What an event records beyond its columns (JSON): a replication's destination and
-- outcome, for notifications.
ALTER TABLE outbox ADD COLUMN detail TEXT;

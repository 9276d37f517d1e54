-- Background work (src/jobs/): a lease per job, so that one process at a time runs it,
-- and the outbox that changes feed to the jobs that react to them.

-- One row per job. A process holds the job while lease_until is in the future; taking
-- it over from another holder increments fence, and every write a holder makes on the
-- job's behalf (its cursor) names the fence it holds, so a holder that lost the lease
-- (paused, partitioned) cannot move the cursor back.
CREATE TABLE jobs (
    name         TEXT    PRIMARY KEY,
    holder       TEXT    NOT NULL DEFAULT '',
    fence        BIGINT  NOT NULL DEFAULT 0,
    lease_until  BIGINT  NOT NULL DEFAULT 0,
    -- For outbox consumers: the last event handled. For periodic jobs: unused (0).
    cursor_seq   BIGINT  NOT NULL DEFAULT 0,
    last_run_at  BIGINT  NOT NULL DEFAULT 0,
    last_error   TEXT
);

-- Events written in the same transaction as the change they describe. seq comes from
-- the 'outbox_seq' counter in change_signals, taken as the transaction's last write:
-- the counter row stays locked until the commit, so events become visible in seq order
-- and a consumer reading "after my cursor" never skips one that commits late.
CREATE TABLE outbox (
    seq              BIGINT  PRIMARY KEY,
    -- image_pushed | tag_moved | tag_deleted | image_deleted | scan_requested
    kind             TEXT    NOT NULL,
    account_id       TEXT    NOT NULL,
    region           TEXT    NOT NULL,
    repository_id    BIGINT  NOT NULL,
    repository_name  TEXT    NOT NULL,
    digest           TEXT    NOT NULL,
    tag              TEXT,
    created_at       BIGINT  NOT NULL
);

INSERT INTO change_signals (name, value) VALUES ('outbox_seq', 0) ON CONFLICT (name) DO NOTHING;

-- A scan is requested (scanned_at, which the daily quota counts from) and completed
-- later by the scan job: scan_status is IN_PROGRESS, then COMPLETE.
ALTER TABLE manifests ADD COLUMN scan_status TEXT;
ALTER TABLE manifests ADD COLUMN scan_completed_at BIGINT;
UPDATE manifests SET scan_status = 'COMPLETE', scan_completed_at = scanned_at WHERE scanned_at IS NOT NULL;

-- Usage per repository and day (UTC days since the epoch), for the cost report:
-- the largest stored size sampled that day, and the bytes pulls sent.
CREATE TABLE usage_daily (
    day                INTEGER NOT NULL,
    account_id         TEXT    NOT NULL,
    region             TEXT    NOT NULL,
    repository_name    TEXT    NOT NULL,
    stored_bytes       INTEGER NOT NULL DEFAULT 0,
    transfer_out_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account_id, region, repository_name)
) STRICT;

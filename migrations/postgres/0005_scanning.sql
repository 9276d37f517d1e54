-- Image scanning: each registry's scanning configuration (ECR's default, BASIC with no
-- rules, is the absence of a row), and when each image was last scanned. Berth has no
-- vulnerability database: a scan completes at once, with no findings.
CREATE TABLE registry_scanning (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    scan_type  TEXT NOT NULL CHECK (scan_type IN ('BASIC', 'ENHANCED')),
    -- JSON: [{"scanFrequency": ..., "repositoryFilters": [{"filter": ..., "filterType": "WILDCARD"}]}]
    rules      TEXT NOT NULL,
    PRIMARY KEY (account_id, region)
);

ALTER TABLE manifests ADD COLUMN scanned_at BIGINT;

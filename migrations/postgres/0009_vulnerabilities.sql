-- Real image scans (src/scan/, src/vulndb/): the vulnerability data imported by
-- `berth admin vulndb import`, and each scan's outcome and findings.

-- An import writes its rows under a new generation (gen) and switches the source's
-- current generation in one transaction at the end: scans never see half an import,
-- and rows of generations no source names any more are removed by the next import.
CREATE TABLE vuln_sources (
    source      TEXT    PRIMARY KEY,   -- Debian, Ubuntu, Alpine, Red Hat, PyPI, ...
    gen         BIGINT NOT NULL,
    records     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,      -- newest `modified` of its records (ms)
    imported_at BIGINT NOT NULL
);

-- What a source covers: Debian:12, Ubuntu:22.04, Alpine:v3.18, Red Hat:9, ...
CREATE TABLE vuln_ecosystems (
    ecosystem  TEXT    PRIMARY KEY,
    source     TEXT    NOT NULL,
    gen        BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE vuln_records (
    gen          BIGINT NOT NULL,
    id           TEXT    NOT NULL,
    name         TEXT    NOT NULL,     -- the CVE id where there is one
    description  TEXT    NOT NULL,
    uri          TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    cvss3_vector TEXT,
    cvss3_score  BIGINT,              -- tenths: 98 is 9.8
    PRIMARY KEY (gen, id)
);

-- Which package versions a record affects, in one ecosystem: OSV's ranges and versions
-- as JSON.
CREATE TABLE vuln_affected (
    gen       BIGINT NOT NULL,
    ecosystem TEXT    NOT NULL,
    package   TEXT    NOT NULL,
    record_id TEXT    NOT NULL,
    spec      TEXT    NOT NULL,
    PRIMARY KEY (gen, ecosystem, package, record_id)
);

-- A scan's outcome beside its status: ECR's description, the severity counts (JSON)
-- and when the data it used was updated. Findings are kept apart, read only by
-- DescribeImageScanFindings.
ALTER TABLE manifests ADD COLUMN scan_description TEXT;
ALTER TABLE manifests ADD COLUMN scan_counts TEXT;
ALTER TABLE manifests ADD COLUMN scan_source_updated_at BIGINT;

CREATE TABLE scan_findings (
    repository_id BIGINT NOT NULL,
    digest        TEXT    NOT NULL,
    findings      TEXT    NOT NULL,    -- JSON array, in the order ECR lists them
    PRIMARY KEY (repository_id, digest),
    FOREIGN KEY (repository_id, digest)
        REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);

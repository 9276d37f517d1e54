-- Upload session rows are written twice per blob (at the start of an upload and in the
-- transaction that records it), on the one write connection SQLite has: keep them to
-- one b-tree. The table only holds uploads in progress, so the collector's scan by age
-- needs no index.
DROP INDEX blob_uploads_by_age;

CREATE TABLE blob_uploads_lean (
    repository_id  INTEGER  NOT NULL,
    upload_id      TEXT     NOT NULL,
    state          BLOB     NOT NULL,
    version        INTEGER  NOT NULL,
    updated_at     INTEGER  NOT NULL,
    last_part_short         INTEGER  NOT NULL DEFAULT 0,
    short_part_before_last  INTEGER  NOT NULL DEFAULT 0,
    aborting                INTEGER  NOT NULL DEFAULT 0,
    PRIMARY KEY (repository_id, upload_id)
) STRICT, WITHOUT ROWID;

INSERT INTO blob_uploads_lean
    SELECT repository_id, upload_id, state, version, updated_at,
           last_part_short, short_part_before_last, aborting
    FROM blob_uploads;
DROP TABLE blob_uploads;
ALTER TABLE blob_uploads_lean RENAME TO blob_uploads;

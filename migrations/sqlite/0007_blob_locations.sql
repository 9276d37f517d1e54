-- Blob storage shared by several nodes (src/blobs/mod.rs).

-- Where a blob's bytes are, as its blob store named them: each upload publishes under a
-- name of its own. NULL for blobs stored before locations existed (named by digest).
ALTER TABLE blobs ADD COLUMN location TEXT;

-- Upload sessions: what the blob store keeps of one between requests, so that the next
-- request may reach any node. version increases with every save; a save names the
-- version it read, so two requests cannot both extend the same state.
CREATE TABLE blob_uploads (
    repository_id  INTEGER  NOT NULL,
    upload_id      TEXT     NOT NULL,
    state          BLOB     NOT NULL,
    version        INTEGER  NOT NULL,
    updated_at     INTEGER  NOT NULL,
    -- ECR's UploadLayerPart: whether the last part was under 5 MiB, and whether one
    -- before it was (CompleteLayerUpload refuses that), 0 or 1.
    last_part_short         INTEGER  NOT NULL DEFAULT 0,
    short_part_before_last  INTEGER  NOT NULL DEFAULT 0,
    -- 1 once the session is being discarded (cancelled, failed, collected): it can no
    -- longer be extended or recorded, and a crash mid-way leaves it to the collector.
    aborting                INTEGER  NOT NULL DEFAULT 0,
    PRIMARY KEY (repository_id, upload_id)
) STRICT;
CREATE INDEX blob_uploads_by_age ON blob_uploads (updated_at);

-- Stored bytes that no row names any more, to be removed from the blob store: written
-- in the transaction that forgets them, deleted once the bytes are gone.
CREATE TABLE blob_garbage (
    location  TEXT     PRIMARY KEY,
    since     INTEGER  NOT NULL
) STRICT;

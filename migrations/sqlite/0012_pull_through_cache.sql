-- Pull-through cache rules: one per registry and prefix; the body is the rule as JSON
-- (src/service/pull_through.rs), like creation templates.
CREATE TABLE ptc_rules (
    account_id  TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    prefix      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, prefix)
) STRICT;

-- What the cache last learnt from the upstream for a tag or digest of a cache
-- repository: the manifest, and when it was fetched (the tag re-check clock). Any node
-- serves it while the image is being imported, so only one node asks the upstream.
CREATE TABLE upstream_manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    reference     TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    media_type    TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    checked_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, reference)
) STRICT;

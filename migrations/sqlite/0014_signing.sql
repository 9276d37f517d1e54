-- Managed signing: signing profiles (AWS Signer's, the part ECR needs) with their keys
-- sealed under the master key and certificates issued by the deployment's signing CA
-- (a server secret), and each image's signing status per profile. (The signing
-- configuration is a registry document, migration 0013.)
CREATE TABLE signing_profiles (
    account_id     TEXT    NOT NULL,
    region         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    version        TEXT    NOT NULL,
    platform_id    TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    validity_value INTEGER NOT NULL,
    validity_type  TEXT    NOT NULL,
    cert_pem       TEXT    NOT NULL,
    key_sealed     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, name)
) STRICT;

-- Recorded with the push (IN_PROGRESS, or FAILED when the pusher may not sign with the
-- profile); the signing job completes it.
CREATE TABLE image_signings (
    repository_id  INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest         TEXT    NOT NULL,
    profile_arn    TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    failure_code   TEXT,
    failure_reason TEXT,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest, profile_arn)
) STRICT;

-- Initial schema of the metadata store (PostgreSQL). Same tables and constraints as the
-- SQLite schema; times are Unix milliseconds in BIGINT columns.

CREATE TABLE applications (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE artifacts (
    id            TEXT   NOT NULL PRIMARY KEY,
    digest        TEXT   NOT NULL UNIQUE,
    size_bytes    BIGINT NOT NULL,
    storage_key   TEXT   NOT NULL,
    signature     TEXT,
    created_at_ms BIGINT NOT NULL
);

-- Keyset pagination of the artifact list walks (created_at_ms, id) downwards.
CREATE INDEX artifacts_created ON artifacts (created_at_ms, id);

-- A link disappears with its artifact.
CREATE TABLE app_artifacts (
    app_id       TEXT   NOT NULL REFERENCES applications (id),
    artifact_id  TEXT   NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    linked_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, artifact_id)
);

CREATE INDEX app_artifacts_artifact ON app_artifacts (artifact_id);

CREATE TABLE public_keys (
    id             TEXT    NOT NULL PRIMARY KEY,
    app_id         TEXT    NOT NULL REFERENCES applications (id),
    public_key_hex TEXT    NOT NULL,
    active         BOOLEAN NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    UNIQUE (app_id, public_key_hex)
);

CREATE TABLE deployments (
    id             TEXT    NOT NULL PRIMARY KEY,
    app_id         TEXT    NOT NULL REFERENCES applications (id),
    -- Not a foreign key on purpose: retention may delete the artifact of a finished
    -- deployment, whose row stays as history (it keeps the digest). Live deployments'
    -- artifacts are never deleted (the server checks before deleting).
    artifact_id    TEXT    NOT NULL,
    digest         TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    runtime        TEXT    NOT NULL,
    url            TEXT,
    failure_reason TEXT,
    signature      TEXT,
    verified       BOOLEAN NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL
);

CREATE INDEX deployments_app_created ON deployments (app_id, created_at_ms);
CREATE INDEX deployments_artifact ON deployments (artifact_id);

-- Identity ids only grow: event order is id order.
CREATE TABLE deployment_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id TEXT   NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    from_status   TEXT,
    to_status     TEXT   NOT NULL,
    reason        TEXT,
    at_ms         BIGINT NOT NULL
);

CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, id);

CREATE TABLE tokens (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT,
    role          TEXT   NOT NULL,
    token_hash    TEXT   NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT
);

CREATE TABLE pending_uploads (
    storage_key         TEXT   NOT NULL PRIMARY KEY,
    app_id              TEXT   REFERENCES applications (id),
    digest              TEXT   NOT NULL,
    size_bytes          BIGINT NOT NULL,
    multipart_upload_id TEXT,
    created_at_ms       BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL
);

CREATE INDEX pending_uploads_expires ON pending_uploads (expires_at_ms);

CREATE TABLE idempotency_keys (
    scope         TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    request_hash  TEXT   NOT NULL,
    resource_id   TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

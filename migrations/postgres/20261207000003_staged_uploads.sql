-- Uploads are staged: each one writes to a staging area private to it (named by its id) and
-- becomes an artifact only once verified and published. Rows of the previous table named the
-- final content-addressed key; uploads in flight across this upgrade must be started again.
DROP TABLE pending_uploads;

CREATE TABLE uploads (
    id            TEXT    NOT NULL PRIMARY KEY,
    app_id        TEXT    NOT NULL REFERENCES applications (id),
    digest        TEXT    NOT NULL,
    size_bytes    BIGINT  NOT NULL,
    -- The object store's id of the upload's multipart assembly, for multipart uploads.
    multipart_id  TEXT,
    created_at_ms BIGINT  NOT NULL,
    expires_at_ms BIGINT  NOT NULL
);

CREATE INDEX uploads_expires ON uploads (expires_at_ms);
CREATE INDEX uploads_app_digest ON uploads (app_id, digest, created_at_ms);

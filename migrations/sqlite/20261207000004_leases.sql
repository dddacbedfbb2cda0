-- Work that one replica at a time must do (following a rollout, a background job) is held
-- through a lease: the owner renews it while it works; once it expires, any replica may take
-- the work over.
CREATE TABLE leases (
    name          TEXT    NOT NULL PRIMARY KEY,
    owner         TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL
);

-- Large outputs stored once (server/store/_payloads.py): an output larger than the server's
-- --payload-threshold is kept here under the SHA-256 of its bytes, and its event row holds a
-- baton.v1.PayloadReference and names the digest in payload_sha256 (NULL for every other row).
-- `refs` counts the event rows naming the digest: writes add to it in the transaction of their
-- events, deletions of executions subtract theirs and delete the rows left at zero. A rowid
-- table (not WITHOUT ROWID): its rows are large.
CREATE TABLE payloads (
    sha256     TEXT    NOT NULL PRIMARY KEY,
    data       BLOB    NOT NULL,
    size_bytes INTEGER NOT NULL,
    refs       INTEGER NOT NULL
);

ALTER TABLE events ADD COLUMN payload_sha256 TEXT;

-- The initial schema: one summary row per execution and its append-only event log.
-- Times are integer microseconds since the Unix epoch, UTC.

CREATE TABLE executions (
    -- A compact surrogate key, assigned in creation order. Events are keyed by it rather than
    -- by execution_id so that the executions running now have their events side by side at
    -- the end of the index, whatever the shape of the caller's ids (random UUIDs would scatter
    -- every commit over the whole index and multiply the pages each commit writes).
    execution_no     INTEGER NOT NULL PRIMARY KEY,
    execution_id     TEXT    NOT NULL UNIQUE,
    user_id          TEXT    NOT NULL,
    workflow_type    TEXT    NOT NULL,
    plan_id          TEXT    NOT NULL,
    request_id       TEXT    NOT NULL DEFAULT '',
    priority         INTEGER NOT NULL,
    state            INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_sequence    INTEGER NOT NULL,
    -- The replica holding the execution's lease, and when it expires (PostgreSQL-style
    -- ownership; unused by the single-process SQLite store but kept so the schemas match).
    owner            TEXT    NOT NULL DEFAULT '',
    lease_expires_at INTEGER
);

-- Idempotent submit: one execution per (user, request_id) when a request_id is given.
CREATE UNIQUE INDEX executions_user_request_idx
    ON executions (user_id, request_id) WHERE request_id <> '';

-- ListExecutions pages newest first, with execution_id breaking ties in created_at.
CREATE INDEX executions_created_idx ON executions (created_at DESC, execution_id DESC);
CREATE INDEX executions_user_created_idx ON executions (user_id, created_at DESC, execution_id DESC);
-- Also serves the unfinished (recovery) query and count_by_state. No partial index on state:
-- one made every state-changing UPDATE about ten times slower.
CREATE INDEX executions_state_created_idx ON executions (state, created_at DESC, execution_id DESC);

-- The log. A rowid table, so new events land on its last pages and large payloads do not
-- bloat the key's B-tree; the primary key index makes reading a history tail one range scan.
CREATE TABLE events (
    execution_no INTEGER NOT NULL,
    sequence     INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,
    payload      BLOB    NOT NULL,
    PRIMARY KEY (execution_no, sequence)
);

-- For people reading the database by hand: events with their execution_id.
CREATE VIEW execution_events AS
    SELECT x.execution_id, e.sequence, e.kind, e.recorded_at, e.payload
    FROM events AS e JOIN executions AS x ON x.execution_no = e.execution_no;

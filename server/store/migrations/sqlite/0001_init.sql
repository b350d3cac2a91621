-- The initial schema: one summary row per execution and its append-only event log.
-- Times are integer microseconds since the Unix epoch, UTC.

CREATE TABLE executions (
    execution_id     TEXT    NOT NULL PRIMARY KEY,
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
CREATE INDEX executions_state_created_idx ON executions (state, created_at DESC, execution_id DESC);

-- Recovery reads only unfinished executions; a partial index keeps that cheap however many
-- finished ones accumulate. The predicate must match the store's query word for word.
CREATE INDEX executions_unfinished_idx ON executions (created_at, execution_id)
    WHERE state NOT IN (4, 5, 6);

-- The log, clustered by (execution_id, sequence) so reading a history tail is one range scan.
CREATE TABLE events (
    execution_id TEXT    NOT NULL,
    sequence     INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,
    payload      BLOB    NOT NULL,
    PRIMARY KEY (execution_id, sequence)
) WITHOUT ROWID;

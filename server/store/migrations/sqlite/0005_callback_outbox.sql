-- The outbox of terminal callbacks (server/engine/callback.py, server/callbacks/_outbox.py).
--
-- A row is inserted by the append that carries an execution's callback_scheduled event, in that
-- append's transaction (the one that records the terminal event), and deleted by the append
-- that carries its callback_delivered or callback_failed event: a row exists exactly while a
-- callback is owed, whatever crashes in between. Bodies are not stored: each attempt renders
-- the execution's status from its history up to scheduled_sequence, so every attempt sends the
-- same bytes and a row stays small.
--
-- Times are microseconds since the epoch, as in executions. claimed_by/claimed_until: the
-- process delivering it (an attempt in flight or its retry timer); nobody else takes the row
-- before claimed_until. The single process of a SQLite store frees every claim at start-up.
CREATE TABLE callback_outbox (
    delivery_id        TEXT PRIMARY KEY,
    execution_id       TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    url                TEXT NOT NULL,
    scheduled_sequence INTEGER NOT NULL,
    deadline           INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL,
    claimed_by         TEXT NOT NULL DEFAULT '',
    claimed_until      INTEGER,
    last_error         TEXT NOT NULL DEFAULT ''
);

-- Due rows, earliest first (the claim); the rows of executions being deleted (deletion, retention).
CREATE INDEX callback_outbox_due_idx ON callback_outbox (next_attempt_at);
CREATE INDEX callback_outbox_execution_idx ON callback_outbox (execution_id);

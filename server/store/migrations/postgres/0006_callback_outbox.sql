-- The outbox of terminal callbacks (server/engine/callback.py, server/callbacks/_outbox.py).
--
-- A row is inserted by the append that carries an execution's callback_scheduled event, in that
-- append's transaction (the one that records the terminal event), and deleted by the append
-- that carries its callback_delivered or callback_failed event: a row exists exactly while a
-- callback is owed, whatever crashes in between. Bodies are not stored: each attempt renders
-- the execution's status from its history up to scheduled_sequence, so every attempt sends the
-- same bytes and a row stays small.
--
-- Replicas: a replica takes due rows with FOR UPDATE SKIP LOCKED and marks them claimed_by itself
-- until claimed_until (an attempt in flight or its retry timer), so no two replicas send one
-- callback at once; a dead replica's rows are taken over once its claim lapses. The outcome's
-- append deletes the row only while the same replica still holds it, so the history records one
-- outcome. Claim times are the replicas' clocks, as leases are.
CREATE TABLE callback_outbox (
    delivery_id        TEXT PRIMARY KEY,
    execution_id       TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    url                TEXT NOT NULL,
    scheduled_sequence BIGINT NOT NULL,
    deadline           TIMESTAMPTZ NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ NOT NULL,
    claimed_by         TEXT NOT NULL DEFAULT '',
    claimed_until      TIMESTAMPTZ,
    last_error         TEXT NOT NULL DEFAULT ''
);

CREATE INDEX callback_outbox_due_idx ON callback_outbox (next_attempt_at);
CREATE INDEX callback_outbox_execution_idx ON callback_outbox (execution_id);

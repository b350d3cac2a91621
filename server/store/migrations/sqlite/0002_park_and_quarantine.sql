-- Parked and quarantined executions.
-- Every column is added with a constant default, which SQLite records in the schema alone:
-- no existing row is rewritten, so the migration takes the same time on any database size.

-- Parking: "nothing needs to run this execution until wake_at" (a durable wait for a timer, a
-- retry's backoff, a delayed step, an approval). A waiting execution holds no task in memory;
-- on start the engine reads the parked marks of the unfinished executions (through the state
-- index, as before) and sets one timer for them all. Every append clears the mark in the same
-- UPDATE that moves last_sequence, so a parked row is always one whose latest event asked to
-- wait, and an engine that dies between its append and its park only wakes too early.
-- No index: the marks are read only with the unfinished rows, and an index on them would be
-- rewritten by every append (see 0001 on what a partial index on state cost).
ALTER TABLE executions ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
-- When a parked execution is due, in microseconds; NULL when it waits for a command (signal,
-- resume) or is not parked.
ALTER TABLE executions ADD COLUMN wake_at INTEGER;

-- Quarantine: why the execution's history cannot be read or folded; '' when it can. A
-- quarantined row is FAILED (so recovery skips it and it never stops start-up), and appends
-- that reach it afterwards are stored without changing its state back.
ALTER TABLE executions ADD COLUMN quarantine_error TEXT NOT NULL DEFAULT '';

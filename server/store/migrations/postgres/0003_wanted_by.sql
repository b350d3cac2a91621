-- Hand-over of an execution between replicas (server/store/_pg_leases.py, WANT and WANTED).
--
-- Why: a command (cancel, pause, resume, a signal) may reach a replica that does not hold the
-- execution while another, live replica runs it. The receiving replica records that it wants
-- the execution (wanted_by = its name); the holder sees that at its next look for due work
-- (every second), stops its runner without writing anything and releases the lease; the
-- receiver then claims the execution and applies the command. A claim always clears wanted_by.
--
-- Why the partial index: every replica asks "which of mine are wanted?" every second; almost no
-- row is ever wanted, so an index of only the wanted rows is tiny and a renewal (which does not
-- touch wanted_by) stays a HOT update.
ALTER TABLE executions ADD COLUMN wanted_by TEXT NOT NULL DEFAULT '';
CREATE INDEX executions_wanted_idx ON executions (owner) WHERE wanted_by <> '';

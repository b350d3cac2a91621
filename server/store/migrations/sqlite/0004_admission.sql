-- Admission control (server/engine/admission.py): executions recorded but not yet admitted.
-- Added with a constant default, so no existing row is rewritten and every existing execution
-- counts as admitted (as it was: before this, everything started when recorded).

-- 1 while the execution waits in the admission queue; 0 once admitted (or never queued). Set
-- when the execution is created and cleared once, by the admission that starts it; no append
-- writes it, so the partial index below is never touched by the appends of running executions.
ALTER TABLE executions ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;

-- The queue itself: only waiting rows (cancelled-while-waiting ones too, filtered by state),
-- so admitting, counting the queue and computing a queue position read nothing else.
CREATE INDEX executions_waiting_idx ON executions (created_at, execution_no) WHERE waiting = 1;

-- Admission control (server/engine/admission.py): executions recorded but not yet admitted.
--
-- waiting is true while the execution waits in the admission queue, false once admitted (and for
-- every execution recorded before this migration, or without --max-running: they started when
-- recorded). It is written when the execution is created and once more by the admission that
-- starts it; no append or lease renewal writes it, so they stay HOT updates.
--
-- Why the partial index: admitting, counting the queue and computing a queue position read only
-- waiting rows, however long the history; no other row is ever in it.
--
-- Every decision that reads the counts (a create under limits, an admission) takes the
-- transaction-level advisory lock of server/store/_pg_admission.py first, so replicas sharing the
-- database make them one at a time and see one queue.
ALTER TABLE executions ADD COLUMN waiting BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX executions_waiting_idx ON executions (created_at, execution_no) WHERE waiting;

-- The audit trail: an index of the events a client's request caused (a submission, cancel,
-- pause, resume or signal: those whose ExecutionEvent carries an Actor), for ListAuditEvents.
-- A new table, so the migration takes the same time on any database size; events recorded
-- before it have no actor and no entry.
--
-- Why a table beside the log rather than a column of events: listing newest first across
-- executions, by subject or by owner, must not read the log (whose payloads hold résumés and
-- every step's output), and the entries are few (a handful per execution), so their indexes
-- cost the hot path nothing: a batch without client commands writes no row here.
--
-- Rows are written in the transaction that appends their events and deleted with their
-- execution (DeleteUserData, retention). An entry about no execution (execution_id '') records
-- the deletion of a user's data and stays.
CREATE TABLE audit_events (
    -- Assigned in the order the entries are recorded: newest first is audit_no descending,
    -- and a page token is the last number of the page.
    audit_no     INTEGER NOT NULL PRIMARY KEY,
    execution_id TEXT    NOT NULL,
    -- The execution's owner, copied so that filtering by user reads this table alone.
    user_id      TEXT    NOT NULL,
    -- The event's sequence; 0 for an entry with no event.
    sequence     INTEGER NOT NULL,
    -- Microseconds since the Unix epoch, UTC.
    recorded_at  INTEGER NOT NULL,
    -- The authenticated subject ('' with authentication off).
    subject      TEXT    NOT NULL,
    -- The event's kind (execution_started, execution_cancelled ...) or user_data_deleted.
    action       TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    -- The serialized baton.v1.Actor.
    actor        BLOB    NOT NULL
);

-- One index per filter of ListAuditEvents, each ending in audit_no so a page is one range scan.
CREATE INDEX audit_events_execution_idx ON audit_events (execution_id, audit_no);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, audit_no);
CREATE INDEX audit_events_subject_idx ON audit_events (subject, audit_no);

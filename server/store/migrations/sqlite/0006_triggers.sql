-- Event-driven triggers (server/triggers/store.py): the rules, and the events published.
-- Times are integer microseconds since the Unix epoch, UTC, as in executions.

-- One row per rule name; `definition` is the serialized baton.v1.TriggerRule (with its version
-- and registered_at), `event_type` repeated from it so that a publication reads only its type's.
CREATE TABLE trigger_rules (
    name          TEXT    NOT NULL PRIMARY KEY,
    event_type    TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    definition    BLOB    NOT NULL,
    registered_at INTEGER NOT NULL
);

CREATE INDEX trigger_rules_type_idx ON trigger_rules (event_type, name);

-- One row per published event_id, written once by the publication that claims it: the
-- deduplication key. `starts` is the JSON list of the executions it starts (rule, request_id,
-- user_context, ...), so that any later publication of the id submits exactly those again
-- (idempotent by request_id) and answers with the same executions.
CREATE TABLE trigger_events (
    event_id     TEXT    NOT NULL PRIMARY KEY,
    event_type   TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    published_at INTEGER NOT NULL,
    occurred_at  INTEGER,
    starts       TEXT    NOT NULL
);

CREATE INDEX trigger_events_subject_idx ON trigger_events (subject);

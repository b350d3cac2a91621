-- Event-driven triggers (server/triggers/store.py): the rules, and the events published.

-- One row per rule name; `definition` is the serialized baton.v1.TriggerRule (with its version
-- and registered_at), `event_type` repeated from it so that a publication reads only its type's.
-- Registrations lock the table (SHARE ROW EXCLUSIVE), so the bound on the rules' number holds
-- across replicas.
CREATE TABLE trigger_rules (
    name          TEXT        PRIMARY KEY,
    event_type    TEXT        NOT NULL,
    version       BIGINT      NOT NULL,
    definition    BYTEA       NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX trigger_rules_type_idx ON trigger_rules (event_type, name);

-- One row per published event_id, written once by the publication that claims it (INSERT ... ON
-- CONFLICT DO NOTHING; a concurrent claim of the same id waits for the first and finds its row):
-- the deduplication key. `starts` is the JSON list of the executions it starts, so that any later
-- publication of the id submits exactly those again (idempotent by request_id).
CREATE TABLE trigger_events (
    event_id     TEXT        PRIMARY KEY,
    event_type   TEXT        NOT NULL,
    subject      TEXT        NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    occurred_at  TIMESTAMPTZ,
    starts       TEXT        NOT NULL
);

CREATE INDEX trigger_events_subject_idx ON trigger_events (subject);

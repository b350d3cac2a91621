-- The workflow registry (server/registry.py): every registered version of a workflow definition.
--
-- A row is immutable once written (versions are), except its deprecation, set once, and a
-- built-in row's definition, which the release shipping the built-in owns. Rows are never
-- deleted: an execution's plan names the version it was planned from, which must stay readable.
-- Replicas insert with ON CONFLICT DO NOTHING and read back what is stored, so two replicas
-- registering one version at once agree on one row. A few rows per type; the registry reads
-- them all at start and on refresh, so the primary key is the only index.
CREATE TABLE workflow_definitions (
    workflow_type      TEXT NOT NULL,
    version            TEXT NOT NULL,
    definition         TEXT NOT NULL,
    digest             TEXT NOT NULL,
    builtin            BOOLEAN NOT NULL DEFAULT FALSE,
    registered_at      TIMESTAMPTZ NOT NULL,
    registered_by      TEXT NOT NULL DEFAULT '',
    deprecated_at      TIMESTAMPTZ,
    deprecation_reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (workflow_type, version)
);

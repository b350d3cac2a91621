-- Retention sweeps published events by age (server.retention): an index on when each was published.
CREATE INDEX trigger_events_published_idx ON trigger_events (published_at);

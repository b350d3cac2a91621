-- Recorded durations of agent operations (server/estimates): one quantile sketch per agent
-- operation, the estimates' history, shared by every replica. Each replica flushes what it
-- recorded since its last flush (every few seconds and at shutdown) by merging it into the
-- row under a row lock (SELECT ... FOR UPDATE), so replicas' samples add up and none is lost;
-- nothing is written per step. `sketch` is the encoding of server/estimates/_sketch.py;
-- `samples` repeats its count. Times are microseconds since the epoch.
CREATE TABLE duration_sketches (
    agent      TEXT NOT NULL,
    operation  TEXT NOT NULL,
    samples    BIGINT NOT NULL,
    sketch     BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (agent, operation)
);

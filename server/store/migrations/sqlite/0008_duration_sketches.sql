-- Recorded durations of agent operations (server/estimates): one quantile sketch per agent
-- operation, the estimates' history. A row is written only by a flush of the recorder (every
-- few seconds and at shutdown, one transaction for every operation that changed), never per
-- step: the hot path records in memory. `sketch` is the encoding of
-- server/estimates/_sketch.py (a few hundred bytes to a few kB); `samples` repeats its count so
-- that a look at the table needs no decoding. Times are microseconds since the epoch.
CREATE TABLE duration_sketches (
    agent      TEXT NOT NULL,
    operation  TEXT NOT NULL,
    samples    INTEGER NOT NULL,
    sketch     BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (agent, operation)
);

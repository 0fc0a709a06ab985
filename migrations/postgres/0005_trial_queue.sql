-- Training across machines (`trader train --queue postgres://...`): the
-- trials of a search are claimed from this table by every host
-- (SELECT ... FOR UPDATE SKIP LOCKED, held while the trial runs: a host
-- that dies releases its claim with its connection, and the trial is
-- queued again). PostgreSQL only: a SQLite file is one machine's.

-- One search: the settings every host must share, its trial count and top_n.
CREATE TABLE searches (
    name       TEXT   PRIMARY KEY,
    settings   TEXT   NOT NULL,          -- JSON: data, spans, seed, epochs, symbols
    trials     BIGINT NOT NULL CHECK (trials > 0),
    top_n      BIGINT NOT NULL CHECK (top_n > 0),
    created_at BIGINT NOT NULL
);

CREATE TABLE trials (
    search      TEXT             NOT NULL REFERENCES searches (name),
    trial       BIGINT           NOT NULL,
    status      TEXT             NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'done', 'failed')),
    host        TEXT,                     -- who finished (or failed) it
    score       DOUBLE PRECISION,
    result      TEXT,                     -- the worker's TrialResult JSON
    error       TEXT,
    finished_at BIGINT,
    PRIMARY KEY (search, trial)
);

-- A finished trial's member directory, file by file (actor.safetensors,
-- params.json): the members live in the database, and every host or
-- trader materialises the ranking it needs into a local ensemble directory.
CREATE TABLE trial_files (
    search TEXT   NOT NULL,
    trial  BIGINT NOT NULL,
    file   TEXT   NOT NULL,
    bytes  BYTEA  NOT NULL,
    PRIMARY KEY (search, trial, file),
    FOREIGN KEY (search, trial) REFERENCES trials (search, trial)
);

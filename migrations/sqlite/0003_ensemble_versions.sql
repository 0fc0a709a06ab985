-- Live ensemble updates: a running trader may swap its ensemble between
-- hours, and every decision names the ensemble version that made it.

-- The version of the ensemble that decided the hour (a short content hash);
-- NULL for decisions made before this migration, and for skipped hours
-- decided by no ensemble.
ALTER TABLE decisions ADD COLUMN ensemble_version TEXT;

-- Each ensemble version ever adopted, once: its members in rank order.
CREATE TABLE ensemble_versions (
    version    TEXT    PRIMARY KEY,      -- short content hash, e.g. '3f9a1c0b7d2e'
    members    TEXT    NOT NULL,         -- JSON [{"name": .., "rank": .., "score": ..}], rank order
    first_seen INTEGER NOT NULL          -- adopted_at of its first adoption
);

-- Every adoption of a version by a run: at its start (previous NULL) and at
-- each swap between hours. The same version adopted again (after a restart)
-- is a new row here and the same row in ensemble_versions.
CREATE TABLE ensemble_adoptions (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    version    TEXT    NOT NULL REFERENCES ensemble_versions (version),
    previous   TEXT,                     -- the version it replaced (NULL: the run's first)
    adopted_at INTEGER NOT NULL,         -- clock time, seconds since the Unix epoch
    after_hour INTEGER,                  -- last hour (bar open) decided before the swap; NULL at start
    load_ms    INTEGER NOT NULL,         -- time to load the new ensemble
    rss_before INTEGER,                  -- the trader's RSS in bytes around the load, when known
    rss_after  INTEGER
);

CREATE INDEX ensemble_adoptions_run ON ensemble_adoptions (run_id);

-- How a run ended: NULL while it runs (or after a kill, until the next start
-- of the profile looks at it), 'finished' (its hours done, or stopped by a
-- signal), 'failed' (an error stopped it; `error` says which), 'abandoned' (a
-- replay killed before it finished: its embedded broker died with it, so the
-- next start begins a new run and marks this one).
ALTER TABLE runs ADD COLUMN outcome TEXT
    CHECK (outcome IS NULL OR outcome IN ('finished', 'failed', 'abandoned'));
ALTER TABLE runs ADD COLUMN error TEXT;

-- Runs ended before this migration were finished.
UPDATE runs SET outcome = 'finished' WHERE ended_at IS NOT NULL;

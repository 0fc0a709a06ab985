-- PostgreSQL twin of migrations/sqlite/0002: how a run ended.
ALTER TABLE runs ADD COLUMN outcome TEXT
    CHECK (outcome IS NULL OR outcome IN ('finished', 'failed', 'abandoned'));
ALTER TABLE runs ADD COLUMN error TEXT;

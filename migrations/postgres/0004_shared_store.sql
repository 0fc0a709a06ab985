-- A store shared by several profiles (one PostgreSQL database for many
-- traders; the same tables on SQLite).

-- Each profile's history_hours: bars are shared by every profile of the
-- store, so a symbol is pruned to the longest history any profile keeps,
-- never to a shorter one's.
CREATE TABLE bar_retention (
    profile TEXT   PRIMARY KEY,
    hours   BIGINT NOT NULL CHECK (hours > 0)
);

-- Who holds each profile's lock, for the message a second trader gets (the
-- lock itself is an OS file lock beside a SQLite store, an advisory lock on
-- PostgreSQL).
CREATE TABLE profile_locks (
    profile TEXT PRIMARY KEY,
    holder  TEXT NOT NULL
);

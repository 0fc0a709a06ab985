-- Bars: the history window, pruned to `history_hours` per symbol.
CREATE TABLE bars (
    symbol TEXT    NOT NULL,
    t      INTEGER NOT NULL,          -- bar start, seconds since the Unix epoch (UTC)
    open   REAL    NOT NULL,
    high   REAL    NOT NULL,
    low    REAL    NOT NULL,
    close  REAL    NOT NULL,
    volume REAL    NOT NULL,
    PRIMARY KEY (symbol, t)
) WITHOUT ROWID;

-- One trader run (live, replay or backtest).
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    profile        TEXT    NOT NULL,
    config_hash    TEXT    NOT NULL,   -- hash of the resolved profile + host
    budget_verdict TEXT    NOT NULL,   -- `trader budget --json` at start
    mode           TEXT    NOT NULL CHECK (mode IN ('live', 'replay', 'backtest')),
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER
);

-- One decision per run and bar hour: per-member and aggregated actions.
CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    bar_t           INTEGER NOT NULL,
    member_actions  TEXT    NOT NULL,   -- JSON [[f32; S]; N], rank order
    aggregate       TEXT    NOT NULL,   -- JSON [f32; S]
    target_weights  TEXT    NOT NULL,   -- JSON {symbol: weight}
    latency_us      INTEGER NOT NULL,
    skipped_reason  TEXT,               -- set when the state was unavailable
    UNIQUE (run_id, bar_t)
);

-- Orders: client_order_id is derived from (profile, bar time, symbol), so a
-- retry or a restart cannot place the same order twice.
CREATE TABLE orders (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    decision_id     INTEGER REFERENCES decisions (id),
    client_order_id TEXT    NOT NULL UNIQUE,
    symbol          TEXT    NOT NULL,
    side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    notional        REAL,
    qty             REAL,
    request         TEXT    NOT NULL,   -- JSON as sent
    broker_order_id TEXT,
    status          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE fills (
    id        INTEGER PRIMARY KEY,
    order_id  INTEGER NOT NULL REFERENCES orders (id),
    qty       REAL    NOT NULL,
    price     REAL    NOT NULL,
    fee       REAL    NOT NULL,
    filled_at INTEGER NOT NULL
);

CREATE TABLE equity (
    run_id    INTEGER NOT NULL REFERENCES runs (id),
    t         INTEGER NOT NULL,
    cash      REAL    NOT NULL,
    equity    REAL    NOT NULL,
    positions TEXT    NOT NULL,         -- JSON {symbol: qty}
    PRIMARY KEY (run_id, t)
);

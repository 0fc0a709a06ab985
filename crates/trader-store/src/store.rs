//! The store's connection: a SQLite file or a PostgreSQL database, one
//! pool of sqlx's `Any` driver, the migrations of the backend applied on open.

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Row};
use trader_core::{Bar, StoreLocation, Symbol};

use crate::StoreError;

/// Rows per multi-row INSERT (7 parameters each; SQLite allows 32,766,
/// PostgreSQL 65,535).
pub(crate) const INSERT_ROWS_PER_STATEMENT: usize = 500;

/// What one insert batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertReport {
    pub inserted: u64,
    /// Same hour, different values: the new bar replaced the old one.
    pub replaced: u64,
    /// Same hour, same values: nothing changed.
    pub unchanged: u64,
    /// Bars older than the retention window, deleted after the batch.
    pub pruned: u64,
}

/// How long a write waits for another process's write to the same file
/// (a `data import` beside a trader) before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long connecting to PostgreSQL may take before the open fails.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The key of the transaction-scoped advisory lock every PostgreSQL write
/// takes: writes to one database are serialised, as SQLite's are (the
/// checks-then-writes of a batch of bars stay atomic between hosts).
pub(crate) const WRITE_LOCK_KEY: i64 = 0x7472_6164_6572; // "trader"

/// The store: one pool of one connection (the budget counts one page cache
/// for SQLite), on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    location: StoreLocation,
    pub(crate) retention_hours: Option<u32>,
    /// False for a handle from [`Store::records_only`]: bars are checked but
    /// neither written nor read.
    keeps_bars: bool,
}

pub(crate) fn bar_from_row(row: &sqlx::any::AnyRow) -> Result<Bar, sqlx::Error> {
    Ok(Bar {
        t: row.try_get("t")?,
        open: row.try_get("open")?,
        high: row.try_get("high")?,
        low: row.try_get("low")?,
        close: row.try_get("close")?,
        volume: row.try_get("volume")?,
    })
}

/// `sqlite://PATH?mode=rwc` for sqlx's URL parser: absolute, with the
/// characters a URL would read as delimiters escaped.
fn sqlite_url(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut url = String::from("sqlite://");
    for c in absolute.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            ' ' => url.push_str("%20"),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

impl Store {
    /// Opens (creating if missing) the store at `location` and applies the
    /// migrations of its backend. With `retention_hours`, each insert batch
    /// prunes every symbol it touched to that many hours before its newest
    /// bar (or to a longer history that another profile of the store keeps,
    /// see [`Store::keep_history_for`]).
    ///
    /// # Errors
    /// The file cannot be opened or created, the database refuses the
    /// connection, or a migration fails (a database of a newer schema).
    pub async fn open(
        location: &StoreLocation,
        retention_hours: Option<u32>,
    ) -> Result<Self, StoreError> {
        Self::open_within(location, retention_hours, CONNECT_TIMEOUT).await
    }

    /// [`Store::open`], connecting to PostgreSQL for at most
    /// `connect_timeout` (sqlx retries a refused connection until then)
    /// instead of the default 10 s.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn open_within(
        location: &StoreLocation,
        retention_hours: Option<u32>,
        connect_timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let open_err = |source| StoreError::Open {
            store: location.to_string(),
            source,
        };
        let (pool, migrated) = match location {
            StoreLocation::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs_err::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
                }
                // Two processes opening a new store at once would race to
                // create the file, switch it to WAL and create its tables
                // (the switch can answer "database is locked" without
                // waiting): connecting and migrating run under an OS lock
                // on STORE.open.lock.
                let guard = crate::lock::open_lock(path).await?;
                let options = AnyConnectOptions::from_str(&sqlite_url(path)).map_err(open_err)?;
                let pragmas = format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    BUSY_TIMEOUT.as_millis()
                );
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .after_connect(move |conn, _| {
                        let pragmas = pragmas.clone();
                        Box::pin(async move {
                            sqlx::Executor::execute(conn, pragmas.as_str()).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(open_err)?;
                let migrated = sqlx::migrate!("../../migrations/sqlite").run(&pool).await;
                drop(guard);
                (pool, migrated)
            }
            StoreLocation::Postgres(url) => {
                let options = AnyConnectOptions::from_str(url.expose()).map_err(|_| {
                    open_err(sqlx::Error::Configuration(
                        format!("{url} is not a valid postgres:// URL").into(),
                    ))
                })?;
                let pool = AnyPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(open_err)?;
                // sqlx's migrator takes PostgreSQL's advisory lock itself:
                // two hosts migrating at once apply each migration once.
                let migrated = sqlx::migrate!("../../migrations/postgres").run(&pool).await;
                (pool, migrated)
            }
        };
        migrated.map_err(|source| StoreError::Migrate {
            store: location.to_string(),
            source,
        })?;
        Ok(Store {
            pool,
            location: location.clone(),
            retention_hours,
            keeps_bars: true,
        })
    }

    /// The same store for a run whose bars come from a recorded set (a
    /// replay, a backtest): its run records are written as usual, but its
    /// bars are only checked, never written to (or pruned from) the store's
    /// bar history, and its engine starts with an empty window. A replay
    /// thus never changes the bars that `data import` or a live trader keep.
    #[must_use]
    pub fn records_only(&self) -> Store {
        Store {
            keeps_bars: false,
            ..self.clone()
        }
    }

    /// Whether bars given to [`Store::insert_bars`] are written.
    #[must_use]
    pub fn keeps_bars(&self) -> bool {
        self.keeps_bars
    }

    /// Records that `profile` keeps `hours` of history in this store: no
    /// insert batch of any profile prunes a symbol to less than the longest
    /// history a profile of the store has recorded here.
    ///
    /// # Errors
    /// A database error.
    pub async fn keep_history_for(&self, profile: &str, hours: u32) -> Result<(), StoreError> {
        let mut tx = self
            .begin_write("recording a profile's history hours")
            .await?;
        sqlx::query(
            "INSERT INTO bar_retention (profile, hours) VALUES ($1, $2) \
             ON CONFLICT (profile) DO UPDATE SET hours = excluded.hours",
        )
        .bind(profile)
        .bind(i64::from(hours))
        .execute(&mut *tx)
        .await
        .map_err(self.query_err("recording a profile's history hours"))?;
        tx.commit()
            .await
            .map_err(self.query_err("committing a profile's history hours"))
    }

    /// A write transaction, taking the store's write lock at once: on SQLite
    /// `BEGIN IMMEDIATE` (a read that later turns into a write could not
    /// wait for another writer and would fail with "database is locked"), on
    /// PostgreSQL a transaction-scoped advisory lock, so that a batch's
    /// reads and writes are one step for every host.
    pub(crate) async fn begin_write(
        &self,
        what: &'static str,
    ) -> Result<sqlx::Transaction<'static, Any>, StoreError> {
        match &self.location {
            StoreLocation::Sqlite(_) => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(self.query_err(what)),
            StoreLocation::Postgres(_) => {
                let mut tx = self.pool.begin().await.map_err(self.query_err(what))?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK_KEY)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.query_err(what))?;
                Ok(tx)
            }
        }
    }

    /// Where this store lives.
    #[must_use]
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The store as printed in messages (a PostgreSQL password never shows).
    #[must_use]
    pub fn name(&self) -> String {
        self.location.to_string()
    }

    pub(crate) fn query_err(
        &self,
        what: &'static str,
    ) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            store: self.location.to_string(),
            what,
            source,
        }
    }

    /// The newest `n` bars of `symbol` at or before `until` (all when None),
    /// oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn latest_bars(
        &self,
        symbol: &Symbol,
        n: u32,
        until: Option<i64>,
    ) -> Result<Vec<Bar>, StoreError> {
        let rows = sqlx::query(
            "SELECT t, open, high, low, close, volume FROM bars WHERE symbol = $1 AND t <= $2 \
             ORDER BY t DESC LIMIT $3",
        )
        .bind(symbol.as_str())
        .bind(until.unwrap_or(i64::MAX))
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("reading bars"))?;
        let mut bars = rows
            .iter()
            .map(bar_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.query_err("decoding bars"))?;
        bars.reverse();
        Ok(bars)
    }

    /// Every symbol with bars, and how many bars each has.
    ///
    /// # Errors
    /// A database error or a stored symbol that does not parse.
    pub async fn bar_counts(&self) -> Result<Vec<(Symbol, u64)>, StoreError> {
        let rows =
            sqlx::query("SELECT symbol, COUNT(*) AS n FROM bars GROUP BY symbol ORDER BY symbol")
                .fetch_all(&self.pool)
                .await
                .map_err(self.query_err("counting bars"))?;
        rows.iter()
            .map(|row| {
                let s: String = row
                    .try_get("symbol")
                    .map_err(self.query_err("decoding a symbol"))?;
                let n: i64 = row
                    .try_get("n")
                    .map_err(self.query_err("decoding a count"))?;
                let symbol = Symbol::from_str(&s).map_err(|_| StoreError::BadSymbol {
                    store: self.name(),
                    value: s,
                })?;
                Ok((symbol, n.unsigned_abs()))
            })
            .collect()
    }

    /// Checkpoints a SQLite store's WAL into the main file (TRUNCATE: the
    /// `-wal` file is emptied), so that the `.sqlite` file alone holds
    /// everything. Nothing to do on PostgreSQL.
    ///
    /// # Errors
    /// A database error (another connection reading, for example).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.location.is_shared() {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
            .map_err(self.query_err("checkpointing the WAL"))?;
        Ok(())
    }

    /// Checkpoints the WAL (a failure is logged: nothing is lost, the data
    /// stays in the `-wal` file) and closes the pool. Every clean exit of a
    /// command that wrote calls this.
    pub async fn close(self) {
        if let Err(e) = self.checkpoint().await {
            tracing::warn!(error = %e, "the WAL was not checkpointed; the -wal file beside the store holds the newest writes");
        }
        self.pool.close().await;
    }
}

/// Checks every bar of a batch; the first bad one is the error.
pub(crate) fn validate_bars(
    symbol: &Symbol,
    bars: &[Bar],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for bar in bars {
        bar.validate(now).map_err(|source| StoreError::BadBar {
            symbol: symbol.clone(),
            source,
        })?;
    }
    Ok(())
}

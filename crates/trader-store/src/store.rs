//! The SQLite file.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use trader_core::{Bar, Symbol};

use crate::StoreError;

/// Rows per multi-row INSERT (7 parameters each; SQLite allows 32,766).
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

/// The history store: one SQLite file, one connection (the budget counts one
/// page cache).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    path: PathBuf,
    pub(crate) retention_hours: Option<u32>,
    /// False for a handle from [`Store::records_only`]: bars are checked but
    /// neither written nor read.
    keeps_bars: bool,
}

pub(crate) fn bar_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Bar, sqlx::Error> {
    Ok(Bar {
        t: row.try_get("t")?,
        open: row.try_get("open")?,
        high: row.try_get("high")?,
        low: row.try_get("low")?,
        close: row.try_get("close")?,
        volume: row.try_get("volume")?,
    })
}

impl Store {
    /// Opens (creating if missing) the store at `path` and applies the
    /// migrations. With `retention_hours`, each insert batch prunes every
    /// symbol it touched to that many hours before its newest bar.
    ///
    /// # Errors
    /// The file cannot be opened or created, or a migration fails.
    pub async fn open(path: &Path, retention_hours: Option<u32>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: sqlx::Error::Io(e),
            })?;
        }
        // Two processes opening a new store at once would race to create
        // the file, switch it to WAL and create its tables (the switch can
        // answer "database is locked" without waiting): connecting and
        // migrating run under an OS lock on STORE.open.lock.
        let guard = crate::lock::open_lock(path).await?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let migrated = sqlx::migrate!("../../migrations").run(&pool).await;
        drop(guard);
        migrated.map_err(|source| StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Store {
            pool,
            path: path.to_path_buf(),
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

    /// A write transaction, taking the write lock at once (`BEGIN
    /// IMMEDIATE`): a read that later turns into a write could not wait for
    /// another writer and would fail with "database is locked".
    pub(crate) async fn begin_write(
        &self,
        what: &'static str,
    ) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query_err(what))
    }

    /// The file this store lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn query_err(
        &self,
        what: &'static str,
    ) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
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
            "SELECT t, open, high, low, close, volume FROM bars WHERE symbol = ? AND t <= ? ORDER BY t DESC LIMIT ?",
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
                    path: self.path.clone(),
                    value: s,
                })?;
                Ok((symbol, n.unsigned_abs()))
            })
            .collect()
    }

    /// Checkpoints the WAL into the main file (TRUNCATE: the `-wal` file is
    /// emptied), so that the `.sqlite` file alone holds everything.
    ///
    /// # Errors
    /// A database error (another connection reading, for example).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
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

//! The trials of a search shared by several training hosts through one
//! PostgreSQL database (`trader train --queue postgres://...`).
//!
//! A host claims a queued trial with `SELECT ... FOR UPDATE SKIP LOCKED` in
//! a transaction it keeps open while the trial runs, on a connection of its
//! own: no two hosts ever hold the same trial, and a host that dies (even
//! by SIGKILL) loses its connection, the server rolls the claim back, and
//! the trial is queued again for any host. A finished trial's result and
//! its member's files are written and the claim committed in that same
//! transaction, so a trial is done once: by the host whose commit lands.
//! A host that cannot finish a trial (stopped by a signal) rolls its claim
//! back.

use std::collections::HashMap;
use std::path::Path;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use trader_core::StoreLocation;

use crate::{Store, StoreError};

/// A finished trial as the database ranks it.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedTrial {
    pub trial: u32,
    pub score: f64,
    /// The host that finished it.
    pub host: String,
}

/// Counts of a search's trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub queued: u64,
    pub done: u64,
    pub failed: u64,
}

/// One host's view of a shared search; its claims are held until finished,
/// failed or released.
#[derive(Debug)]
pub struct TrialQueue {
    pool: PgPool,
    shown: String,
    search: String,
    host: String,
    claims: HashMap<u32, Transaction<'static, Postgres>>,
}

/// A pool of at most `max` connections to the shared search's database.
async fn connect(location: &StoreLocation, max: u32) -> Result<PgPool, StoreError> {
    let shown = location.to_string();
    let StoreLocation::Postgres(url) = location else {
        return Err(StoreError::Queue {
            store: shown,
            reason:
                "a shared search lives in a postgres:// database: a SQLite file is one machine's"
                    .into(),
        });
    };
    PgPoolOptions::new()
        .max_connections(max)
        .connect(url.expose())
        .await
        .map_err(|source| StoreError::Open {
            store: shown,
            source,
        })
}

impl TrialQueue {
    /// Joins the search `search` on the database at `location` (migrated
    /// first), creating it with `trials` trials and `top_n` when it is new.
    /// `settings` (JSON) must equal the search's: a host with other data,
    /// spans or seed would score its trials on another question.
    ///
    /// # Errors
    /// Not a PostgreSQL store, the database refuses, or the search exists
    /// with other settings or another trial count.
    pub async fn join(
        location: &StoreLocation,
        search: &str,
        settings: &str,
        trials: u32,
        top_n: u32,
        host: &str,
        now: i64,
    ) -> Result<Self, StoreError> {
        let shown = location.to_string();
        // A connection per claim (one per worker slot) and a few more.
        let pool = connect(location, 32).await?;
        // The queue's tables: the store's migrations first.
        Store::open(location, None).await?.close().await;
        let q = TrialQueue {
            pool,
            shown,
            search: search.to_owned(),
            host: host.to_owned(),
            claims: HashMap::new(),
        };
        q.register(settings, trials, top_n, now).await?;
        Ok(q)
    }

    /// Follows an existing search without joining it (a trader's box):
    /// its ranking and members only; claims nothing. Returns the queue and
    /// the search's `top_n`.
    ///
    /// # Errors
    /// Not a PostgreSQL store, the database refuses, or no such search.
    pub async fn follow(location: &StoreLocation, search: &str) -> Result<(Self, u32), StoreError> {
        let shown = location.to_string();
        let pool = connect(location, 2).await?;
        let top_n: Option<i64> = sqlx::query_scalar("SELECT top_n FROM searches WHERE name = $1")
            .bind(search)
            .fetch_optional(&pool)
            .await
            .map_err(|source| StoreError::Query {
                store: shown.clone(),
                what: "reading the search",
                source,
            })?;
        let Some(top_n) = top_n else {
            return Err(StoreError::Queue {
                store: shown,
                reason: format!(
                    "no search {search:?} (trader train --queue ... --search NAME makes it)"
                ),
            });
        };
        Ok((
            TrialQueue {
                pool,
                shown,
                search: search.to_owned(),
                host: String::new(),
                claims: HashMap::new(),
            },
            u32::try_from(top_n).unwrap_or(u32::MAX),
        ))
    }

    async fn register(
        &self,
        settings: &str,
        trials: u32,
        top_n: u32,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.err("joining the search"))?;
        sqlx::query(
            "INSERT INTO searches (name, settings, trials, top_n, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&self.search)
        .bind(settings)
        .bind(i64::from(trials))
        .bind(i64::from(top_n))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(self.err("creating the search"))?;
        let row = sqlx::query("SELECT settings, trials FROM searches WHERE name = $1")
            .bind(&self.search)
            .fetch_one(&mut *tx)
            .await
            .map_err(self.err("reading the search"))?;
        let (theirs, their_trials): (String, i64) = (row.get(0), row.get(1));
        if theirs != settings || their_trials != i64::from(trials) {
            return Err(StoreError::Queue {
                store: self.shown.clone(),
                reason: format!(
                    "search {:?} exists with other settings: {theirs} ({their_trials} trials); \
                     this host has {settings} ({trials} trials): give it the same flags or another --search",
                    self.search
                ),
            });
        }
        sqlx::query(
            "INSERT INTO trials (search, trial) SELECT $1, t FROM generate_series(0, $2 - 1) t \
             ON CONFLICT (search, trial) DO NOTHING",
        )
        .bind(&self.search)
        .bind(i64::from(trials))
        .execute(&mut *tx)
        .await
        .map_err(self.err("queueing the trials"))?;
        tx.commit().await.map_err(self.err("joining the search"))
    }

    /// Claims the lowest queued trial no other host holds; None when every
    /// queued trial is held (or none is left).
    ///
    /// # Errors
    /// A database error.
    pub async fn claim(&mut self) -> Result<Option<u32>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.err("claiming a trial"))?;
        let row = sqlx::query(
            "SELECT trial FROM trials WHERE search = $1 AND status = 'queued' \
             ORDER BY trial FOR UPDATE SKIP LOCKED LIMIT 1",
        )
        .bind(&self.search)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.err("claiming a trial"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let trial = u32::try_from(row.get::<i64, _>(0)).unwrap_or(u32::MAX);
        self.claims.insert(trial, tx);
        Ok(Some(trial))
    }

    /// Records a claimed trial as done with `score` and `result`, its
    /// member directory `member` stored file by file, and ends the claim.
    ///
    /// # Errors
    /// Not claimed by this host, a member file unreadable, or a database
    /// error (the claim is rolled back: the trial is queued again).
    pub async fn finish(
        &mut self,
        trial: u32,
        score: f64,
        result: &str,
        member: &Path,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.take(trial)?;
        let mut files = Vec::new();
        for entry in fs_err::read_dir(member).map_err(|e| self.io(member, &e))? {
            let entry = entry.map_err(|e| self.io(member, &e))?;
            if entry.path().is_file() {
                let bytes = fs_err::read(entry.path()).map_err(|e| self.io(member, &e))?;
                files.push((entry.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
        for (file, bytes) in files {
            sqlx::query(
                "INSERT INTO trial_files (search, trial, file, bytes) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (search, trial, file) DO UPDATE SET bytes = excluded.bytes",
            )
            .bind(&self.search)
            .bind(i64::from(trial))
            .bind(file)
            .bind(bytes)
            .execute(&mut *tx)
            .await
            .map_err(self.err("storing a member file"))?;
        }
        sqlx::query(
            "UPDATE trials SET status = 'done', host = $3, score = $4, result = $5, \
             finished_at = $6 WHERE search = $1 AND trial = $2",
        )
        .bind(&self.search)
        .bind(i64::from(trial))
        .bind(&self.host)
        .bind(score)
        .bind(result)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(self.err("recording a finished trial"))?;
        tx.commit()
            .await
            .map_err(self.err("committing a finished trial"))
    }

    /// Records a claimed trial as failed (`why`), ending the claim: no
    /// host runs it again.
    ///
    /// # Errors
    /// Not claimed by this host, or a database error.
    pub async fn fail(&mut self, trial: u32, why: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.take(trial)?;
        sqlx::query(
            "UPDATE trials SET status = 'failed', host = $3, error = $4, finished_at = $5 \
             WHERE search = $1 AND trial = $2",
        )
        .bind(&self.search)
        .bind(i64::from(trial))
        .bind(&self.host)
        .bind(why)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(self.err("recording a failed trial"))?;
        tx.commit()
            .await
            .map_err(self.err("committing a failed trial"))
    }

    /// Gives a claimed trial back to the queue (rolled back).
    pub async fn release(&mut self, trial: u32) {
        if let Some(tx) = self.claims.remove(&trial) {
            let _ = tx.rollback().await;
        }
    }

    /// The trials this host holds.
    #[must_use]
    pub fn claimed(&self) -> Vec<u32> {
        let mut held: Vec<u32> = self.claims.keys().copied().collect();
        held.sort_unstable();
        held
    }

    /// Queued (held by a host or not), done and failed trials.
    ///
    /// # Errors
    /// A database error.
    pub async fn counts(&self) -> Result<QueueCounts, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) FROM trials WHERE search = $1 GROUP BY status")
                .bind(&self.search)
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("counting trials"))?;
        let mut counts = QueueCounts::default();
        for r in rows {
            let n = r.get::<i64, _>(1).unsigned_abs();
            match r.get::<String, _>(0).as_str() {
                "queued" => counts.queued = n,
                "done" => counts.done = n,
                _ => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// Every done trial, best first (ties: the lower trial).
    ///
    /// # Errors
    /// A database error.
    pub async fn ranking(&self) -> Result<Vec<RankedTrial>, StoreError> {
        let rows = sqlx::query(
            "SELECT trial, score, COALESCE(host, '') FROM trials \
             WHERE search = $1 AND status = 'done' ORDER BY score DESC, trial",
        )
        .bind(&self.search)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("ranking the trials"))?;
        Ok(rows
            .iter()
            .map(|r| RankedTrial {
                trial: u32::try_from(r.get::<i64, _>(0)).unwrap_or(u32::MAX),
                score: r.get(1),
                host: r.get(2),
            })
            .collect())
    }

    /// Writes the member files of done trial `trial` into `dir` (created),
    /// then returns how many.
    ///
    /// # Errors
    /// A database error, or the files cannot be written.
    pub async fn write_member(&self, trial: u32, dir: &Path) -> Result<usize, StoreError> {
        let rows =
            sqlx::query("SELECT file, bytes FROM trial_files WHERE search = $1 AND trial = $2")
                .bind(&self.search)
                .bind(i64::from(trial))
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("reading a member's files"))?;
        fs_err::create_dir_all(dir).map_err(|e| self.io(dir, &e))?;
        for r in &rows {
            let file: String = r.get(0);
            // Only plain names: a stored name never leaves `dir`.
            if file.contains('/') || file.starts_with('.') {
                return Err(StoreError::Queue {
                    store: self.shown.clone(),
                    reason: format!("trial {trial} has a member file named {file:?}"),
                });
            }
            let bytes: Vec<u8> = r.get(1);
            fs_err::write(dir.join(&file), bytes).map_err(|e| self.io(dir, &e))?;
        }
        Ok(rows.len())
    }

    /// Ends this host's part: open claims are rolled back (queued again).
    pub async fn close(mut self) {
        for trial in self.claimed() {
            self.release(trial).await;
        }
        self.pool.close().await;
    }

    fn take(&mut self, trial: u32) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.claims.remove(&trial).ok_or_else(|| StoreError::Queue {
            store: self.shown.clone(),
            reason: format!("trial {trial} is not claimed by this host"),
        })
    }

    fn err(&self, what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            store: self.shown.clone(),
            what,
            source,
        }
    }

    fn io(&self, path: &Path, source: &std::io::Error) -> StoreError {
        StoreError::Queue {
            store: self.shown.clone(),
            reason: format!("{}: {source}", path.display()),
        }
    }
}

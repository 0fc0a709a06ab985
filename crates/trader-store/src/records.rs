//! Run records: runs, decisions, orders, fills and equity snapshots.
//!
//! A decision and the orders it plans are written in one transaction
//! *before* any order is sent (status `planned`), so a trader killed at any
//! point finds on restart the hours it already decided and the orders it may
//! or may not have sent; it re-sends those with the same `client_order_id`
//! and the broker's duplicate check makes that safe.

use std::collections::BTreeMap;

use sqlx::Row;
use trader_core::{OrderStatus, Side, Symbol};

use crate::{CurrentEnsemble, Recorder, Store, StoreError, VersionMember};

/// How a run reaches its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// A broker that outlives the process (Alpaca, or a standalone
    /// simulator): a restart resumes the unfinished run.
    Live,
    /// The embedded simulator: every run is a fresh replay.
    Replay,
    Backtest,
}

impl RunMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Live => "live",
            RunMode::Replay => "replay",
            RunMode::Backtest => "backtest",
        }
    }
}

/// A started (or resumed) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStart {
    pub run_id: i64,
    /// An unfinished run of the same profile and mode was picked up.
    pub resumed: bool,
}

/// One decided (or skipped) hour.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub bar_t: i64,
    pub member_actions: Vec<Vec<f32>>,
    pub aggregate: Vec<f32>,
    pub target_weights: BTreeMap<String, f64>,
    pub latency_us: u64,
    /// Why the hour was not traded (state unavailable, broker unreadable).
    pub skipped_reason: Option<String>,
    /// The ensemble version that decided the hour (None: none, or not
    /// known to the caller).
    pub ensemble_version: Option<String>,
}

/// An order as planned by a decision, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedOrder {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub notional: Option<f64>,
    pub qty: Option<f64>,
}

/// What the store knows of an order: the broker's statuses, and the two of
/// its own (`Planned`: written with its decision, not yet answered;
/// `Unknown`: sent, the answer lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderState {
    Planned,
    Unknown,
    Open,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    Rejected,
    /// A status this version does not know, kept as written.
    Other(String),
}

impl OrderState {
    /// The text in the `orders.status` column.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            OrderState::Planned => "planned",
            OrderState::Unknown => "unknown",
            OrderState::Open => "open",
            OrderState::PartiallyFilled => "partially_filled",
            OrderState::Filled => "filled",
            OrderState::Canceled => "canceled",
            OrderState::Expired => "expired",
            OrderState::Rejected => "rejected",
            OrderState::Other(s) => s,
        }
    }

    /// The state written as `text`.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        match text {
            "planned" => OrderState::Planned,
            "unknown" => OrderState::Unknown,
            "open" => OrderState::Open,
            "partially_filled" => OrderState::PartiallyFilled,
            "filled" => OrderState::Filled,
            "canceled" => OrderState::Canceled,
            "expired" => OrderState::Expired,
            "rejected" => OrderState::Rejected,
            other => OrderState::Other(other.to_owned()),
        }
    }

    /// Not confirmed by the broker: to be sent again with its id.
    #[must_use]
    pub fn needs_resend(&self) -> bool {
        matches!(self, OrderState::Planned | OrderState::Unknown)
    }

    /// May still change (to be settled at a later hour).
    #[must_use]
    pub fn is_unsettled(&self) -> bool {
        UNSETTLED.contains(&self.as_str())
    }
}

impl From<&OrderStatus> for OrderState {
    fn from(s: &OrderStatus) -> Self {
        OrderState::parse(s.as_str())
    }
}

impl serde::Serialize for OrderState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An order row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredOrder {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub notional: Option<f64>,
    pub qty: Option<f64>,
    pub status: OrderState,
    pub broker_order_id: Option<String>,
    pub bar_t: Option<i64>,
}

/// A decision as listed for reports: the hour, the aggregate and target
/// weights as stored (JSON text), and why it was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub bar_t: i64,
    pub aggregate: String,
    pub target_weights: String,
    pub skipped_reason: Option<String>,
    /// The ensemble version that decided it (None: decided before versions
    /// were recorded, or by none).
    pub ensemble_version: Option<String>,
}

/// One fill of an order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillRow {
    pub qty: f64,
    pub price: f64,
    pub fee: f64,
}

/// Counts of one run, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub decisions: u64,
    pub skipped: u64,
    pub orders: u64,
    pub filled: u64,
    pub fills: u64,
}

/// The newest state of a profile's runs, for `trader status`. Its JSON
/// keeps the shape `trader status --json` always had: `run`,
/// `last_decision` and `last_equity` are arrays (see each type).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProfileStatus {
    /// Newest run (None: the profile never ran in this store).
    pub run: Option<NewestRun>,
    /// How the newest run ended (`finished`, `failed`, `abandoned`; None:
    /// running or killed) and the error that stopped it.
    pub run_outcome: Option<String>,
    pub run_error: Option<String>,
    /// Newest decision of the newest run.
    pub last_decision: Option<LastDecision>,
    /// Newest equity snapshot of the newest run.
    pub last_equity: Option<LastEquity>,
    /// Orders that may still change, of any run of the profile.
    pub unsettled_orders: Vec<StoredOrder>,
    /// The newest ensemble adoption of the profile's newest run that has
    /// one (None: no run of the profile recorded an ensemble version).
    pub ensemble: Option<CurrentEnsemble>,
}

/// A profile's newest run; JSON `[id, mode, started_at, ended_at]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(into = "(i64, String, i64, Option<i64>)")]
pub struct NewestRun {
    pub id: i64,
    /// `live`, `replay` or `backtest` as stored.
    pub mode: String,
    pub started_at: i64,
    /// None: running, or stopped by a kill.
    pub ended_at: Option<i64>,
}

impl From<NewestRun> for (i64, String, i64, Option<i64>) {
    fn from(r: NewestRun) -> Self {
        (r.id, r.mode, r.started_at, r.ended_at)
    }
}

/// A run's newest decision; JSON `[bar_t, target_weights, skipped_reason,
/// ensemble_version]` (the fourth element added last, so the first three
/// keep their places).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(into = "(i64, String, Option<String>, Option<String>)")]
pub struct LastDecision {
    /// The hour decided.
    pub bar_t: i64,
    /// Target weights per symbol, as the JSON text stored.
    pub target_weights: String,
    /// Why the hour was skipped (None: decided).
    pub skipped_reason: Option<String>,
    /// The ensemble version that decided it (None: not recorded).
    pub ensemble_version: Option<String>,
}

impl From<LastDecision> for (i64, String, Option<String>, Option<String>) {
    fn from(d: LastDecision) -> Self {
        (
            d.bar_t,
            d.target_weights,
            d.skipped_reason,
            d.ensemble_version,
        )
    }
}

/// A run's newest equity snapshot; JSON `[t, cash, equity, positions]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(into = "(i64, f64, f64, String)")]
pub struct LastEquity {
    pub t: i64,
    pub cash: f64,
    pub equity: f64,
    /// Quantity per symbol, as the JSON text stored.
    pub positions: String,
}

impl From<LastEquity> for (i64, f64, f64, String) {
    fn from(e: LastEquity) -> Self {
        (e.t, e.cash, e.equity, e.positions)
    }
}

/// Order statuses that may still change (the SQL of the queries below).
pub(crate) const UNSETTLED: [&str; 4] = ["planned", "unknown", "open", "partially_filled"];

impl Store {
    /// Starts a run; in `Live` mode resumes the newest unfinished live run
    /// of `profile` instead.
    pub async fn start_run(
        &self,
        profile: &str,
        config_hash: &str,
        budget_verdict: &str,
        mode: RunMode,
        now: i64,
    ) -> Result<RunStart, StoreError> {
        if mode == RunMode::Live {
            let row = sqlx::query(
                "SELECT id FROM runs WHERE profile = $1 AND mode = 'live' AND ended_at IS NULL \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(profile)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("finding an unfinished run"))?;
            if let Some(row) = row {
                let run_id = row.get::<i64, _>(0);
                // Resumed: the error that stopped it last time is history
                // (it was logged then), not the state of the run.
                sqlx::query("UPDATE runs SET error = NULL WHERE id = $1")
                    .bind(run_id)
                    .execute(&self.pool)
                    .await
                    .map_err(self.query_err("resuming a run"))?;
                return Ok(RunStart {
                    run_id,
                    resumed: true,
                });
            }
        }
        let id = sqlx::query(
            "INSERT INTO runs (profile, config_hash, budget_verdict, mode, started_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(profile)
        .bind(config_hash)
        .bind(budget_verdict)
        .bind(mode.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(self.query_err("starting a run"))?
        .get::<i64, _>(0);
        Ok(RunStart {
            run_id: id,
            resumed: false,
        })
    }

    /// Marks a run finished.
    pub async fn finish_run(&self, run_id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET ended_at = $1, outcome = 'finished' WHERE id = $2")
            .bind(now)
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(self.query_err("finishing a run"))?;
        Ok(())
    }

    /// Records the error that stopped a run. A `resumable` run (live: its
    /// broker outlives the process) stays unfinished, so the next start
    /// resumes it as after a kill; any other run ends as `failed`.
    pub async fn fail_run(
        &self,
        run_id: i64,
        now: i64,
        error: &str,
        resumable: bool,
    ) -> Result<(), StoreError> {
        let query = if resumable {
            sqlx::query("UPDATE runs SET error = $1 WHERE id = $2")
                .bind(error)
                .bind(run_id)
        } else {
            sqlx::query(
                "UPDATE runs SET error = $1, ended_at = $2, outcome = 'failed' WHERE id = $3",
            )
            .bind(error)
            .bind(now)
            .bind(run_id)
        };
        query
            .execute(&self.pool)
            .await
            .map_err(self.query_err("recording a failed run"))?;
        Ok(())
    }

    /// Ends the unfinished runs of `profile` in `mode` as `abandoned` (replays
    /// killed before they finished: their broker died with them) and returns
    /// their ids. Only the holder of the profile's [`crate::ProfileLock`] may
    /// call this: an unfinished run of a live holder is not abandoned.
    pub async fn abandon_unfinished(
        &self,
        profile: &str,
        mode: RunMode,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "UPDATE runs SET ended_at = $1, outcome = 'abandoned' \
             WHERE profile = $2 AND mode = $3 AND ended_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(profile)
        .bind(mode.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("ending abandoned runs"))?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The newest decided hour of the run.
    pub async fn last_decided_hour(&self, run_id: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(bar_t) FROM decisions WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .map_err(self.query_err("finding the last decision"))?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    /// The newest hour decided (or skipped) by any run of `profile` in `mode`.
    pub async fn last_decided_hour_for(
        &self,
        profile: &str,
        mode: RunMode,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(d.bar_t) FROM decisions d JOIN runs r ON r.id = d.run_id \
             WHERE r.profile = $1 AND r.mode = $2",
        )
        .bind(profile)
        .bind(mode.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(self.query_err("finding the profile's last decision"))?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    /// The run's equity snapshots, oldest first: (hour, cash, equity).
    pub async fn equity_curve(&self, run_id: i64) -> Result<Vec<(i64, f64, f64)>, StoreError> {
        let rows = sqlx::query("SELECT t, cash, equity FROM equity WHERE run_id = $1 ORDER BY t")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("reading equity"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Every profile with a run in this store, by name.
    ///
    /// # Errors
    /// A database error.
    pub async fn profiles(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT profile FROM runs ORDER BY profile")
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("listing profiles"))?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Who holds each profile's lock, as the holders wrote it (PostgreSQL's
    /// advisory locks; a SQLite store's holders are in its lock files).
    ///
    /// # Errors
    /// A database error.
    pub async fn lock_holders(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT profile, holder FROM profile_locks")
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("reading lock holders"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect())
    }

    /// The newest run, decision, equity snapshot and unsettled orders of
    /// `profile`.
    pub async fn profile_status(&self, profile: &str) -> Result<ProfileStatus, StoreError> {
        let row = sqlx::query(
            "SELECT id, mode, started_at, ended_at, outcome, error FROM runs WHERE profile = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(profile)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_err("reading the newest run"))?;
        let run = row.as_ref().map(|r| NewestRun {
            id: r.get(0),
            mode: r.get(1),
            started_at: r.get(2),
            ended_at: r.get(3),
        });
        let (run_outcome, run_error) = row.as_ref().map_or((None, None), |r| (r.get(4), r.get(5)));
        let Some(run_id) = run.as_ref().map(|r| r.id) else {
            return Ok(ProfileStatus {
                run: None,
                run_outcome: None,
                run_error: None,
                last_decision: None,
                last_equity: None,
                unsettled_orders: Vec::new(),
                ensemble: None,
            });
        };
        let last_decision = sqlx::query(
            "SELECT bar_t, target_weights, skipped_reason, ensemble_version FROM decisions \
             WHERE run_id = $1 ORDER BY bar_t DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_err("reading the newest decision"))?
        .map(|r| LastDecision {
            bar_t: r.get(0),
            target_weights: r.get(1),
            skipped_reason: r.get(2),
            ensemble_version: r.get(3),
        });
        let last_equity = sqlx::query(
            "SELECT t, cash, equity, positions FROM equity WHERE run_id = $1 ORDER BY t DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_err("reading the newest equity"))?
        .map(|r| LastEquity {
            t: r.get(0),
            cash: r.get(1),
            equity: r.get(2),
            positions: r.get(3),
        });
        Ok(ProfileStatus {
            run,
            run_outcome,
            run_error,
            last_decision,
            last_equity,
            unsettled_orders: self.unsettled_orders(run_id).await?,
            ensemble: self.current_ensemble(profile).await?,
        })
    }

    /// The newest adoption of the newest run of `profile` that has one,
    /// with the number of adoptions of that run.
    async fn current_ensemble(&self, profile: &str) -> Result<Option<CurrentEnsemble>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT a.run_id, a.version, v.members, a.adopted_at, \
             (SELECT COUNT(*) FROM ensemble_adoptions n WHERE n.run_id = a.run_id) \
             FROM ensemble_adoptions a JOIN runs r ON r.id = a.run_id \
             JOIN ensemble_versions v ON v.version = a.version \
             WHERE r.profile = $1 ORDER BY a.run_id DESC, a.id DESC LIMIT 1",
        )
        .bind(profile)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_err("reading the newest ensemble adoption"))?
        else {
            return Ok(None);
        };
        Ok(Some(CurrentEnsemble {
            run_id: row.get(0),
            version: row.get(1),
            members: self.decode_members(&row.get::<String, _>(2))?,
            adopted_at: row.get(3),
            adoptions_in_run: u32::try_from(row.get::<i64, _>(4)).unwrap_or(u32::MAX),
        }))
    }

    /// `ensemble_versions.members` as written by `record_adoption`.
    pub(crate) fn decode_members(&self, text: &str) -> Result<Vec<VersionMember>, StoreError> {
        serde_json::from_str(text)
            .map_err(|e| self.query_err("decoding ensemble members")(sqlx::Error::Decode(e.into())))
    }

    /// First and last equity snapshot of a run: (t, equity).
    pub async fn equity_span(
        &self,
        run_id: i64,
    ) -> Result<Option<((i64, f64), (i64, f64))>, StoreError> {
        let rows = sqlx::query(
            "SELECT t, equity FROM equity WHERE run_id = $1 AND t IN \
             ((SELECT MIN(t) FROM equity WHERE run_id = $2), (SELECT MAX(t) FROM equity WHERE run_id = $3)) \
             ORDER BY t",
        )
        .bind(run_id)
        .bind(run_id)
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("reading equity"))?;
        let first = rows
            .first()
            .map(|r| (r.get::<i64, _>(0), r.get::<f64, _>(1)));
        let last = rows
            .last()
            .map(|r| (r.get::<i64, _>(0), r.get::<f64, _>(1)));
        Ok(first.zip(last))
    }
}

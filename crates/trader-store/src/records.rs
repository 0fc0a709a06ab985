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

use crate::{Store, StoreError};

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

/// A run's newest decision; JSON `[bar_t, target_weights, skipped_reason]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(into = "(i64, String, Option<String>)")]
pub struct LastDecision {
    /// The hour decided.
    pub bar_t: i64,
    /// Target weights per symbol, as the JSON text stored.
    pub target_weights: String,
    /// Why the hour was skipped (None: decided).
    pub skipped_reason: Option<String>,
}

impl From<LastDecision> for (i64, String, Option<String>) {
    fn from(d: LastDecision) -> Self {
        (d.bar_t, d.target_weights, d.skipped_reason)
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
                "SELECT id FROM runs WHERE profile = ? AND mode = 'live' AND ended_at IS NULL \
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
                sqlx::query("UPDATE runs SET error = NULL WHERE id = ?")
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
             VALUES (?, ?, ?, ?, ?) RETURNING id",
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
        sqlx::query("UPDATE runs SET ended_at = ?, outcome = 'finished' WHERE id = ?")
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
            sqlx::query("UPDATE runs SET error = ? WHERE id = ?")
                .bind(error)
                .bind(run_id)
        } else {
            sqlx::query("UPDATE runs SET error = ?, ended_at = ?, outcome = 'failed' WHERE id = ?")
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
            "UPDATE runs SET ended_at = ?, outcome = 'abandoned' \
             WHERE profile = ? AND mode = ? AND ended_at IS NULL RETURNING id",
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

    /// Whether `bar_t` was already decided (or skipped) in this run.
    pub async fn decided(&self, run_id: i64, bar_t: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM decisions WHERE run_id = ? AND bar_t = ?")
            .bind(run_id)
            .bind(bar_t)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("looking up a decision"))?;
        Ok(row.is_some())
    }

    /// The newest decided hour of the run.
    pub async fn last_decided_hour(&self, run_id: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(bar_t) FROM decisions WHERE run_id = ?")
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
             WHERE r.profile = ? AND r.mode = ?",
        )
        .bind(profile)
        .bind(mode.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(self.query_err("finding the profile's last decision"))?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    /// Writes a decision and its planned orders in one transaction.
    pub async fn record_decision(
        &self,
        run_id: i64,
        decision: &DecisionRecord,
        orders: &[PlannedOrder],
        now: i64,
    ) -> Result<i64, StoreError> {
        let json = |v: serde_json::Result<String>| v.unwrap_or_else(|_| "null".to_owned());
        let mut tx = self.begin_write("beginning a decision").await?;
        let decision_id = sqlx::query(
            "INSERT INTO decisions (run_id, bar_t, member_actions, aggregate, target_weights, \
             latency_us, skipped_reason) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(run_id)
        .bind(decision.bar_t)
        .bind(json(serde_json::to_string(&decision.member_actions)))
        .bind(json(serde_json::to_string(&decision.aggregate)))
        .bind(json(serde_json::to_string(&decision.target_weights)))
        .bind(i64::try_from(decision.latency_us).unwrap_or(i64::MAX))
        .bind(decision.skipped_reason.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(self.query_err("writing a decision"))?
        .get::<i64, _>(0);
        for o in orders {
            let request = serde_json::json!({
                "symbol": o.symbol.as_str(), "side": o.side.as_str(), "type": "market", "time_in_force": "gtc",
                "notional": o.notional, "qty": o.qty, "client_order_id": o.client_order_id,
            });
            sqlx::query(
                "INSERT INTO orders (run_id, decision_id, client_order_id, symbol, side, notional, \
                 qty, request, status, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
            )
            .bind(run_id)
            .bind(decision_id)
            .bind(&o.client_order_id)
            .bind(o.symbol.as_str())
            .bind(o.side.as_str())
            .bind(o.notional)
            .bind(o.qty)
            .bind(request.to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(self.query_err("writing a planned order"))?;
        }
        tx.commit()
            .await
            .map_err(self.query_err("committing a decision"))?;
        Ok(decision_id)
    }

    /// Orders of the run whose status may still change, oldest first.
    pub async fn unsettled_orders(&self, run_id: i64) -> Result<Vec<StoredOrder>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.client_order_id, o.symbol, o.side, o.notional, o.qty, o.status, \
             o.broker_order_id, d.bar_t FROM orders o LEFT JOIN decisions d ON d.id = o.decision_id \
             WHERE o.run_id = ? AND o.status IN ('planned', 'unknown', 'open', 'partially_filled') \
             ORDER BY o.id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("listing unsettled orders"))?;
        rows.iter()
            .map(|r| {
                let symbol: String = r.get(1);
                let side: String = r.get(2);
                Ok(StoredOrder {
                    client_order_id: r.get(0),
                    symbol: symbol.parse().map_err(|_| StoreError::BadSymbol {
                        path: self.path().to_path_buf(),
                        value: symbol.clone(),
                    })?,
                    side: if side == "sell" {
                        Side::Sell
                    } else {
                        Side::Buy
                    },
                    notional: r.get(3),
                    qty: r.get(4),
                    status: OrderState::parse(&r.get::<String, _>(5)),
                    broker_order_id: r.get(6),
                    bar_t: r.get(7),
                })
            })
            .collect()
    }

    /// Every decision of a run, oldest first.
    pub async fn decisions_of_run(&self, run_id: i64) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT bar_t, aggregate, target_weights, skipped_reason FROM decisions \
             WHERE run_id = ? ORDER BY bar_t",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("reading decisions"))?;
        Ok(rows
            .iter()
            .map(|r| DecisionRow {
                bar_t: r.get(0),
                aggregate: r.get(1),
                target_weights: r.get(2),
                skipped_reason: r.get(3),
            })
            .collect())
    }

    /// The run's equity snapshots, oldest first: (hour, cash, equity).
    pub async fn equity_curve(&self, run_id: i64) -> Result<Vec<(i64, f64, f64)>, StoreError> {
        let rows = sqlx::query("SELECT t, cash, equity FROM equity WHERE run_id = ? ORDER BY t")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("reading equity"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Every fill of a run.
    pub async fn fills_of_run(&self, run_id: i64) -> Result<Vec<FillRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.qty, f.price, f.fee FROM fills f JOIN orders o ON o.id = f.order_id \
             WHERE o.run_id = ? ORDER BY f.id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("reading fills"))?;
        Ok(rows
            .iter()
            .map(|r| FillRow {
                qty: r.get(0),
                price: r.get(1),
                fee: r.get(2),
            })
            .collect())
    }

    /// Whether an order with this `client_order_id` is in the store.
    pub async fn order_known(&self, client_order_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM orders WHERE client_order_id = ?")
            .bind(client_order_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("looking up an order"))?;
        Ok(row.is_some())
    }

    /// Sets an order's status (and broker id when known).
    pub async fn update_order(
        &self,
        client_order_id: &str,
        status: &OrderState,
        broker_order_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE orders SET status = ?, broker_order_id = COALESCE(?, broker_order_id), \
             updated_at = ? WHERE client_order_id = ?",
        )
        .bind(status.as_str())
        .bind(broker_order_id)
        .bind(now)
        .bind(client_order_id)
        .execute(&self.pool)
        .await
        .map_err(self.query_err("updating an order"))?;
        Ok(())
    }

    /// Records the fill of an order once (a second call for the same order
    /// is ignored).
    pub async fn record_fill(
        &self,
        client_order_id: &str,
        qty: f64,
        price: f64,
        fee: f64,
        filled_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fills (order_id, qty, price, fee, filled_at) \
             SELECT id, ?, ?, ?, ? FROM orders o WHERE o.client_order_id = ? \
             AND NOT EXISTS (SELECT 1 FROM fills f WHERE f.order_id = o.id)",
        )
        .bind(qty)
        .bind(price)
        .bind(fee)
        .bind(filled_at)
        .bind(client_order_id)
        .execute(&self.pool)
        .await
        .map_err(self.query_err("recording a fill"))?;
        Ok(())
    }

    /// Writes (or replaces) the equity snapshot of hour `t`.
    pub async fn record_equity(
        &self,
        run_id: i64,
        t: i64,
        cash: f64,
        equity: f64,
        positions: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO equity (run_id, t, cash, equity, positions) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(t)
        .bind(cash)
        .bind(equity)
        .bind(serde_json::to_string(positions).unwrap_or_else(|_| "{}".to_owned()))
        .execute(&self.pool)
        .await
        .map_err(self.query_err("recording equity"))?;
        Ok(())
    }

    /// The newest run, decision, equity snapshot and unsettled orders of
    /// `profile`.
    pub async fn profile_status(&self, profile: &str) -> Result<ProfileStatus, StoreError> {
        let row = sqlx::query(
            "SELECT id, mode, started_at, ended_at, outcome, error FROM runs WHERE profile = ? \
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
            });
        };
        let last_decision = sqlx::query(
            "SELECT bar_t, target_weights, skipped_reason FROM decisions WHERE run_id = ? \
             ORDER BY bar_t DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_err("reading the newest decision"))?
        .map(|r| LastDecision {
            bar_t: r.get(0),
            target_weights: r.get(1),
            skipped_reason: r.get(2),
        });
        let last_equity = sqlx::query(
            "SELECT t, cash, equity, positions FROM equity WHERE run_id = ? ORDER BY t DESC LIMIT 1",
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
        })
    }

    /// Positions (qty per symbol) of the run's newest equity snapshot.
    pub async fn last_positions(
        &self,
        run_id: i64,
    ) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        let row =
            sqlx::query("SELECT positions FROM equity WHERE run_id = ? ORDER BY t DESC LIMIT 1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.query_err("reading the last positions"))?;
        Ok(row.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok()))
    }

    /// First and last equity snapshot of a run: (t, equity).
    pub async fn equity_span(
        &self,
        run_id: i64,
    ) -> Result<Option<((i64, f64), (i64, f64))>, StoreError> {
        let rows = sqlx::query(
            "SELECT t, equity FROM equity WHERE run_id = ? AND t IN \
             ((SELECT MIN(t) FROM equity WHERE run_id = ?), (SELECT MAX(t) FROM equity WHERE run_id = ?)) \
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

    /// Decisions, skips, orders, filled orders and fills of a run.
    pub async fn run_counts(&self, run_id: i64) -> Result<RunCounts, StoreError> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM decisions WHERE run_id = ?1 AND skipped_reason IS NULL), \
             (SELECT COUNT(*) FROM decisions WHERE run_id = ?1 AND skipped_reason IS NOT NULL), \
             (SELECT COUNT(*) FROM orders WHERE run_id = ?1), \
             (SELECT COUNT(*) FROM orders WHERE run_id = ?1 AND status = 'filled'), \
             (SELECT COUNT(*) FROM fills f JOIN orders o ON o.id = f.order_id WHERE o.run_id = ?1)",
        )
        .bind(run_id)
        .fetch_one(&self.pool)
        .await
        .map_err(self.query_err("counting a run"))?;
        let n = |i: usize| row.get::<i64, _>(i).unsigned_abs();
        Ok(RunCounts {
            decisions: n(0),
            skipped: n(1),
            orders: n(2),
            filled: n(3),
            fills: n(4),
        })
    }
}

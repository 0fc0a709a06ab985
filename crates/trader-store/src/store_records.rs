//! The [`Store`] (SQLite or PostgreSQL, the same SQL) as the engine's [`Recorder`]: bars into the bar
//! history, decisions with their planned orders in one transaction, order
//! states, fills, equity snapshots, and what a run's report reads back.
//! These are the store's only record methods (no inherent twins): a caller
//! imports [`Recorder`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;
use trader_core::{Bar, HOUR_SECS, Side, Symbol, format_time};

use crate::store::{INSERT_ROWS_PER_STATEMENT, bar_from_row, validate_bars};
use crate::{
    DecisionRecord, DecisionRow, EnsembleAdoption, FillRow, HistoryWindow, InsertReport,
    OrderState, PlannedOrder, Recorder, RunCounts, Store, StoreError, StoredOrder,
};

impl Recorder for Store {
    /// The window of `symbols` the engine starts with: the newest `hours`
    /// of the bar history, or an empty window for a records-only handle.
    async fn load_window(
        &self,
        symbols: &[Symbol],
        hours: u32,
    ) -> Result<HistoryWindow, StoreError> {
        if self.keeps_bars() {
            HistoryWindow::load(self, symbols, hours).await
        } else {
            Ok(HistoryWindow::new(symbols, hours))
        }
    }

    /// Whether `bar_t` was already decided (or skipped) in this run.
    async fn decided(&self, run_id: i64, bar_t: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM decisions WHERE run_id = $1 AND bar_t = $2")
            .bind(run_id)
            .bind(bar_t)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("looking up a decision"))?;
        Ok(row.is_some())
    }

    /// Writes a decision and its planned orders in one transaction.
    async fn record_decision(
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
             latency_us, skipped_reason, ensemble_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING id",
        )
        .bind(run_id)
        .bind(decision.bar_t)
        .bind(json(serde_json::to_string(&decision.member_actions)))
        .bind(json(serde_json::to_string(&decision.aggregate)))
        .bind(json(serde_json::to_string(&decision.target_weights)))
        .bind(i64::try_from(decision.latency_us).unwrap_or(i64::MAX))
        .bind(decision.skipped_reason.as_deref())
        .bind(decision.ensemble_version.as_deref())
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'planned', $9, $10)",
            )
            .bind(run_id)
            .bind(decision_id)
            .bind(&o.client_order_id)
            .bind(o.symbol.as_str())
            .bind(o.side.as_str())
            .bind(null_safe(o.notional))
            .bind(null_safe(o.qty))
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
    async fn unsettled_orders(&self, run_id: i64) -> Result<Vec<StoredOrder>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.client_order_id, o.symbol, o.side, o.notional, o.qty, o.status, \
             o.broker_order_id, d.bar_t FROM orders o LEFT JOIN decisions d ON d.id = o.decision_id \
             WHERE o.run_id = $1 AND o.status IN ('planned', 'unknown', 'open', 'partially_filled') \
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
                        store: self.name(),
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

    /// Sets an order's status (and broker id when known).
    async fn update_order(
        &self,
        client_order_id: &str,
        status: &OrderState,
        broker_order_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE orders SET status = $1, broker_order_id = COALESCE($2, broker_order_id), \
             updated_at = $3 WHERE client_order_id = $4",
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
    async fn record_fill(
        &self,
        client_order_id: &str,
        qty: f64,
        price: f64,
        fee: f64,
        filled_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fills (order_id, qty, price, fee, filled_at) \
             SELECT id, $1, $2, $3, $4 FROM orders o WHERE o.client_order_id = $5 \
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
    async fn record_equity(
        &self,
        run_id: i64,
        t: i64,
        cash: f64,
        equity: f64,
        positions: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO equity (run_id, t, cash, equity, positions) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (run_id, t) DO UPDATE SET cash = excluded.cash, \
             equity = excluded.equity, positions = excluded.positions",
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

    /// Positions (qty per symbol) of the run's newest equity snapshot.
    async fn last_positions(
        &self,
        run_id: i64,
    ) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        let row =
            sqlx::query("SELECT positions FROM equity WHERE run_id = $1 ORDER BY t DESC LIMIT 1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.query_err("reading the last positions"))?;
        Ok(row.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok()))
    }

    /// Whether an order with this `client_order_id` is in the store.
    async fn order_known(&self, client_order_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM orders WHERE client_order_id = $1")
            .bind(client_order_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("looking up an order"))?;
        Ok(row.is_some())
    }

    /// Decisions, skips, orders, filled orders and fills of a run.
    async fn run_counts(&self, run_id: i64) -> Result<RunCounts, StoreError> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM decisions WHERE run_id = $1 AND skipped_reason IS NULL), \
             (SELECT COUNT(*) FROM decisions WHERE run_id = $1 AND skipped_reason IS NOT NULL), \
             (SELECT COUNT(*) FROM orders WHERE run_id = $1), \
             (SELECT COUNT(*) FROM orders WHERE run_id = $1 AND status = 'filled'), \
             (SELECT COUNT(*) FROM fills f JOIN orders o ON o.id = f.order_id WHERE o.run_id = $1)",
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

    /// Every fill of a run.
    async fn fills_of_run(&self, run_id: i64) -> Result<Vec<FillRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.qty, f.price, f.fee FROM fills f JOIN orders o ON o.id = f.order_id \
             WHERE o.run_id = $1 ORDER BY f.id",
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

    /// Every decision of a run, oldest first.
    async fn decisions_of_run(&self, run_id: i64) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT bar_t, aggregate, target_weights, skipped_reason, ensemble_version \
             FROM decisions WHERE run_id = $1 ORDER BY bar_t",
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
                ensemble_version: r.get(4),
            })
            .collect())
    }

    /// Writes the version's members (once per version) and the adoption in
    /// one transaction; a version already stored with other members is
    /// refused and nothing is written.
    async fn record_adoption(
        &self,
        run_id: i64,
        adoption: &EnsembleAdoption,
    ) -> Result<(), StoreError> {
        adoption.check()?;
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut tx = self.begin_write("beginning an ensemble adoption").await?;
        sqlx::query(
            "INSERT INTO ensemble_versions (version, members, first_seen) \
             VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
        )
        .bind(&adoption.version)
        .bind(adoption.members_json())
        .bind(adoption.adopted_at)
        .execute(&mut *tx)
        .await
        .map_err(self.query_err("writing an ensemble version"))?;
        let stored: String =
            sqlx::query("SELECT members FROM ensemble_versions WHERE version = $1")
                .bind(&adoption.version)
                .fetch_one(&mut *tx)
                .await
                .map_err(self.query_err("reading an ensemble version"))?
                .get(0);
        let stored = self.decode_members(&stored)?;
        if stored != adoption.members {
            // Dropping `tx` rolls the transaction back.
            return Err(adoption.members_differ(&stored));
        }
        sqlx::query(
            "INSERT INTO ensemble_adoptions (run_id, version, previous, adopted_at, after_hour, \
             load_ms, rss_before, rss_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(run_id)
        .bind(&adoption.version)
        .bind(adoption.previous.as_deref())
        .bind(adoption.adopted_at)
        .bind(adoption.after_hour)
        .bind(as_i64(adoption.load_ms))
        .bind(adoption.rss_before.map(as_i64))
        .bind(adoption.rss_after.map(as_i64))
        .execute(&mut *tx)
        .await
        .map_err(self.query_err("writing an ensemble adoption"))?;
        tx.commit()
            .await
            .map_err(self.query_err("committing an ensemble adoption"))?;
        Ok(())
    }

    /// The run's adoptions, oldest first, with their versions' members.
    async fn adoptions_of_run(&self, run_id: i64) -> Result<Vec<EnsembleAdoption>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.version, v.members, a.previous, a.adopted_at, a.after_hour, a.load_ms, \
             a.rss_before, a.rss_after FROM ensemble_adoptions a \
             JOIN ensemble_versions v ON v.version = a.version WHERE a.run_id = $1 ORDER BY a.id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("reading ensemble adoptions"))?;
        rows.iter()
            .map(|r| {
                Ok(EnsembleAdoption {
                    version: r.get(0),
                    members: self.decode_members(&r.get::<String, _>(1))?,
                    previous: r.get(2),
                    adopted_at: r.get(3),
                    after_hour: r.get(4),
                    load_ms: r.get::<i64, _>(5).unsigned_abs(),
                    rss_before: r.get::<Option<i64>, _>(6).map(i64::unsigned_abs),
                    rss_after: r.get::<Option<i64>, _>(7).map(i64::unsigned_abs),
                })
            })
            .collect()
    }

    /// Validates every bar against `now`, then upserts them in one transaction
    /// and prunes the symbol to the retention window.
    ///
    /// # Errors
    /// A bad bar (nothing of the batch is written) or a database error (the
    /// transaction is rolled back).
    async fn insert_bars(
        &self,
        symbol: &Symbol,
        bars: &[Bar],
        now: DateTime<Utc>,
    ) -> Result<InsertReport, StoreError> {
        validate_bars(symbol, bars, now)?;
        if !self.keeps_bars() {
            return Ok(InsertReport {
                inserted: bars.len() as u64,
                ..InsertReport::default()
            });
        }
        let mut report = InsertReport::default();
        // The batch by hour; a later bar for the same hour wins, as if sent one by one.
        let batch: BTreeMap<i64, Bar> = bars.iter().map(|b| (b.t, *b)).collect();
        let (Some(first), Some(last)) = (
            batch.keys().next().copied(),
            batch.keys().next_back().copied(),
        ) else {
            return Ok(report);
        };
        let mut tx = self.begin_write("beginning a transaction").await?;
        let existing: BTreeMap<i64, Bar> =
            sqlx::query("SELECT t, open, high, low, close, volume FROM bars WHERE symbol = $1 AND t BETWEEN $2 AND $3")
                .bind(symbol.as_str())
                .bind(first)
                .bind(last)
                .fetch_all(&mut *tx)
                .await
                .map_err(self.query_err("reading bars"))?
                .iter()
                .map(|row| bar_from_row(row).map(|b| (b.t, b)))
                .collect::<Result<_, _>>()
                .map_err(self.query_err("decoding bars"))?;
        let mut new_bars = Vec::new();
        for bar in batch.values() {
            match existing.get(&bar.t) {
                None => new_bars.push(*bar),
                Some(old) if old == bar => report.unchanged += 1,
                Some(old) => {
                    sqlx::query("UPDATE bars SET open = $1, high = $2, low = $3, close = $4, volume = $5 WHERE symbol = $6 AND t = $7")
                        .bind(bar.open)
                        .bind(bar.high)
                        .bind(bar.low)
                        .bind(bar.close)
                        .bind(bar.volume)
                        .bind(symbol.as_str())
                        .bind(bar.t)
                        .execute(&mut *tx)
                        .await
                        .map_err(self.query_err("replacing a bar"))?;
                    tracing::warn!(
                        symbol = %symbol,
                        t = %format_time(bar.t),
                        old_close = old.close,
                        new_close = bar.close,
                        old_volume = old.volume,
                        new_volume = bar.volume,
                        "corrected bar replaces the stored one"
                    );
                    report.replaced += 1;
                }
            }
        }
        // Multi-row inserts, well under either backend's limit of bound parameters.
        for chunk in new_bars.chunks(INSERT_ROWS_PER_STATEMENT) {
            let sql = bars_insert_sql(chunk.len());
            let mut insert = sqlx::query(&sql);
            for bar in chunk {
                insert = insert
                    .bind(symbol.as_str())
                    .bind(bar.t)
                    .bind(bar.open)
                    .bind(bar.high)
                    .bind(bar.low)
                    .bind(bar.close)
                    .bind(bar.volume);
            }
            insert
                .execute(&mut *tx)
                .await
                .map_err(self.query_err("inserting bars"))?;
            report.inserted += chunk.len() as u64;
        }
        if let Some(hours) = self.retention_hours {
            let pruned = sqlx::query(
                "DELETE FROM bars WHERE symbol = $1 AND t <= (SELECT MAX(t) FROM bars WHERE symbol = $1) \
                 - $3 * (SELECT MAX(h) FROM (SELECT $2 AS h UNION ALL SELECT hours FROM bar_retention) k)",
            )
            .bind(symbol.as_str())
            .bind(i64::from(hours))
            .bind(HOUR_SECS)
            .execute(&mut *tx)
            .await
            .map_err(self.query_err("pruning old bars"))?;
            report.pruned = pruned.rows_affected();
        }
        tx.commit()
            .await
            .map_err(self.query_err("committing bars"))?;
        Ok(report)
    }
}

/// `INSERT INTO bars ... VALUES ($1, .., $7), ($8, ..)` for `rows` bars:
/// numbered placeholders, which both backends read.
fn bars_insert_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO bars (symbol, t, open, high, low, close, volume) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let p = r * 7;
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7
        ));
    }
    sql
}

/// An optional f64 as sqlx's `Any` driver must be given it: its NULL of a
/// double is sent to PostgreSQL as a float4 (sqlx 0.8.6 swaps the NULLs of
/// `Real` and `Double` in `AnyArguments::convert_to`), which the server
/// refuses for a DOUBLE PRECISION column ("incorrect binary data format").
/// A NULL f32 is sent as a float8; a value stays an f64.
fn null_safe(value: Option<f64>) -> F64OrNull {
    match value {
        Some(v) => F64OrNull::Value(v),
        None => F64OrNull::Null,
    }
}

/// See [`null_safe`].
enum F64OrNull {
    Value(f64),
    Null,
}

impl sqlx::Type<sqlx::Any> for F64OrNull {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <f64 as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for F64OrNull {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self {
            F64OrNull::Value(v) => <f64 as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(v, buf),
            F64OrNull::Null => {
                <Option<f32> as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&None, buf)
            }
        }
    }
}

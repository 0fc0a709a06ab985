//! The trading engine: one decision per newly closed hour.
//!
//! For each closed hour handed over by the poll loop: store the bars, settle
//! the orders of earlier hours (re-send those that may not have reached the
//! broker, record fills), then, unless this run already decided the hour,
//! read the account and positions (fail closed: no reading, no trading),
//! build every member input's state vector (portfolio weights, then the
//! market features of the window), run the ensemble, turn the aggregate into
//! target weights (long-only, `max_weight` per symbol, sum at most
//! `max_gross`) and orders for the differences (skipped below
//! `min_trade_notional`), write the decision and its planned orders in one
//! transaction, and only then send the orders (sells first), each with a
//! `client_order_id` derived from (profile, bar time, symbol).
//!
//! The engine sees only the core traits ([`Broker`]) and the store; the
//! clock time of each step is given by the caller.
//!
//! Tests: `cargo test -p trader-engine` (targets and orders); the whole loop
//! is tested through `trader run` in trader-cli.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::DateTime;
use trader_config::TradingSettings;
use trader_core::{
    Bar, Broker, ErrorKind, OrderAmount, OrderRequest, OrderStatus, Position, SeriesFeatures, Side,
    Symbol, market_state, market_state_memo, required_history_hours,
};
use trader_ensemble::{Ensemble, MarketProjection};
use trader_store::{
    DecisionRecord, HistoryWindow, PlannedOrder, Recorder, RunMode, Store, StoreError,
};

/// Alpaca's crypto fee, for the fee column of recorded fills.
pub const CRYPTO_FEE_BPS: f64 = 25.0;

/// Errors that stop the engine (the store is unusable). Broker and data
/// problems do not stop it: they skip the hour, recorded with the reason.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("batched first layer: {0}")]
    Projection(String),
    #[error("the ensemble trades {model:?} but the profile lists {profile:?}")]
    Symbols {
        model: Vec<String>,
        profile: Vec<String>,
    },
}

/// What happened to one closed hour.
#[derive(Debug, Clone, PartialEq)]
pub enum HourOutcome {
    /// Decided; orders sent (or planned and to be settled).
    Decided { orders: usize, latency_us: u64 },
    /// Already decided by this run before a restart.
    AlreadyDecided,
    /// Not traded, and why (recorded in the decision's `skipped_reason`).
    Skipped(String),
}

/// Counts of one engine's life, for the summary and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub hours: u64,
    pub bars: u64,
    pub decisions: u64,
    pub skipped: u64,
    pub already_decided: u64,
    pub orders_sent: u64,
    pub orders_adopted: u64,
    pub orders_failed: u64,
    pub fills: u64,
    /// Decision latency (state + inference), microseconds, in order.
    pub latencies_us: Vec<u64>,
    /// From the hour's bars handed over to the last of its orders answered
    /// (store, settle, broker reads, decision, orders), microseconds, for
    /// hours that sent orders.
    pub bar_to_order_us: Vec<u64>,
    /// Time spent computing batched first layers ([`Engine::project_market`]),
    /// microseconds in all, and the hours they covered.
    pub projection_us: u64,
    pub projected_hours: u64,
}

/// Who the engine trades for.
#[derive(Debug, Clone, Copy)]
pub struct EngineSetup<'a> {
    /// Profile name: the prefix of every `client_order_id`.
    pub profile: &'a str,
    /// How the run reaches its broker: a live run's order ids are the same
    /// in every run of the profile (the account outlives runs, and the
    /// broker's duplicate check guards it); a replay's or backtest's carry
    /// the run id (each run is a new account, and its orders must not
    /// collide with an earlier run's in the store).
    pub mode: RunMode,
    /// The profile's symbols (the ensemble must trade the same).
    pub symbols: &'a [Symbol],
    pub history_hours: u32,
    pub run_id: i64,
    pub trading: TradingSettings,
}

impl<'a> EngineSetup<'a> {
    /// The setup of `profile`'s trader in run `run_id`.
    #[must_use]
    pub fn for_profile(profile: &'a trader_config::Profile, run_id: i64, mode: RunMode) -> Self {
        EngineSetup {
            profile: &profile.name,
            mode,
            symbols: &profile.symbols,
            history_hours: profile.history_hours,
            run_id,
            trading: profile.trading,
        }
    }
}

/// The engine of one trader: broker `B`, records in `R` (the SQLite
/// [`Store`] for `trader run`; a `MemoryRecorder` serves backtests).
pub struct Engine<B, R = Store> {
    broker: B,
    store: R,
    ensemble: Ensemble,
    window: HistoryWindow,
    /// The prefix of this run's order ids ([`order_id_prefix`]).
    order_prefix: String,
    run_id: i64,
    trading: TradingSettings,
    /// The ensemble's symbols, in its output order.
    symbols: Vec<Symbol>,
    stats: EngineStats,
    history_hours: u32,
    /// Backtests: the first layer's market part of hours to come.
    projected: Option<Projected>,
}

/// A [`MarketProjection`] and the hour of each of its rows.
struct Projected {
    rows: BTreeMap<i64, usize>,
    projection: MarketProjection,
}

/// Target weights from aggregated actions (DESIGN.md, Action): clamp to
/// [0, 1], times `max_weight`, scaled down so the sum is at most `max_gross`.
#[must_use]
pub fn target_weights(actions: &[f32], trading: &TradingSettings) -> Vec<f64> {
    let mut w: Vec<f64> = actions
        .iter()
        .map(|a| f64::from(*a).clamp(0.0, 1.0) * trading.max_weight)
        .collect();
    let sum: f64 = w.iter().sum();
    if sum > trading.max_gross && sum > 0.0 {
        let k = trading.max_gross / sum;
        for x in &mut w {
            *x *= k;
        }
    }
    w
}

/// The prefix of a run's order ids: the profile for a live run (`lean`),
/// the profile and run for a replay or backtest (`lean-r12`).
#[must_use]
pub fn order_id_prefix(profile: &str, mode: RunMode, run_id: i64) -> String {
    match mode {
        RunMode::Live => profile.to_owned(),
        RunMode::Replay | RunMode::Backtest => format!("{profile}-r{run_id}"),
    }
}

/// `lean-20180901T1000Z-BTCUSD` (live) or `lean-r12-20180901T1000Z-BTCUSD`
/// (replay run 12): the same (prefix, hour, symbol) always gives the same
/// id, so a retry or a restart of the run cannot place a second order.
#[must_use]
pub fn client_order_id(prefix: &str, bar_t: i64, symbol: &Symbol) -> String {
    let t = DateTime::from_timestamp(bar_t, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%MZ");
    format!("{prefix}-{t}-{}", symbol.as_str().replace('/', ""))
}

/// One planned order.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTrade {
    pub symbol: Symbol,
    pub side: Side,
    pub amount: OrderAmount,
}

/// Orders moving `positions` (qty per symbol, valued at `prices`) toward
/// `targets` (weights of `equity`): sells as quantities (never more than
/// held), buys as notionals (all buys together within `cash` less the fee),
/// each at least `min_trade_notional`.
#[must_use]
pub fn plan_orders(
    symbols: &[Symbol],
    targets: &[f64],
    positions: &BTreeMap<Symbol, f64>,
    prices: &BTreeMap<Symbol, f64>,
    equity: f64,
    cash: f64,
    trading: &TradingSettings,
) -> Vec<PlannedTrade> {
    let mut sells = Vec::new();
    let mut buys = Vec::new();
    for (symbol, target) in symbols.iter().zip(targets) {
        let Some(&price) = prices.get(symbol).filter(|p| **p > 0.0) else {
            continue;
        };
        let held = positions.get(symbol).copied().unwrap_or(0.0);
        let diff = target * equity - held * price;
        if diff.abs() < trading.min_trade_notional.max(0.01) {
            continue;
        }
        if diff < 0.0 {
            // Selling to a zero target sells everything held.
            let qty = if *target <= 0.0 {
                held
            } else {
                (-diff / price).min(held)
            };
            // Eight decimals, rounded down: Alpaca's decimal strings carry
            // eight, and rounding up would sell more than is held.
            let qty = (qty * 1e8).floor() / 1e8;
            if qty > 0.0 && qty * price >= trading.min_trade_notional {
                sells.push(PlannedTrade {
                    symbol: symbol.clone(),
                    side: Side::Sell,
                    amount: OrderAmount::Qty(qty),
                });
            }
        } else {
            buys.push((symbol.clone(), diff));
        }
    }
    // Buys share the cash there is now (sells settle at the next open).
    let spendable = (cash * (1.0 - CRYPTO_FEE_BPS / 10_000.0)).max(0.0);
    let wanted: f64 = buys.iter().map(|(_, d)| d).sum();
    let k = if wanted > spendable && wanted > 0.0 {
        spendable / wanted
    } else {
        1.0
    };
    for (symbol, diff) in buys {
        let notional = (diff * k * 100.0).floor() / 100.0;
        if notional >= trading.min_trade_notional.max(0.01) {
            sells.push(PlannedTrade {
                symbol,
                side: Side::Buy,
                amount: OrderAmount::Notional(notional),
            });
        }
    }
    sells
}

fn status_str(s: &OrderStatus) -> String {
    s.as_str().to_owned()
}

impl<B: Broker, R: Recorder> Engine<B, R> {
    /// An engine for `run_id`, trading `profile_symbols` with `ensemble`
    /// (same symbols, any order), its window loaded from `store`.
    ///
    /// # Errors
    /// The ensemble and the profile trade different symbols, or the store
    /// cannot be read.
    pub async fn new(
        broker: B,
        store: R,
        ensemble: Ensemble,
        setup: EngineSetup<'_>,
    ) -> Result<Self, EngineError> {
        let EngineSetup {
            profile,
            mode,
            symbols: profile_symbols,
            history_hours,
            run_id,
            trading,
        } = setup;
        let symbols = ensemble.symbols().to_vec();
        let mut a: Vec<&Symbol> = symbols.iter().collect();
        let mut b: Vec<&Symbol> = profile_symbols.iter().collect();
        a.sort();
        b.sort();
        if a != b {
            return Err(EngineError::Symbols {
                model: symbols.iter().map(|s| s.as_str().to_owned()).collect(),
                profile: profile_symbols
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
            });
        }
        let window = store.load_window(&symbols, history_hours).await?;
        Ok(Engine {
            broker,
            store,
            ensemble,
            window,
            order_prefix: order_id_prefix(profile, mode, run_id),
            run_id,
            trading,
            symbols,
            stats: EngineStats::default(),
            history_hours,
            projected: None,
        })
    }

    #[must_use]
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    #[must_use]
    pub fn store(&self) -> &R {
        &self.store
    }

    #[must_use]
    pub fn broker(&self) -> &B {
        &self.broker
    }

    #[must_use]
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The newest bar held for every symbol: the hour the poll loop should
    /// continue after.
    #[must_use]
    pub fn newest_common_bar(&self) -> Option<i64> {
        self.symbols
            .iter()
            .map(|s| self.window.bars(s).last().map(|b| b.t))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().min())
    }

    /// Backtests: computes the market part of every member's first layer for
    /// `hours` ahead, in one batched matmul per member group, from `bars`
    /// (per symbol, oldest first: the bars this engine is fed, so the
    /// windows are the ones it would hold). [`Engine::on_hour`] then only
    /// adds the portfolio part for those hours. Hours whose features are
    /// unavailable are left out (`on_hour` records why, as without it).
    /// Replaces the previous projection; returns the hours projected.
    ///
    /// # Errors
    /// An inference error of the ensemble.
    pub fn project_market(
        &mut self,
        hours: &[i64],
        bars: &BTreeMap<Symbol, Vec<Bar>>,
    ) -> Result<usize, EngineError> {
        self.projected = None;
        let started = Instant::now();
        let specs = self.ensemble.specs();
        // Each symbol's features computed once per bar for the whole block.
        let empty = Vec::new();
        let mut memo: Vec<SeriesFeatures<'_>> = self
            .symbols
            .iter()
            .map(|s| SeriesFeatures::new(bars.get(s).unwrap_or(&empty)))
            .collect();
        let mut blocks: Vec<Vec<f32>> = vec![Vec::new(); specs.len()];
        let mut rows = BTreeMap::new();
        'hours: for &t in hours {
            let mut parts = Vec::with_capacity(specs.len());
            for spec in specs {
                // As the window of `history_hours` would: a longer need is unavailable.
                if required_history_hours(spec.lookback, &spec.features) > self.history_hours {
                    continue 'hours;
                }
                let mut picks = Vec::with_capacity(spec.symbols.len());
                for s in &spec.symbols {
                    let Some(k) = self.symbols.iter().position(|x| x == s) else {
                        continue 'hours;
                    };
                    let Ok(end) = memo[k].series().binary_search_by_key(&t, |x| x.t) else {
                        continue 'hours;
                    };
                    picks.push((k, end));
                }
                match market_state_memo(&mut memo, &picks, spec.lookback as usize, &spec.features) {
                    Ok(part) => parts.push(part),
                    Err(_) => continue 'hours,
                }
            }
            for (block, part) in blocks.iter_mut().zip(parts) {
                block.extend(part);
            }
            rows.insert(t, rows.len());
        }
        let projection = self
            .ensemble
            .project_market(&blocks, rows.len())
            .map_err(|e| EngineError::Projection(e.to_string()))?;
        let n = rows.len();
        self.projected = Some(Projected { rows, projection });
        self.stats.projection_us += started.elapsed().as_micros() as u64;
        self.stats.projected_hours += n as u64;
        Ok(n)
    }

    /// Stores bars fetched as history (warm start), without deciding.
    pub async fn add_history(
        &mut self,
        bars: &BTreeMap<Symbol, Bar>,
        now: i64,
    ) -> Result<(), EngineError> {
        let now_dt = DateTime::from_timestamp(now, 0).unwrap_or_default();
        for (symbol, bar) in bars {
            if !self.symbols.contains(symbol) {
                continue;
            }
            match self
                .store
                .insert_bars(symbol, std::slice::from_ref(bar), now_dt)
                .await
            {
                Ok(_) => {
                    self.window.push(symbol, *bar);
                    self.stats.bars += 1;
                }
                Err(StoreError::BadBar { .. }) => {
                    tracing::warn!(%symbol, t = bar.t, "bad bar from the broker, not stored");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Handles one closed hour at clock time `now` (epoch seconds).
    ///
    /// # Errors
    /// Only store failures; everything else is recorded as a skipped hour.
    pub async fn on_hour(
        &mut self,
        t: i64,
        bars: &BTreeMap<Symbol, Bar>,
        complete: bool,
        now: i64,
    ) -> Result<HourOutcome, EngineError> {
        self.stats.hours += 1;
        let handed_over = Instant::now();
        self.add_history(bars, now).await?;
        self.settle(now).await?;
        if self.store.decided(self.run_id, t).await? {
            self.stats.already_decided += 1;
            return Ok(HourOutcome::AlreadyDecided);
        }
        if !complete {
            let reason = format!("no bar for {} this hour", self.missing(bars));
            return self.skip(t, reason, now).await;
        }
        // Fail closed: without the broker's view there is no trading.
        let (account, positions) = match self.read_broker().await {
            Ok(view) => view,
            Err(reason) => return self.skip(t, reason, now).await,
        };
        let started = Instant::now();
        let held: BTreeMap<Symbol, f64> = positions
            .iter()
            .map(|p: &Position| (p.symbol.clone(), p.qty))
            .collect();
        let prices: BTreeMap<Symbol, f64> = self
            .symbols
            .iter()
            .filter_map(|s| bars.get(s).map(|b| (s.clone(), b.close)))
            .collect();
        let equity = account.equity;
        if equity <= 0.0 {
            return self
                .skip(t, format!("equity {equity} is not positive"), now)
                .await;
        }
        let projected = self
            .projected
            .as_ref()
            .and_then(|p| Some((&p.projection, *p.rows.get(&t)?)));
        let decision = match projected {
            Some((projection, row)) => {
                let portfolios = self.portfolios(account.cash, equity, &held, &prices);
                self.ensemble.infer_projected(projection, row, &portfolios)
            }
            None => match self.states(account.cash, equity, &held, &prices) {
                Ok(states) => self.ensemble.infer(&states),
                Err(reason) => return self.skip(t, reason, now).await,
            },
        };
        let decision = match decision {
            Ok(d) => d,
            Err(e) => return self.skip(t, format!("inference failed: {e}"), now).await,
        };
        let latency_us = started.elapsed().as_micros() as u64;
        let targets = target_weights(&decision.aggregate, &self.trading);
        let trades = plan_orders(
            &self.symbols,
            &targets,
            &held,
            &prices,
            equity,
            account.cash,
            &self.trading,
        );
        let planned = self.planned(t, &trades);
        let record = DecisionRecord {
            bar_t: t,
            member_actions: decision.members.clone(),
            aggregate: decision.aggregate.clone(),
            target_weights: self
                .symbols
                .iter()
                .zip(&targets)
                .map(|(s, w)| (s.as_str().to_owned(), *w))
                .collect(),
            latency_us,
            skipped_reason: None,
        };
        self.store
            .record_decision(self.run_id, &record, &planned, now)
            .await?;
        self.stats.decisions += 1;
        self.stats.latencies_us.push(latency_us);
        self.record_and_send(t, account.cash, equity, &held, &trades, &planned, now)
            .await?;
        if !planned.is_empty() {
            self.stats
                .bar_to_order_us
                .push(handed_over.elapsed().as_micros() as u64);
        }
        tracing::debug!(
            hour = %trader_core::format_time(t),
            orders = planned.len(),
            latency_us,
            equity,
            "decided"
        );
        Ok(HourOutcome::Decided {
            orders: planned.len(),
            latency_us,
        })
    }

    /// The symbols without a bar in `bars`, comma-separated.
    fn missing(&self, bars: &BTreeMap<Symbol, Bar>) -> String {
        self.symbols
            .iter()
            .filter(|s| !bars.contains_key(*s))
            .map(Symbol::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The account and positions, or why they could not be read.
    async fn read_broker(&self) -> Result<(trader_core::AccountState, Vec<Position>), String> {
        let account = self
            .broker
            .account()
            .await
            .map_err(|e| format!("account unreadable: {e}"))?;
        let positions = self
            .broker
            .positions()
            .await
            .map_err(|e| format!("positions unreadable: {e}"))?;
        Ok((account, positions))
    }

    /// Writes the equity snapshot, then sends the planned orders.
    #[allow(clippy::too_many_arguments)]
    async fn record_and_send(
        &mut self,
        t: i64,
        cash: f64,
        equity: f64,
        held: &BTreeMap<Symbol, f64>,
        trades: &[PlannedTrade],
        planned: &[PlannedOrder],
        now: i64,
    ) -> Result<(), EngineError> {
        let snapshot: BTreeMap<String, f64> = held
            .iter()
            .map(|(s, q)| (s.as_str().to_owned(), *q))
            .collect();
        self.store
            .record_equity(self.run_id, t, cash, equity, &snapshot)
            .await?;
        for (trade, order) in trades.iter().zip(planned) {
            self.send(
                &OrderRequest {
                    client_order_id: order.client_order_id.clone(),
                    symbol: trade.symbol.clone(),
                    side: trade.side,
                    amount: trade.amount,
                },
                now,
            )
            .await?;
        }
        Ok(())
    }

    fn planned(&self, t: i64, trades: &[PlannedTrade]) -> Vec<PlannedOrder> {
        trades
            .iter()
            .map(|tr| PlannedOrder {
                client_order_id: client_order_id(&self.order_prefix, t, &tr.symbol),
                symbol: tr.symbol.as_str().to_owned(),
                side: tr.side.as_str().to_owned(),
                notional: match tr.amount {
                    OrderAmount::Notional(n) => Some(n),
                    OrderAmount::Qty(_) => None,
                },
                qty: match tr.amount {
                    OrderAmount::Qty(q) => Some(q),
                    OrderAmount::Notional(_) => None,
                },
            })
            .collect()
    }

    /// The portfolio part of every distinct member input: cash weight, then
    /// each symbol's position weight.
    fn portfolios(
        &self,
        cash: f64,
        equity: f64,
        held: &BTreeMap<Symbol, f64>,
        prices: &BTreeMap<Symbol, f64>,
    ) -> Vec<Vec<f32>> {
        self.ensemble
            .specs()
            .iter()
            .map(|spec| {
                let mut part = Vec::with_capacity(spec.portfolio_dim());
                part.push((cash / equity) as f32);
                for s in &spec.symbols {
                    let value =
                        held.get(s).copied().unwrap_or(0.0) * prices.get(s).copied().unwrap_or(0.0);
                    part.push((value / equity) as f32);
                }
                part
            })
            .collect()
    }

    /// The state vector of every distinct member input: cash and position
    /// weights, then the window's market features.
    fn states(
        &self,
        cash: f64,
        equity: f64,
        held: &BTreeMap<Symbol, f64>,
        prices: &BTreeMap<Symbol, f64>,
    ) -> Result<Vec<Vec<f32>>, String> {
        let mut states = Vec::with_capacity(self.ensemble.specs().len());
        for (spec, mut state) in self
            .ensemble
            .specs()
            .iter()
            .zip(self.portfolios(cash, equity, held, prices))
        {
            state.reserve(spec.state_dim() - state.len());
            let windows: Vec<&[Bar]> = spec.symbols.iter().map(|s| self.window.bars(s)).collect();
            let market = market_state(&windows, spec.lookback as usize, &spec.features)
                .map_err(|e| format!("state unavailable: {e}"))?;
            state.extend(market);
            states.push(state);
        }
        Ok(states)
    }

    async fn skip(&mut self, t: i64, reason: String, now: i64) -> Result<HourOutcome, EngineError> {
        tracing::warn!(hour = %trader_core::format_time(t), %reason, "hour not traded");
        let record = DecisionRecord {
            bar_t: t,
            member_actions: Vec::new(),
            aggregate: Vec::new(),
            target_weights: BTreeMap::new(),
            latency_us: 0,
            skipped_reason: Some(reason.clone()),
        };
        self.store
            .record_decision(self.run_id, &record, &[], now)
            .await?;
        self.stats.skipped += 1;
        Ok(HourOutcome::Skipped(reason))
    }

    /// Sends one planned order and records what the broker said.
    async fn send(&mut self, order: &OrderRequest, now: i64) -> Result<(), EngineError> {
        match self.broker.place(order).await {
            Ok(p) => {
                self.stats.orders_sent += 1;
                if p.adopted {
                    self.stats.orders_adopted += 1;
                }
                self.store
                    .update_order(
                        &order.client_order_id,
                        &status_str(&p.order.status),
                        Some(&p.order.id),
                        now,
                    )
                    .await?;
                self.record_fill_if_done(&p.order).await?;
            }
            Err(e) => {
                self.stats.orders_failed += 1;
                // Refused outright: final. Anything else: unknown, settled later.
                let status = if matches!(e.kind, ErrorKind::Rejected | ErrorKind::NotFound) {
                    "rejected"
                } else {
                    "unknown"
                };
                tracing::warn!(client_order_id = %order.client_order_id, error = %e, status, "order not confirmed");
                self.store
                    .update_order(&order.client_order_id, status, None, now)
                    .await?;
            }
        }
        Ok(())
    }

    async fn record_fill_if_done(&mut self, o: &trader_core::Order) -> Result<(), EngineError> {
        if o.status == OrderStatus::Filled
            && let Some(price) = o.filled_avg_price
        {
            let fee = o.filled_qty * price * CRYPTO_FEE_BPS / 10_000.0;
            self.store
                .record_fill(
                    &o.client_order_id,
                    o.filled_qty,
                    price,
                    fee,
                    o.filled_at.unwrap_or(o.created_at),
                )
                .await?;
            self.stats.fills += 1;
        }
        Ok(())
    }

    /// Brings the run's unsettled orders up to date: planned or unknown ones
    /// are sent again with their id (adopted if they had gone through), open
    /// ones are looked up and their fills recorded. Broker errors leave them
    /// for the next hour.
    pub async fn settle(&mut self, now: i64) -> Result<(), EngineError> {
        for stored in self.store.unsettled_orders(self.run_id).await? {
            if stored.status == "planned" || stored.status == "unknown" {
                let (Ok(symbol), side) = (
                    stored.symbol.parse::<Symbol>(),
                    if stored.side == "sell" {
                        Side::Sell
                    } else {
                        Side::Buy
                    },
                ) else {
                    continue;
                };
                let amount = match (stored.qty, stored.notional) {
                    (Some(q), _) => OrderAmount::Qty(q),
                    (None, Some(n)) => OrderAmount::Notional(n),
                    (None, None) => continue,
                };
                tracing::info!(client_order_id = %stored.client_order_id, status = %stored.status, "re-sending an order not confirmed");
                self.send(
                    &OrderRequest {
                        client_order_id: stored.client_order_id.clone(),
                        symbol,
                        side,
                        amount,
                    },
                    now,
                )
                .await?;
                continue;
            }
            match self
                .broker
                .order_by_client_id(&stored.client_order_id)
                .await
            {
                Ok(Some(o)) => {
                    if status_str(&o.status) != stored.status {
                        self.store
                            .update_order(
                                &o.client_order_id,
                                &status_str(&o.status),
                                Some(&o.id),
                                now,
                            )
                            .await?;
                    }
                    self.record_fill_if_done(&o).await?;
                }
                Ok(None) => {
                    tracing::warn!(client_order_id = %stored.client_order_id, "broker has no such order");
                    self.store
                        .update_order(&stored.client_order_id, "unknown", None, now)
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(client_order_id = %stored.client_order_id, error = %e, "order status unreadable; later");
                }
            }
        }
        Ok(())
    }

    /// Checks the broker's positions against the store's last snapshot, and
    /// its open orders against the store's orders, and logs every difference;
    /// the broker's view wins (the next decision reads it). Returns the
    /// differences.
    pub async fn reconcile(&mut self) -> Result<Vec<String>, EngineError> {
        let positions = match self.broker.positions().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "positions unreadable at start; the first hour will retry");
                return Ok(Vec::new());
            }
        };
        let mut diffs = Vec::new();
        if let Some(stored) = self.store.last_positions(self.run_id).await? {
            for s in &self.symbols {
                let broker = positions
                    .iter()
                    .find(|p| &p.symbol == s)
                    .map_or(0.0, |p| p.qty);
                let mine = stored.get(s.as_str()).copied().unwrap_or(0.0);
                if (broker - mine).abs() > 1e-9 {
                    diffs.push(format!("{s}: broker {broker}, store {mine}"));
                }
            }
        }
        match self.broker.open_orders().await {
            Ok(open) => {
                for o in open {
                    if !self.store.order_known(&o.client_order_id).await? {
                        diffs.push(format!(
                            "open order {} ({} {}) is not in the store",
                            o.client_order_id,
                            o.side.as_str(),
                            o.symbol
                        ));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "open orders unreadable at start");
            }
        }
        for d in &diffs {
            tracing::warn!(difference = %d, "the broker differs from the store (orders filled since, or placed or changed outside this trader); the broker's view wins");
        }
        Ok(diffs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn targets_are_long_only_capped_and_scaled() {
        let t = TradingSettings {
            max_weight: 0.5,
            max_gross: 0.6,
            min_trade_notional: 10.0,
        };
        let w = target_weights(&[1.0, -0.5, 0.5], &t);
        // 0.5, 0, 0.25 sum to 0.75 > 0.6: scaled by 0.8.
        assert!(
            (w[0] - 0.4).abs() < 1e-9 && w[1] == 0.0 && (w[2] - 0.2).abs() < 1e-9,
            "{w:?}"
        );
    }

    #[test]
    fn orders_sell_what_is_held_and_buy_within_cash() {
        let t = TradingSettings::default();
        let (btc, eth) = (sym("BTC/USD"), sym("ETH/USD"));
        let symbols = vec![btc.clone(), eth.clone()];
        let prices: BTreeMap<Symbol, f64> = [(btc.clone(), 100.0), (eth.clone(), 10.0)].into();
        let held: BTreeMap<Symbol, f64> = [(btc.clone(), 2.0)].into();
        // Equity 1000 = 800 cash + 2 BTC at 100. Targets: BTC 0, ETH 0.3.
        let orders = plan_orders(&symbols, &[0.0, 0.3], &held, &prices, 1000.0, 800.0, &t);
        assert_eq!(
            orders,
            [
                PlannedTrade {
                    symbol: btc,
                    side: Side::Sell,
                    amount: OrderAmount::Qty(2.0)
                },
                PlannedTrade {
                    symbol: eth.clone(),
                    side: Side::Buy,
                    amount: OrderAmount::Notional(300.0)
                },
            ]
        );
        // Little cash: the buy shrinks to what there is, less the fee.
        let orders = plan_orders(&symbols, &[0.2, 0.3], &held, &prices, 1000.0, 50.0, &t);
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].amount, OrderAmount::Notional(49.87));
        // Differences under min_trade_notional are not traded.
        assert!(plan_orders(&symbols, &[0.205, 0.0], &held, &prices, 1000.0, 800.0, &t).is_empty());
    }

    #[test]
    fn client_order_ids_are_derived_from_profile_hour_and_symbol() {
        let id = client_order_id("lean", 1_535_796_000, &sym("BTC/USD"));
        assert_eq!(id, "lean-20180901T1000Z-BTCUSD");
        assert!(id.len() <= 128);
    }

    #[test]
    fn replay_and_backtest_order_ids_carry_the_run_so_two_runs_never_collide() {
        let t = 1_535_796_000;
        let live = |run| {
            client_order_id(
                &order_id_prefix("lean", RunMode::Live, run),
                t,
                &sym("BTC/USD"),
            )
        };
        // A live run's ids do not depend on the run: a restarted trader
        // re-sends the same id, and the broker refuses a second order.
        assert_eq!(live(1), live(2));
        for mode in [RunMode::Replay, RunMode::Backtest] {
            let id = |run| client_order_id(&order_id_prefix("lean", mode, run), t, &sym("BTC/USD"));
            assert_eq!(id(12), "lean-r12-20180901T1000Z-BTCUSD");
            assert_ne!(id(12), id(13));
            assert_eq!(id(12), id(12), "the same run resends the same id");
        }
    }
}

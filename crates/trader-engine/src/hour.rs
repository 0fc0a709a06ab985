//! One closed hour: store its bars, settle earlier orders, then decide
//! (state, ensemble, targets, planned orders written before any is sent) or
//! record why the hour is skipped.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::DateTime;
use trader_core::{Bar, Broker, OrderAmount, OrderRequest, Position, Symbol};
use trader_store::{DecisionRecord, PlannedOrder, PushOutcome, Recorder, StoreError};

use crate::decide::Decided;
use crate::plan::{PlannedTrade, client_order_id, plan_orders, target_weights};
use crate::{Engine, EngineError, HourOutcome};

impl<B: Broker, R: Recorder> Engine<B, R> {
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
                    let pushed = self.window.push(symbol, *bar);
                    if matches!(pushed, PushOutcome::Inserted | PushOutcome::Replaced) {
                        // An earlier bar changed: the cached features may not hold.
                        self.forget_prepared();
                    }
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
        self.last_hour = Some(t);
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
        let Decided {
            decision,
            mut split,
            next_older,
        } = match self.decide(t, account.cash, equity, &held, &prices) {
            Ok(decided) => decided,
            Err(reason) => return self.skip(t, reason, now).await,
        };
        let latency_us = split.features_us + split.state_us + split.inference_us;
        let started = Instant::now();
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
            member_actions: decision.members,
            aggregate: decision.aggregate,
            target_weights: self
                .symbols
                .iter()
                .zip(&targets)
                .map(|(s, w)| (s.as_str().to_owned(), *w))
                .collect(),
            latency_us,
            ..self.record_of(t, None)
        };
        // The equity snapshot before the decision: a kill between the two
        // leaves the hour undecided (decided again, the snapshot replaced),
        // never decided without its snapshot.
        self.record_equity(t, account.cash, equity, &held).await?;
        self.store
            .record_decision(self.run_id, &record, &planned, now)
            .await?;
        self.stats.decisions += 1;
        self.stats.latencies_us.push(latency_us);
        self.send_planned(&trades, &planned, now).await?;
        split.orders_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.splits.push(split);
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
        if let Some(older) = next_older.filter(|_| self.prepare_ahead) {
            self.prepare_next(t, older);
        }
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

    /// Writes the equity snapshot of hour `t`.
    async fn record_equity(
        &mut self,
        t: i64,
        cash: f64,
        equity: f64,
        held: &BTreeMap<Symbol, f64>,
    ) -> Result<(), EngineError> {
        let snapshot: BTreeMap<String, f64> = held
            .iter()
            .map(|(s, q)| (s.as_str().to_owned(), *q))
            .collect();
        self.store
            .record_equity(self.run_id, t, cash, equity, &snapshot)
            .await?;
        Ok(())
    }

    /// Sends the planned orders, in order.
    async fn send_planned(
        &mut self,
        trades: &[PlannedTrade],
        planned: &[PlannedOrder],
        now: i64,
    ) -> Result<(), EngineError> {
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
                symbol: tr.symbol.clone(),
                side: tr.side,
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

    /// The decision row of hour `t` with nothing decided yet (a skipped
    /// hour's, with its reason), naming the ensemble version in use.
    fn record_of(&self, t: i64, skipped_reason: Option<String>) -> DecisionRecord {
        DecisionRecord {
            bar_t: t,
            member_actions: Vec::new(),
            aggregate: Vec::new(),
            target_weights: BTreeMap::new(),
            latency_us: 0,
            skipped_reason,
            ensemble_version: Some(self.stats.ensemble_version.clone()),
        }
    }

    async fn skip(&mut self, t: i64, reason: String, now: i64) -> Result<HourOutcome, EngineError> {
        tracing::warn!(hour = %trader_core::format_time(t), %reason, "hour not traded");
        let record = self.record_of(t, Some(reason.clone()));
        self.store
            .record_decision(self.run_id, &record, &[], now)
            .await?;
        self.stats.skipped += 1;
        Ok(HourOutcome::Skipped(reason))
    }
}

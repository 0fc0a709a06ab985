//! The decision of one hour: the ensemble's actions from the state, by the
//! quickest of three paths, and what each part of it cost.
//!
//! - **Projected** (backtests): the market part of the first layer was
//!   computed ahead for a block of hours ([`Engine::project_market`]).
//! - **Prepared** (live, every hour after the first): when hour `t` was
//!   decided, the first layer's product with the older lags of hour `t + 1`
//!   was computed off the decision path ([`Engine::prepare_next`]); hour
//!   `t + 1` then only computes its newest bar's features
//!   ([`trader_core::newest_lag`]) and runs the small rest
//!   ([`trader_ensemble::Ensemble::infer_prepared`]). The older lags' features
//!   are the previous hour's, shifted: each bar's features are computed once,
//!   when the bar is the newest.
//! - **Whole** (live, the first hour of a run, after a skipped hour, a
//!   corrected bar or a new ensemble): every lag's features, then the older
//!   lags' product computed on the spot and the same rest as a prepared
//!   hour. The same sums in the same order: a prepared hour and a whole one
//!   give the same bits, so a run restarted mid-way decides exactly as an
//!   uninterrupted one.
//!
//! The projected path differs from the other two by float rounding only (the
//! first layer's sum split another way); the features are the same bits in
//! all three.

use std::collections::BTreeMap;
use std::time::Instant;

use trader_core::{Bar, Broker, HOUR_SECS, Symbol, market_state, newest_lag};
use trader_ensemble::{Decision, InputSpec, PreparedHour, lag_width};
use trader_store::Recorder;

use crate::Engine;

/// An hour prepared ahead: its older lags and their share of the first layer.
pub(crate) struct PreparedNext {
    /// The hour it is for.
    hour: i64,
    /// Per distinct member input: lags `L-1` down to 1 of that hour's market
    /// part (the feature cache).
    older: Vec<Vec<f32>>,
    prepared: PreparedHour,
}

/// Where one decision's time went, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionSplit {
    /// Market features: the newest lag (prepared) or every lag (whole).
    pub features_us: u64,
    /// The portfolio part of the state.
    pub state_us: u64,
    /// The ensemble.
    pub inference_us: u64,
    /// Target weights, planned orders, the decision's records, and sending.
    pub orders_us: u64,
    /// True when the hour was prepared ahead.
    pub prepared: bool,
}

/// A decision, its split so far, and the next hour's older lags (when the
/// live path computed them).
pub(crate) struct Decided {
    pub(crate) decision: Decision,
    pub(crate) split: DecisionSplit,
    pub(crate) next_older: Option<Vec<Vec<f32>>>,
}

impl<B: Broker, R: Recorder> Engine<B, R> {
    /// The decision of hour `t`; `Err` is the reason to skip it.
    pub(crate) fn decide(
        &mut self,
        t: i64,
        cash: f64,
        equity: f64,
        held: &BTreeMap<Symbol, f64>,
        prices: &BTreeMap<Symbol, f64>,
    ) -> Result<Decided, String> {
        let started = Instant::now();
        let portfolios = self.portfolios(cash, equity, held, prices);
        let state_us = elapsed_us(started);
        if let Some((decision, inference_us)) =
            self.projected_decision(t, &portfolios, cash, held)?
        {
            let split = DecisionSplit {
                state_us,
                inference_us,
                ..DecisionSplit::default()
            };
            return Ok(Decided {
                decision,
                split,
                next_older: None,
            });
        }
        match self.next.take() {
            Some(next) if next.hour == t && self.window_ends_at(t) => {
                self.decide_prepared(next, &portfolios, state_us)
            }
            _ => self.decide_whole(&portfolios, state_us),
        }
    }

    /// True when every symbol's newest bar is hour `t`.
    fn window_ends_at(&self, t: i64) -> bool {
        self.symbols
            .iter()
            .all(|s| self.window.bars(s).last().is_some_and(|b| b.t == t))
    }

    /// A prepared hour: the newest lag's features, then the rest.
    fn decide_prepared(
        &self,
        next: PreparedNext,
        portfolios: &[Vec<f32>],
        state_us: u64,
    ) -> Result<Decided, String> {
        let started = Instant::now();
        let newest = self
            .ensemble
            .specs()
            .iter()
            .map(|spec| {
                let windows: Vec<&[Bar]> =
                    spec.symbols.iter().map(|s| self.window.bars(s)).collect();
                newest_lag(&windows, spec.lookback as usize, &spec.features)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("state unavailable: {e}"))?;
        let features_us = elapsed_us(started);
        let times = (features_us, state_us);
        self.finish(Some(next.prepared), next.older, newest, portfolios, times)
    }

    /// An hour not prepared: every lag's features, then the same three-part
    /// sum as a prepared hour (the older lags' product computed now), so that
    /// a run restarted mid-way decides the same bits as one that was not.
    fn decide_whole(&self, portfolios: &[Vec<f32>], state_us: u64) -> Result<Decided, String> {
        let started = Instant::now();
        let mut older = Vec::with_capacity(self.ensemble.specs().len());
        let mut newest = Vec::with_capacity(self.ensemble.specs().len());
        for spec in self.ensemble.specs() {
            let windows: Vec<&[Bar]> = spec.symbols.iter().map(|s| self.window.bars(s)).collect();
            let mut market = market_state(&windows, spec.lookback as usize, &spec.features)
                .map_err(|e| format!("state unavailable: {e}"))?;
            newest.push(market.split_off(market.len() - lag_width(spec)));
            older.push(market);
        }
        let features_us = elapsed_us(started);
        self.finish(None, older, newest, portfolios, (features_us, state_us))
    }

    /// The rest of a decision from its older and newest lags: the older
    /// lags' product (`prepared`, or computed now), then the newest lag, the
    /// portfolio and the remaining layers. `times`: features and state, us.
    fn finish(
        &self,
        prepared: Option<PreparedHour>,
        older: Vec<Vec<f32>>,
        newest: Vec<Vec<f32>>,
        portfolios: &[Vec<f32>],
        (features_us, state_us): (u64, u64),
    ) -> Result<Decided, String> {
        let started = Instant::now();
        let was_prepared = prepared.is_some();
        let decision = match prepared {
            Some(prepared) => Ok(prepared),
            None => self.ensemble.prepare_hour(&older),
        }
        .and_then(|prepared| self.ensemble.infer_prepared(&prepared, &newest, portfolios))
        .map_err(|e| format!("inference failed: {e}"))?;
        Ok(Decided {
            decision,
            split: DecisionSplit {
                features_us,
                state_us,
                inference_us: elapsed_us(started),
                orders_us: 0,
                prepared: was_prepared,
            },
            next_older: Some(shift(older, newest, self.ensemble.specs())),
        })
    }

    /// After hour `t` was decided and its orders sent: the first layer's
    /// share of hour `t + 1`'s older lags, for [`Engine::decide`]. A failure
    /// only means the next hour is decided whole.
    pub(crate) fn prepare_next(&mut self, t: i64, older: Vec<Vec<f32>>) {
        let started = Instant::now();
        match self.ensemble.prepare_hour(&older) {
            Ok(prepared) => {
                self.next = Some(PreparedNext {
                    hour: t + HOUR_SECS,
                    older,
                    prepared,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "next hour not prepared; it is decided whole");
                self.next = None;
            }
        }
        self.stats.prepare_us.push(elapsed_us(started));
    }

    /// Forgets the prepared hour: a bar of the window changed, or the
    /// ensemble did.
    pub(crate) fn forget_prepared(&mut self) {
        self.next = None;
    }
}

/// The next hour's older lags: this hour's, less the oldest, plus the newest.
fn shift(older: Vec<Vec<f32>>, newest: Vec<Vec<f32>>, specs: &[InputSpec]) -> Vec<Vec<f32>> {
    older
        .into_iter()
        .zip(newest)
        .zip(specs)
        .map(|((mut older, newest), spec)| {
            older.extend(newest);
            older.drain(..lag_width(spec).min(older.len()));
            older
        })
        .collect()
}

fn elapsed_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

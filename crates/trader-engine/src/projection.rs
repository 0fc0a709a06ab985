//! Backtests: the market part of every member's first layer, computed ahead
//! for a block of hours in one batched matmul per member group; and the
//! remaining layers of the next hours computed together, ahead, on the
//! assumption that nothing trades in between (ARCHITECTURE.md, "Backtests").
//!
//! An hour's decision depends on its portfolio part (cash and position
//! weights), known only once the hours before it have traded. But many
//! hours trade nothing, and then the portfolio part of the next hours
//! follows from the holdings and the next closes alone. So at a projected
//! hour whose decision was not computed ahead, the engine computes it
//! together with the next hours' decisions, each with the portfolio part it
//! would have if nothing trades: every layer's weights are then read once
//! for all of them. At each of those hours the engine uses the decision
//! computed ahead only if the portfolio part it has is exactly (bit for bit)
//! the one assumed, and the ensemble computes each hour alike whatever hours
//! run beside it ([`trader_ensemble::Ensemble::infer_projected_hours`]), so
//! decisions are the same as one hour at a time. A trade only costs the
//! hours computed for nothing; how many hours are computed together adapts:
//! halved after a failed assumption, doubled after all held, from 1 up to
//! the engine's `hours_ahead` ([`HOURS_AHEAD`] by default); down at one, it
//! tries again after [`RETRY_AFTER_HOURS`], so a policy that trades every
//! hour runs about as one hour at a time.

use std::collections::BTreeMap;
use std::time::Instant;

use trader_core::{
    Bar, Broker, SeriesFeatures, Symbol, market_state_memo, paper_equity, required_history_hours,
};
use trader_ensemble::{Decision, MarketProjection};
use trader_store::Recorder;

use crate::{Engine, EngineError};

/// The most hours decided together: the hour at hand and the next ones,
/// assuming nothing trades (measured in BENCHMARKS.md, issue 18, goal 3).
pub(crate) const HOURS_AHEAD: usize = 16;

/// After an assumption failed with two hours together, the hours decided
/// alone before trying two again: a policy that trades every hour then pays
/// one hour computed for nothing in nine (measured in BENCHMARKS.md).
const RETRY_AFTER_HOURS: u32 = 8;

/// A decision computed ahead: the portfolio parts it assumed, and its share
/// of the inference time of the hours computed with it.
pub(crate) struct Ahead {
    assumed: Vec<Vec<f32>>,
    decision: Decision,
    inference_us: u64,
}

/// A [`MarketProjection`], the hour of each of its rows and the closes of
/// those hours (in the engine's symbol order), and the decisions computed
/// ahead with the portfolio parts they assumed.
pub(crate) struct Projected {
    pub(crate) rows: BTreeMap<i64, usize>,
    pub(crate) projection: MarketProjection,
    pub(crate) closes: BTreeMap<i64, Vec<f64>>,
    pub(crate) ahead: BTreeMap<i64, Ahead>,
    /// Hours decided together now: halved when an assumption failed,
    /// doubled (up to the engine's `hours_ahead`) when all held.
    pub(crate) window: usize,
    /// Hours to decide alone before assuming again, after the window fell
    /// to one hour.
    pub(crate) wait: u32,
}

impl<B: Broker, R: Recorder> Engine<B, R> {
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
        let mut closes = BTreeMap::new();
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
            closes.insert(t, closes_at(&memo, t));
        }
        let projection = self
            .ensemble
            .project_market(&blocks, rows.len())
            .map_err(|e| EngineError::Projection(e.to_string()))?;
        let n = rows.len();
        self.projected = Some(Projected {
            rows,
            projection,
            closes,
            ahead: BTreeMap::new(),
            window: 1,
            wait: 0,
        });
        self.stats.projection_us += started.elapsed().as_micros() as u64;
        self.stats.projected_hours += n as u64;
        Ok(n)
    }

    /// The decision of projected hour `t` (row `row`) with `portfolios`:
    /// the one computed ahead if it assumed exactly these portfolio parts,
    /// else computed now with the next hours' (assuming nothing trades from
    /// `cash` and `held`); and the hour's inference time, microseconds:
    /// its share of the hours computed together (the pass's time divided by
    /// their number, so a backtest's decision latency is what an hour
    /// costs, not 0 for the hours decided ahead). `Ok(None)` when `t` is not
    /// projected.
    pub(crate) fn projected_decision(
        &mut self,
        t: i64,
        portfolios: &[Vec<f32>],
        cash: f64,
        held: &BTreeMap<Symbol, f64>,
    ) -> Result<Option<(Decision, u64)>, String> {
        let Some(projected) = self.projected.as_mut() else {
            return Ok(None);
        };
        let Some(&row) = projected.rows.get(&t) else {
            return Ok(None);
        };
        match projected.ahead.remove(&t) {
            Some(ahead) if ahead.assumed == portfolios => {
                self.stats.decided_ahead += 1;
                return Ok(Some((ahead.decision, ahead.inference_us)));
            }
            // Something traded: assume less far ahead; down to one hour,
            // try again only after a few.
            Some(_) => {
                projected.window = (projected.window / 2).max(1);
                if projected.window == 1 {
                    projected.wait = RETRY_AFTER_HOURS;
                }
            }
            None if projected.wait > 0 => projected.wait -= 1,
            // Every hour assumed was used (or none was): assume further.
            None => projected.window = (projected.window * 2).min(self.hours_ahead),
        }
        let Some(projected) = self.projected.as_ref() else {
            return Ok(None);
        };
        let mut hours = vec![(row, portfolios.to_vec())];
        let mut next = Vec::new();
        for (&later, &later_row) in projected.rows.range(t + 1..).take(projected.window - 1) {
            let Some(closes) = projected.closes.get(&later) else {
                break;
            };
            let prices: BTreeMap<Symbol, f64> = self
                .symbols
                .iter()
                .cloned()
                .zip(closes.iter().copied())
                .collect();
            // As the paper broker values an account (positions in symbol order).
            let equity = paper_equity(
                cash,
                held.iter()
                    .map(|(s, qty)| qty * prices.get(s).copied().unwrap_or(0.0)),
            );
            if equity <= 0.0 {
                break;
            }
            let assumed = self.portfolios(cash, equity, held, &prices);
            hours.push((later_row, assumed.clone()));
            next.push((later, assumed));
        }
        let started = Instant::now();
        let mut decisions = self
            .ensemble
            .infer_projected_hours(&projected.projection, &hours)
            .map_err(|e| format!("inference failed: {e}"))?
            .into_iter();
        let share_us =
            u64::try_from(started.elapsed().as_micros() / hours.len() as u128).unwrap_or(u64::MAX);
        let decision = decisions
            .next()
            .ok_or_else(|| "inference failed: no decision".to_owned())?;
        let ahead = next
            .into_iter()
            .zip(decisions)
            .map(|((later, assumed), decision)| {
                let inference_us = share_us;
                let ahead = Ahead {
                    assumed,
                    decision,
                    inference_us,
                };
                (later, ahead)
            })
            .collect();
        if let Some(projected) = self.projected.as_mut() {
            projected.ahead = ahead;
        }
        Ok(Some((decision, share_us)))
    }
}

/// Each symbol's close at hour `t` (0 where it has no bar), in the order of
/// `memo` (the engine's symbols).
fn closes_at(memo: &[SeriesFeatures<'_>], t: i64) -> Vec<f64> {
    memo.iter()
        .map(|m| {
            let series = m.series();
            series
                .binary_search_by_key(&t, |b| b.t)
                .map_or(0.0, |i| series[i].close)
        })
        .collect()
}

//! Backtests: the market part of every member's first layer, computed ahead
//! for a block of hours in one batched matmul per member group.

use std::collections::BTreeMap;
use std::time::Instant;

use trader_core::{Bar, Broker, SeriesFeatures, Symbol, market_state_memo, required_history_hours};
use trader_ensemble::MarketProjection;
use trader_store::Recorder;

use crate::{Engine, EngineError};

/// A [`MarketProjection`] and the hour of each of its rows.
pub(crate) struct Projected {
    pub(crate) rows: BTreeMap<i64, usize>,
    pub(crate) projection: MarketProjection,
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
}

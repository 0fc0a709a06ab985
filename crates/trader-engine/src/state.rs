//! The state vectors of an hour: per distinct member input, the cash and
//! position weights, then the window's market features (the layout is in
//! ARCHITECTURE.md, "State vector").

use std::collections::BTreeMap;

use trader_core::{Bar, Broker, Symbol, market_state};
use trader_store::Recorder;

use crate::Engine;

impl<B: Broker, R: Recorder> Engine<B, R> {
    /// The portfolio part of every distinct member input: cash weight, then
    /// each symbol's position weight.
    pub(crate) fn portfolios(
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
    pub(crate) fn states(
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
}

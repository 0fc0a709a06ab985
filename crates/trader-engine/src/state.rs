//! The portfolio part of an hour's state vectors: per distinct member input,
//! the cash and position weights (the layout is in ARCHITECTURE.md, "State
//! vector"; the market part is `decide.rs`'s).

use std::collections::BTreeMap;

use trader_core::{Broker, Symbol};
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
}

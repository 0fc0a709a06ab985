//! What the forward pass runs on, shared by the plain pass (`ensemble.rs`)
//! and the batched first layer (`projection.rs`): the inputs a member reads
//! ([`InputSpec`]), the state as it is prepared for the members (normalised
//! and clipped to [`STATE_CLIP`]), and the units the members run in.
//!
//! It depends on neither of them: `ensemble.rs` uses it, `projection.rs`
//! uses both.

use candle_core::Tensor;
use serde::Serialize;
use trader_core::{FeatureName, Symbol};

use crate::EnsembleError;
use crate::manifest::{Activation, Normalize};

/// States are clipped to this range after normalisation (DESIGN.md).
pub const STATE_CLIP: f32 = 10.0;

/// The inputs a member reads: members with equal specs share one state vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    pub symbols: Vec<Symbol>,
    pub lookback: u32,
    pub features: Vec<FeatureName>,
}

impl InputSpec {
    /// `1 + S`: cash weight and position weights.
    #[must_use]
    pub fn portfolio_dim(&self) -> usize {
        1 + self.symbols.len()
    }

    /// `1 + S + L*S*F`.
    #[must_use]
    pub fn state_dim(&self) -> usize {
        let s = self.symbols.len();
        1 + s + self.lookback as usize * s * self.features.len()
    }
}

/// Normalises the market part of a state (per feature) and clips it.
pub(crate) fn prepare(state: &[f32], spec: &InputSpec, normalize: Option<&Normalize>) -> Vec<f32> {
    let (portfolio, market) = state.split_at(spec.portfolio_dim().min(state.len()));
    let mut out = prepare_portfolio(portfolio);
    out.extend(prepare_market(market, spec, normalize));
    out
}

/// The portfolio part of a state, clipped.
pub(crate) fn prepare_portfolio(portfolio: &[f32]) -> Vec<f32> {
    portfolio
        .iter()
        .map(|v| v.clamp(-STATE_CLIP, STATE_CLIP))
        .collect()
}

/// Market values (one or more states' market parts back to back), normalised
/// per feature and clipped.
pub(crate) fn prepare_market(
    market: &[f32],
    spec: &InputSpec,
    normalize: Option<&Normalize>,
) -> Vec<f32> {
    let features = spec.features.len().max(1);
    market
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = match normalize {
                Some(n) => {
                    let f = i % features;
                    (v - n.mean[f]) / n.std[f]
                }
                None => *v,
            };
            v.clamp(-STATE_CLIP, STATE_CLIP)
        })
        .collect()
}

/// A candle error from running the members.
pub(crate) fn run_err(e: &candle_core::Error) -> EnsembleError {
    EnsembleError::Inference(e.to_string())
}

/// Members run together: a stacked group, or one member in sequential mode.
pub(crate) struct Unit<'a> {
    pub(crate) member_idx: Vec<usize>,
    pub(crate) spec_id: usize,
    pub(crate) normalize: Option<&'a Normalize>,
    /// `[N, out, in]` weights, `[N, out, 1]` biases.
    pub(crate) layers: Vec<(Tensor, Tensor, Activation)>,
}

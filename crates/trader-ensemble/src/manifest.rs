//! The JSON files of an ensemble directory.

use serde::{Deserialize, Serialize};
use trader_core::{FeatureName, Symbol};

/// `ensemble_params.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleParams {
    pub format: u32,
    /// The top_n the trainer suggests; the profile's `top_n` decides.
    #[serde(default)]
    pub top_n: Option<u32>,
    #[serde(default)]
    pub aggregate: Option<String>,
    pub members: Vec<MemberRef>,
}

/// One member of `ensemble_params.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    /// Member directory, relative to the ensemble directory.
    pub dir: String,
    pub score: f64,
}

/// The activation after a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Tanh,
    None,
}

/// One linear layer of `params.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    #[serde(rename = "in")]
    pub inputs: usize,
    #[serde(rename = "out")]
    pub outputs: usize,
    pub activation: Activation,
}

/// Optional per-feature normalisation of the market part of the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// `trial_XXXX/params.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberParams {
    pub format: u32,
    pub symbols: Vec<Symbol>,
    pub lookback: u32,
    pub features: Vec<FeatureName>,
    pub layers: Vec<LayerSpec>,
    #[serde(default)]
    pub normalize: Option<Normalize>,
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub hparams: serde_json::Value,
}

impl MemberParams {
    /// `1 + S + L*S*F` (DESIGN.md, "State vector").
    #[must_use]
    pub fn state_dim(&self) -> usize {
        let s = self.symbols.len();
        1 + s + self.lookback as usize * s * self.features.len()
    }

    /// Hours of history this member needs.
    #[must_use]
    pub fn required_history_hours(&self) -> u32 {
        trader_core::required_history_hours(self.lookback, &self.features)
    }
}

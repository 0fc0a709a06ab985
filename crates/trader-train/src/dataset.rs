//! Training samples: states and targets from recorded bars.

use std::collections::BTreeMap;

use trader_core::{Bar, FeatureName, HOUR_SECS, Symbol, format_time, market_state};
use trader_ensemble::STATE_CLIP;

use crate::HyperParams;

/// Why no dataset could be built.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("no CSV bars for {0}")]
    MissingSymbol(String),
    #[error(
        "only {samples} training samples between {from} and {until} (lookback {lookback}, horizon {horizon} h): need at least {min}"
    )]
    TooFew {
        samples: usize,
        from: String,
        until: String,
        lookback: u32,
        horizon: u32,
        min: usize,
    },
}

/// Fewest samples a trial trains on.
const MIN_SAMPLES: usize = 200;

/// Prepared training samples of one trial: each row is a whole state
/// (portfolio part, then the normalised and clipped market part).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub state_dim: usize,
    pub outputs: usize,
    /// `rows x state_dim`, row-major.
    pub inputs: Vec<f32>,
    /// `rows x outputs`, in [-1, 1].
    pub targets: Vec<f32>,
    pub rows: usize,
    /// Per-feature mean and std of the market part (params.json `normalize`).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Dataset {
    /// Samples for every hour t in `[from, until]` whose features are
    /// available and whose target hour t + horizon is recorded and not after
    /// `until` (nothing of the validation span leaks in). `bars` are per
    /// symbol, oldest first, at the hours every symbol has.
    ///
    /// # Errors
    /// A symbol without bars, or fewer than 200 samples.
    pub fn build(
        bars: &BTreeMap<Symbol, Vec<Bar>>,
        symbols: &[Symbol],
        hp: &HyperParams,
        from: i64,
        until: i64,
    ) -> Result<Self, DatasetError> {
        let series: Vec<&[Bar]> = symbols
            .iter()
            .map(|s| {
                bars.get(s)
                    .map(Vec::as_slice)
                    .ok_or_else(|| DatasetError::MissingSymbol(s.as_str().to_owned()))
            })
            .collect::<Result<_, _>>()?;
        let Some(first) = series.first() else {
            return Err(DatasetError::MissingSymbol("(no symbols)".to_owned()));
        };
        let horizon = i64::from(hp.horizon_hours) * HOUR_SECS;
        let span = hp.required_history_hours() as usize;
        let mut market = Vec::new();
        let mut returns: Vec<Vec<f64>> = Vec::new();
        for (i, bar) in first.iter().enumerate() {
            let t = bar.t;
            if t < from || t + horizon > until {
                continue;
            }
            let start = i.saturating_sub(span + 1);
            let windows: Vec<&[Bar]> = series
                .iter()
                .map(|b| &b[start.min(b.len())..=i.min(b.len() - 1)])
                .collect();
            let Ok(part) = market_state(&windows, hp.lookback as usize, &hp.features) else {
                continue;
            };
            let ahead: Option<Vec<f64>> = series
                .iter()
                .map(|b| {
                    let j = b.binary_search_by_key(&(t + horizon), |x| x.t).ok()?;
                    Some((b[j].close / b[i].close).ln())
                })
                .collect();
            let Some(ahead) = ahead else { continue };
            market.push(part);
            returns.push(ahead);
        }
        if market.len() < MIN_SAMPLES {
            return Err(DatasetError::TooFew {
                samples: market.len(),
                from: format_time(from),
                until: format_time(until),
                lookback: hp.lookback,
                horizon: hp.horizon_hours,
                min: MIN_SAMPLES,
            });
        }
        Ok(Self::assemble(
            &market,
            &returns,
            symbols.len(),
            &hp.features,
            hp.seed,
        ))
    }

    fn assemble(
        market: &[Vec<f32>],
        returns: &[Vec<f64>],
        symbols: usize,
        features: &[FeatureName],
        seed: u64,
    ) -> Self {
        let nf = features.len();
        let (mean, std) = feature_moments(market, nf);
        let sigma: Vec<f64> = (0..symbols)
            .map(|s| {
                let xs: Vec<f64> = returns.iter().map(|r| r[s]).collect();
                let m = xs.iter().sum::<f64>() / xs.len() as f64;
                (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64)
                    .sqrt()
                    .max(1e-9)
            })
            .collect();
        let state_dim = 1 + symbols + market.first().map_or(0, Vec::len);
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5EED);
        let mut inputs = Vec::with_capacity(market.len() * state_dim);
        let mut targets = Vec::with_capacity(market.len() * symbols);
        for (part, ret) in market.iter().zip(returns) {
            // A random portfolio: up to 30 % in each symbol, the rest cash.
            let weights: Vec<f32> = (0..symbols).map(|_| rng.f32() * 0.3).collect();
            inputs.push(1.0 - weights.iter().sum::<f32>());
            inputs.extend(&weights);
            inputs.extend(part.iter().enumerate().map(|(k, v)| {
                let f = k % nf;
                ((v - mean[f]) / std[f]).clamp(-STATE_CLIP, STATE_CLIP)
            }));
            targets.extend(ret.iter().zip(&sigma).map(|(r, s)| (r / s).tanh() as f32));
        }
        Dataset {
            state_dim,
            outputs: symbols,
            inputs,
            targets,
            rows: market.len(),
            mean,
            std,
        }
    }
}

/// Per-feature mean and population std over every lag and symbol (std at
/// least 1e-6, so a constant feature normalises to 0).
fn feature_moments(market: &[Vec<f32>], nf: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0f64; nf];
    let mut sq = vec![0f64; nf];
    let mut n = vec![0f64; nf];
    for part in market {
        for (k, v) in part.iter().enumerate() {
            let f = k % nf;
            sum[f] += f64::from(*v);
            sq[f] += f64::from(*v) * f64::from(*v);
            n[f] += 1.0;
        }
    }
    let mean: Vec<f64> = sum.iter().zip(&n).map(|(s, n)| s / n.max(1.0)).collect();
    let std = sq
        .iter()
        .zip(&n)
        .zip(&mean)
        .map(|((q, n), m)| ((q / n.max(1.0) - m * m).max(0.0).sqrt() as f32).max(1e-6))
        .collect();
    (mean.iter().map(|m| *m as f32).collect(), std)
}

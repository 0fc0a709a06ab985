//! The search space and its seeded sampler.

use serde::{Deserialize, Serialize};
use trader_core::{FeatureName, required_history_hours};

/// Hidden layer sizes a trial picks from.
pub const HIDDEN_CHOICES: [&[usize]; 5] = [&[32], &[64], &[64, 32], &[128, 64], &[256, 128]];
const LOOKBACKS: [u32; 6] = [1, 2, 4, 6, 8, 12];
const WEIGHT_DECAYS: [f64; 4] = [0.0, 1e-4, 1e-3, 1e-2];
const BATCH_SIZES: [usize; 3] = [64, 128, 256];
const HORIZONS: [u32; 4] = [3, 6, 12, 24];

/// Limits of the search.
#[derive(Debug, Clone, Copy)]
pub struct SearchSpace {
    /// Every member's required history (lookback + longest window - 1) stays
    /// within this (the lean profile's 72 h by default).
    pub max_history_hours: u32,
    /// Most epochs a trial trains.
    pub max_epochs: u32,
}

impl SearchSpace {
    /// The lookbacks whose shortest feature set fits the history limit.
    fn lookbacks(self) -> Vec<u32> {
        LOOKBACKS
            .iter()
            .copied()
            .filter(|l| {
                required_history_hours(*l, &[FeatureName::LogReturn]) <= self.max_history_hours
            })
            .collect()
    }
}

/// One trial's hyperparameters (written into the member's params.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperParams {
    pub trial: u32,
    pub seed: u64,
    pub lookback: u32,
    pub features: Vec<FeatureName>,
    pub hidden: Vec<usize>,
    pub learning_rate: f64,
    pub epochs: u32,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// Hours ahead of the return the target is made of.
    pub horizon_hours: u32,
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, xs: &[T]) -> T {
    xs[rng.usize(..xs.len())]
}

impl HyperParams {
    /// The seed of trial `trial` of a search seeded with `seed`.
    #[must_use]
    pub fn trial_seed(seed: u64, trial: u32) -> u64 {
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(u64::from(trial).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }

    /// Trial `trial`'s sample: a function of (`seed`, `trial`) only, so trials
    /// can run in any order, on any worker, and after a restart.
    #[must_use]
    pub fn sample(seed: u64, trial: u32, space: SearchSpace) -> Self {
        let trial_seed = Self::trial_seed(seed, trial);
        let mut rng = fastrand::Rng::with_seed(trial_seed);
        let lookbacks = space.lookbacks();
        let lookback = if lookbacks.is_empty() {
            1
        } else {
            pick(&mut rng, &lookbacks)
        };
        let allowed: Vec<FeatureName> = FeatureName::ALL
            .iter()
            .copied()
            .filter(|f| required_history_hours(lookback, &[*f]) <= space.max_history_hours)
            .collect();
        let mut features: Vec<FeatureName> =
            allowed.iter().copied().filter(|_| rng.bool()).collect();
        // At least two features: fill from the allowed ones in catalog order.
        for f in &allowed {
            if features.len() >= 2 {
                break;
            }
            if !features.contains(f) {
                features.push(*f);
            }
        }
        features.sort();
        let hidden = pick(&mut rng, &HIDDEN_CHOICES).to_vec();
        // Log-uniform in [3e-4, 3e-3].
        let learning_rate = 3e-4 * 10f64.powf(rng.f64());
        let epochs = rng.u32(3..=space.max_epochs.max(3));
        HyperParams {
            trial,
            seed: trial_seed,
            lookback,
            features,
            hidden,
            learning_rate,
            epochs,
            weight_decay: pick(&mut rng, &WEIGHT_DECAYS),
            batch_size: pick(&mut rng, &BATCH_SIZES),
            horizon_hours: pick(&mut rng, &HORIZONS),
        }
    }

    /// Hours of history the member needs.
    #[must_use]
    pub fn required_history_hours(&self) -> u32 {
        required_history_hours(self.lookback, &self.features)
    }
}

/// Bytes a training worker holds for its own work at most, over the whole
/// search space (the largest lookback, all features, the widest layers),
/// for `rows` training hours of `symbols` symbols: the dataset three times
/// (market rows while building, the sample matrix, its tensor), weights with
/// gradients and AdamW's two moments (x4), and a batch's activations
/// forward and backward (x4). Runtime base and the validation backtest's
/// trading loop are the budgeter's terms, added by the caller.
#[must_use]
pub fn training_demand_bytes(rows: usize, symbols: usize, space: SearchSpace) -> u64 {
    let lookback = space.lookbacks().into_iter().max().unwrap_or(1) as usize;
    let state_dim = 1 + symbols + lookback * symbols * FeatureName::ALL.len();
    let widest = HIDDEN_CHOICES
        .iter()
        .map(|h| {
            let mut sizes = vec![state_dim];
            sizes.extend(h.iter());
            sizes.push(symbols);
            sizes.windows(2).map(|p| p[0] * p[1] + p[1]).sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    let batch = BATCH_SIZES.iter().copied().max().unwrap_or(1);
    let dataset = 3 * rows * (state_dim + symbols) * 4;
    let weights = 4 * widest * 4;
    let activations = 4 * batch * (state_dim + 256 + 128 + symbols) * 4;
    (dataset + weights + activations) as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SPACE: SearchSpace = SearchSpace {
        max_history_hours: 72,
        max_epochs: 12,
    };

    #[test]
    fn same_seed_and_trial_give_the_same_sample_and_others_differ() {
        assert_eq!(
            HyperParams::sample(7, 3, SPACE),
            HyperParams::sample(7, 3, SPACE)
        );
        let distinct: std::collections::BTreeSet<String> = (0..20)
            .map(|t| {
                format!(
                    "{:?}",
                    HyperParams {
                        trial: 0,
                        seed: 0,
                        ..HyperParams::sample(7, t, SPACE)
                    }
                )
            })
            .collect();
        assert!(distinct.len() >= 18, "{} distinct of 20", distinct.len());
        assert_ne!(
            HyperParams::sample(7, 3, SPACE),
            HyperParams::sample(8, 3, SPACE)
        );
    }

    #[test]
    fn every_sample_fits_the_history_limit() {
        for max in [30, 48, 72] {
            let space = SearchSpace {
                max_history_hours: max,
                max_epochs: 12,
            };
            for t in 0..200 {
                let hp = HyperParams::sample(1, t, space);
                assert!(
                    hp.required_history_hours() <= max,
                    "{hp:?} needs more than {max} h"
                );
                assert!(hp.features.len() >= 2);
                assert!((3e-4..=3e-3).contains(&hp.learning_rate));
                assert!((3..=12).contains(&hp.epochs));
            }
        }
    }
}

//! What `trader ensemble bench` times: decisions on a deterministic
//! pseudo-random state, after warm-up ones, and the percentiles of their
//! latencies.

use std::time::Instant;

use crate::{Ensemble, EnsembleError, InputSpec};

/// The xorshift seed of [`bench_states`].
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// One state per input spec, each value in [-1, 1], from one xorshift64
/// stream (the same states on every run and machine).
#[must_use]
pub fn bench_states(specs: &[InputSpec]) -> Vec<Vec<f32>> {
    let mut seed = SEED;
    specs
        .iter()
        .map(|spec| uniform_values(spec.state_dim(), &mut seed))
        .collect()
}

/// `len` values in [-1, 1] from the xorshift64 stream at `seed` (advanced).
pub(crate) fn uniform_values(len: usize, seed: &mut u64) -> Vec<f32> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Latencies of timed decisions in microseconds, sorted ascending (never
/// empty when made by [`time_decisions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchTimings {
    micros: Vec<f64>,
}

impl BenchTimings {
    /// Sorts the latencies (microseconds) given in any order.
    #[must_use]
    pub fn from_micros(mut micros: Vec<f64>) -> Self {
        micros.sort_by(f64::total_cmp);
        Self { micros }
    }

    /// The latencies in microseconds, ascending.
    #[must_use]
    pub fn micros(&self) -> &[f64] {
        &self.micros
    }

    /// How many decisions were timed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether no decision was timed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The latency at quantile `q` in [0, 1]: the sorted value at index
    /// `round((n - 1) * q)` (no interpolation); NaN when empty.
    #[must_use]
    pub fn percentile(&self, q: f64) -> f64 {
        trader_core::nearest_rank(&self.micros, q).unwrap_or(f64::NAN)
    }

    /// The median latency (`percentile(0.5)`).
    #[must_use]
    pub fn median_us(&self) -> f64 {
        self.percentile(0.5)
    }

    /// The 99th percentile latency (`percentile(0.99)`).
    #[must_use]
    pub fn p99_us(&self) -> f64 {
        self.percentile(0.99)
    }

    /// The mean latency; NaN when empty.
    #[must_use]
    pub fn mean_us(&self) -> f64 {
        self.micros.iter().sum::<f64>() / self.micros.len() as f64
    }
}

/// Runs `iters / 10` (at least 1) warm-up decisions on `states`, then times
/// `iters` (at least 1) decisions one by one.
///
/// # Errors
/// Those of [`Ensemble::infer`] (states that do not fit the members, a
/// device error).
pub fn time_decisions(
    ensemble: &Ensemble,
    states: &[Vec<f32>],
    iters: usize,
) -> Result<BenchTimings, EnsembleError> {
    for _ in 0..(iters / 10).max(1) {
        ensemble.infer(states)?;
    }
    let mut micros = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let t = Instant::now();
        let d = ensemble.infer(states)?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(d);
    }
    Ok(BenchTimings::from_micros(micros))
}

#[cfg(test)]
mod tests {
    // Exact values on purpose: the percentiles pick, never interpolate.
    #![allow(clippy::unwrap_used, clippy::float_cmp)]

    use std::path::Path;

    use trader_core::{Aggregate, ComputeDevice, DType};

    use super::*;
    use crate::{EnsembleCatalog, ForwardMode, LoadOptions};

    fn fixture(top_n: usize) -> Ensemble {
        let catalog = EnsembleCatalog::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixture-small"),
        )
        .unwrap();
        Ensemble::load(
            &catalog,
            LoadOptions {
                top_n,
                dtype: DType::F32,
                device: ComputeDevice::Cpu,
                aggregate: Aggregate::Mean,
                mode: ForwardMode::Stacked,
            },
        )
        .unwrap()
    }

    #[test]
    fn states_are_deterministic_in_range_and_sized_per_spec() {
        let e = fixture(3);
        let a = bench_states(e.specs());
        assert_eq!(a, bench_states(e.specs()));
        assert_eq!(a.len(), e.specs().len());
        assert_eq!(a[0].len(), 364);
        assert!(a.iter().flatten().all(|v| (-1.0..=1.0).contains(v)));
        // Not constant: the stream moves.
        assert!(a[0].windows(2).any(|w| w[0] != w[1]));
        // The first value of the xorshift stream from the fixed seed.
        let mut seed = SEED;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        assert_eq!(
            a[0][0],
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        );
    }

    #[test]
    fn timed_decisions_count_iters_and_at_least_one() {
        let e = fixture(2);
        let states = bench_states(e.specs());
        let t = time_decisions(&e, &states, 5).unwrap();
        assert_eq!(t.len(), 5);
        assert!(t.micros().windows(2).all(|w| w[0] <= w[1]));
        assert!(t.micros().iter().all(|v| v.is_finite() && *v >= 0.0));
        assert_eq!(time_decisions(&e, &states, 0).unwrap().len(), 1);
    }

    #[test]
    fn wrong_states_are_the_ensembles_error() {
        let e = fixture(1);
        assert!(matches!(
            time_decisions(&e, &[vec![0.0; 3]], 1),
            Err(EnsembleError::State(_))
        ));
    }

    #[test]
    fn percentiles_pick_the_rounded_index() {
        let t = BenchTimings::from_micros((1..=101).rev().map(f64::from).collect());
        assert_eq!(t.micros()[0], 1.0);
        assert_eq!(t.median_us(), 51.0);
        assert_eq!(t.p99_us(), 100.0);
        assert_eq!(t.percentile(1.0), 101.0);
        assert_eq!(t.percentile(0.0), 1.0);
        assert_eq!(t.mean_us(), 51.0);
        // round((4 - 1) * 0.5) = round(1.5) = 2.
        let four = BenchTimings::from_micros(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(four.median_us(), 3.0);
        assert_eq!(four.p99_us(), 4.0);
        let one = BenchTimings::from_micros(vec![7.0]);
        assert_eq!(
            (one.median_us(), one.p99_us(), one.mean_us()),
            (7.0, 7.0, 7.0)
        );
        let empty = BenchTimings::from_micros(Vec::new());
        assert!(empty.is_empty() && empty.median_us().is_nan() && empty.mean_us().is_nan());
    }
}

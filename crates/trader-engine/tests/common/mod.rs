//! Helpers shared by the engine's in-process tests: the repository's files,
//! a clock on which every wait passes at once, and ensembles loaded from
//! real model files.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::missing_panics_doc
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use trader_core::{Aggregate, Bar, Clock, ComputeDevice, DType, HOUR_SECS, ManualClock, Symbol};
use trader_ensemble::{Ensemble, EnsembleCatalog, ForwardMode, LoadOptions};

pub const H: i64 = HOUR_SECS;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The three symbols every shipped set and model trades.
pub fn symbols() -> Vec<Symbol> {
    ["BTC/USD", "ETH/USD", "LTC/USD"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// The bars of a recorded set under the repository (`tests/fixtures/slice`,
/// `data/coinbase_2017_2018`) whose hour `keep` accepts, parsed by the
/// core's line parser.
pub fn recorded(dir: &str, keep: impl Fn(i64) -> bool) -> BTreeMap<Symbol, Vec<Bar>> {
    symbols()
        .into_iter()
        .map(|s| {
            let file = repo()
                .join(dir)
                .join(format!("{}.csv", s.as_str().replace('/', "")));
            let bars = std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| Bar::from_recorded_line(l).unwrap())
                .filter(|b| keep(b.t))
                .collect();
            (s, bars)
        })
        .collect()
}

/// A clock on which every wait passes at once: asking how long to wait
/// for `d` moves the clock by `d` and answers zero.
pub struct SteppingClock(ManualClock);

impl SteppingClock {
    pub fn at(t: i64) -> Arc<Self> {
        Arc::new(SteppingClock(ManualClock::new(
            DateTime::from_timestamp(t, 0).unwrap(),
        )))
    }

    pub fn advance(&self, secs: i64) {
        let next = self.0.now().timestamp() + secs;
        self.0.set(DateTime::from_timestamp(next, 0).unwrap());
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<chrono::Utc> {
        self.0.now()
    }

    fn real_duration(&self, simulated: Duration) -> Duration {
        self.advance(simulated.as_secs().cast_signed());
        Duration::ZERO
    }
}

/// The best `top_n` members of the ensemble in `dir`, f32 on the CPU, mean.
pub fn ensemble(dir: &Path, top_n: usize) -> Ensemble {
    Ensemble::load(
        &EnsembleCatalog::open(dir).unwrap(),
        LoadOptions {
            top_n,
            dtype: DType::F32,
            device: ComputeDevice::Cpu,
            aggregate: Aggregate::Mean,
            mode: ForwardMode::default_for(DType::F32),
        },
    )
    .unwrap()
}

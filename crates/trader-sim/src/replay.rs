//! The embedded replay of `trader run` without Alpaca keys: this process's
//! own simulator on 127.0.0.1 over recorded bars, on an accelerated clock,
//! with a fresh key pair for its one account.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::DateTime;
use trader_core::{Bar, Clock, HOUR_SECS, PAPER_STARTING_CASH, Symbol, format_time};

use crate::{FaultConfig, ReplayClock, SimConfig, SimError, SimHandle, SimKeys, serve};

/// Days replayed when no start is given.
pub const DEFAULT_REPLAY_DAYS: i64 = 30;
/// Real seconds a replay lasts when no speed is given.
pub const DEFAULT_REPLAY_SECONDS: f64 = 60.0;

/// What to replay: every field optional, defaults from the bars.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplaySpan {
    /// First hour decided (default: [`DEFAULT_REPLAY_DAYS`] before the end).
    pub from: Option<i64>,
    /// End (default: the close of the last bar every symbol has).
    pub until: Option<i64>,
    /// Simulated seconds per real second (default: the replay lasts
    /// [`DEFAULT_REPLAY_SECONDS`]).
    pub speed: Option<f64>,
    /// Hours of bars before `from` the trader fetches as its history: the
    /// simulator keeps only those and the replayed span, not the whole
    /// recorded set (None: every bar is kept).
    pub history_hours: Option<u32>,
}

/// Why a replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("--from {from} is not before --until {until}")]
    EmptySpan { from: String, until: String },
    #[error("--speed {0} must be a positive number")]
    Speed(f64),
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// A running embedded replay.
pub struct EmbeddedReplay {
    pub sim: SimHandle,
    /// The simulator's clock; restart it at [`EmbeddedReplay::start`] once
    /// the trader is ready (loading takes real time).
    pub clock: Arc<ReplayClock>,
    /// First hour decided and the end.
    pub from: i64,
    pub until: i64,
    /// Clock time the replay starts at: ten minutes into the hour after
    /// `from`, so `from` has closed and is the first decision.
    pub start: i64,
    pub speed: f64,
    /// The account's key pair (fresh for this process).
    pub key_id: String,
    pub secret_key: String,
}

impl EmbeddedReplay {
    /// Starts the simulator over `bars` for `span`.
    ///
    /// # Errors
    /// An empty span, a speed that is not positive, or a simulator that
    /// cannot bind.
    pub async fn start(
        bars: BTreeMap<Symbol, Vec<Bar>>,
        span: ReplaySpan,
    ) -> Result<Self, ReplayError> {
        let last = bars
            .values()
            .filter_map(|b| b.last())
            .map(|b| b.t)
            .min()
            .unwrap_or(0);
        let until = span.until.unwrap_or(last + HOUR_SECS);
        let from = span
            .from
            .unwrap_or(until - DEFAULT_REPLAY_DAYS * 24 * HOUR_SECS)
            .div_euclid(HOUR_SECS)
            * HOUR_SECS;
        if from >= until {
            return Err(ReplayError::EmptySpan {
                from: format_time(from),
                until: format_time(until),
            });
        }
        let speed = span
            .speed
            .unwrap_or((until - from) as f64 / DEFAULT_REPLAY_SECONDS);
        if !(speed.is_finite() && speed > 0.0) {
            return Err(ReplayError::Speed(speed));
        }
        let bars = replayed_bars(bars, from, until, span.history_hours);
        let key_id = "PKEMBEDDED".to_owned();
        let secret_key = format!("embedded-{:016x}", fastrand::u64(..));
        let start = from + HOUR_SECS + 600;
        let clock = Arc::new(ReplayClock::new(
            DateTime::from_timestamp(start, 0).unwrap_or_default(),
            speed,
        ));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let sim = serve(
            SimConfig {
                bars,
                accounts: vec![SimKeys {
                    key_id: key_id.clone(),
                    secret_key: secret_key.clone(),
                }],
                starting_cash: PAPER_STARTING_CASH,
                clock: dyn_clock,
                // The replay compresses hours into milliseconds: Alpaca's
                // per-minute quota does not apply.
                rate_limit_per_minute: 1_000_000,
                faults: FaultConfig::default(),
            },
            0,
        )
        .await?;
        tracing::info!(
            url = %sim.base_url(),
            from = %format_time(from),
            until = %format_time(until),
            speed,
            "no Alpaca keys: replaying the recorded data through the embedded simulator"
        );
        Ok(EmbeddedReplay {
            sim,
            clock,
            from,
            until,
            start,
            speed,
            key_id,
            secret_key,
        })
    }
}

/// The bars a replay of `from..until` serves: from `history_hours` before
/// `from` (all before it when None) to the hour at `until`. Each
/// symbol's bars are copied into a vector of their own size, so the whole
/// recorded set read from the files (3 x 11,341 bars for the shipped data,
/// 1.6 MB) is freed before the trader loads its ensemble.
fn replayed_bars(
    bars: BTreeMap<Symbol, Vec<Bar>>,
    from: i64,
    until: i64,
    history_hours: Option<u32>,
) -> BTreeMap<Symbol, Vec<Bar>> {
    let Some(hours) = history_hours else {
        return bars;
    };
    let first = from - i64::from(hours) * HOUR_SECS;
    bars.into_iter()
        .map(|(symbol, series)| {
            // Sorted by hour (the loader's contract): one slice, copied.
            let start = series.partition_point(|b| b.t < first);
            // The hour at `until` too: an order of the last decided hour
            // fills at its open.
            let end = series.partition_point(|b| b.t <= until);
            (symbol, series[start..end.max(start)].to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    fn bar(t: i64) -> Bar {
        Bar::flat(t, 1.0)
    }

    fn recorded() -> BTreeMap<Symbol, Vec<Bar>> {
        let mut bars = BTreeMap::new();
        for s in ["BTC/USD", "ETH/USD"] {
            let series = (0..100).map(|h| bar(h * HOUR_SECS)).collect();
            bars.insert(s.parse::<Symbol>().expect("a valid symbol"), series);
        }
        bars
    }

    #[test]
    fn a_replay_keeps_its_history_and_span_only() {
        let (from, until) = (50 * HOUR_SECS, 60 * HOUR_SECS);
        let kept = replayed_bars(recorded(), from, until, Some(24));
        assert_eq!(kept.len(), 2);
        for series in kept.values() {
            let hours: Vec<i64> = series.iter().map(|b| b.t / HOUR_SECS).collect();
            assert_eq!(hours, (26..=60).collect::<Vec<_>>());
            assert_eq!(series.capacity(), series.len());
        }
        // History reaching before the first bar keeps from the first bar.
        let kept = replayed_bars(recorded(), from, until, Some(500));
        assert_eq!(kept.values().next().map(Vec::len), Some(61));
        // None keeps every bar.
        let all = replayed_bars(recorded(), from, until, None);
        assert_eq!(all, recorded());
    }
}

//! The backtest loop: the engine of `trader run` fed hour by hour from
//! recorded bars, on a manual clock that the loop sets to one second after
//! each hour's close (orders fill at the next open, as in a replay), with
//! the batched first layer computed ahead block by block when asked.
//!
//! The broker is the caller's (the simulator's in-process paper broker in
//! `trader backtest`), on the same clock.

use std::collections::BTreeMap;

use chrono::DateTime;
use trader_core::{Bar, Broker, HOUR_SECS, ManualClock, Symbol};
use trader_store::Recorder;

use crate::{Engine, EngineError};

/// What one backtest runs over.
#[derive(Debug, Clone, Copy)]
pub struct BacktestSpan<'a> {
    /// Per symbol, oldest first.
    pub bars: &'a BTreeMap<Symbol, Vec<Bar>>,
    /// Hours with bars of every symbol (the engine is fed these only).
    pub hours: &'a [i64],
    /// The hours decided (a non-empty run of `hours`).
    pub decided: &'a [i64],
    /// `Some(block)`: the batched first layer, `block` hours at a time.
    pub block_hours: Option<usize>,
    pub history_hours: u32,
}

/// Equity and exposure (invested share of equity) after each decided hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BacktestCurve {
    pub equity: Vec<f64>,
    pub exposure: Vec<f64>,
}

/// Each symbol's bars at `hours` only (sorted).
#[must_use]
pub fn at_hours(bars: &BTreeMap<Symbol, Vec<Bar>>, hours: &[i64]) -> BTreeMap<Symbol, Vec<Bar>> {
    bars.iter()
        .map(|(s, b)| {
            let kept = b
                .iter()
                .filter(|x| hours.binary_search(&x.t).is_ok())
                .copied()
                .collect();
            (s.clone(), kept)
        })
        .collect()
}

/// Hours at which every symbol has a bar.
#[must_use]
pub fn common_hours(bars: &BTreeMap<Symbol, Vec<Bar>>) -> Vec<i64> {
    let mut sets = bars.values().map(|b| {
        b.iter()
            .map(|x| x.t)
            .collect::<std::collections::BTreeSet<_>>()
    });
    let Some(first) = sets.next() else {
        return Vec::new();
    };
    sets.fold(first, |acc, s| acc.intersection(&s).copied().collect())
        .into_iter()
        .collect()
}

/// Runs `engine` over `span`: the window's history first, then one decision
/// per decided hour, `clock` (the broker's) set one second after each
/// close; `on_hour` after each decided hour (a progress bar).
///
/// # Errors
/// What stops the engine, or a broker whose account cannot be read.
pub async fn run_backtest<B: Broker, R: Recorder>(
    engine: &mut Engine<B, R>,
    clock: &ManualClock,
    span: BacktestSpan<'_>,
    mut on_hour: impl FnMut(),
) -> Result<BacktestCurve, EngineError> {
    let BacktestSpan {
        bars,
        hours,
        decided,
        block_hours,
        history_hours,
    } = span;
    let Some(&first) = decided.first() else {
        return Ok(BacktestCurve::default());
    };
    let at = |t: i64| -> BTreeMap<Symbol, Bar> {
        bars.iter()
            .filter_map(|(s, b)| {
                let i = b.binary_search_by_key(&t, |x| x.t).ok()?;
                Some((s.clone(), b[i]))
            })
            .collect()
    };
    // The window's history before the first decided hour.
    let history_from = first - i64::from(history_hours) * HOUR_SECS;
    for t in hours
        .iter()
        .copied()
        .filter(|t| (history_from..first).contains(t))
    {
        engine.add_history(&at(t), t + HOUR_SECS).await?;
    }
    // The batched first layer computes its windows from the bars the
    // engine is fed: the common hours.
    let fed = at_hours(bars, hours);
    let mut curve = BacktestCurve {
        equity: Vec::with_capacity(decided.len()),
        exposure: Vec::with_capacity(decided.len()),
    };
    for (i, &t) in decided.iter().enumerate() {
        if let Some(block) = block_hours
            && i % block == 0
        {
            let upto = (i + block).min(decided.len());
            engine.project_market(&decided[i..upto], &fed)?;
        }
        // One second after the hour closed: orders fill at the next open, as
        // in a replay (whose decision comes minutes into the next hour).
        let now = t + HOUR_SECS + 1;
        clock.set(DateTime::from_timestamp(now, 0).unwrap_or_default());
        engine.on_hour(t, &at(t), true, now).await?;
        let account = engine.broker().account().await?;
        curve.equity.push(account.equity);
        curve.exposure.push(if account.equity > 0.0 {
            1.0 - account.cash / account.equity
        } else {
            0.0
        });
        on_hour();
    }
    Ok(curve)
}

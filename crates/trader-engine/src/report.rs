//! The report of a run: its [`Metrics`] read from its records, equal-weight
//! buy-and-hold of the same symbols over the same hours, and the run's
//! equity.csv and decisions.csv. One owner for backtests and live
//! comparisons.

use std::collections::BTreeMap;

use trader_core::{Bar, Symbol, format_time};
use trader_store::{DecisionRow, Recorder, StoreError};

use crate::metrics::{Metrics, Run, summarize};

/// Equal-weight buy-and-hold of every symbol from the first of `decided`'s
/// closes, as a multiple of the start, per hour.
#[must_use]
pub fn buy_and_hold(bars: &BTreeMap<Symbol, Vec<Bar>>, decided: &[i64]) -> Vec<f64> {
    let closes = |t: i64| -> Vec<f64> {
        bars.values()
            .filter_map(|b| {
                let i = b.binary_search_by_key(&t, |x| x.t).ok()?;
                Some(b[i].close)
            })
            .collect()
    };
    let base = decided.first().map(|t| closes(*t)).unwrap_or_default();
    decided
        .iter()
        .map(|t| {
            let c = closes(*t);
            c.iter().zip(&base).map(|(x, b)| x / b).sum::<f64>() / base.len().max(1) as f64
        })
        .collect()
}

/// A run's equity and exposure at each decided hour, and buy-and-hold
/// (a multiple of the start) over the same hours.
pub struct Hourly<'a> {
    pub curve: &'a [f64],
    pub exposure: &'a [f64],
    pub buy_and_hold: &'a [f64],
}

/// The metrics of run `run_id` and its equity.csv and decisions.csv, with
/// its counts, fills and decisions read from its records (a backtest's, or
/// a live run's store).
pub async fn report_files<R: Recorder>(
    records: &R,
    run_id: i64,
    profile: &str,
    decided: &[i64],
    hourly: Hourly<'_>,
) -> Result<(Metrics, String, String), StoreError> {
    let counts = records.run_counts(run_id).await?;
    let fills = records.fills_of_run(run_id).await?;
    let decisions = records.decisions_of_run(run_id).await?;
    let run = Run {
        curve: hourly.curve,
        exposure: hourly.exposure,
        buy_and_hold: hourly.buy_and_hold,
        fills: &fills,
    };
    let metrics = summarize(profile, decided, &run, counts);
    let (equity_csv, decisions_csv) = csv_files(
        decided,
        run.curve,
        run.buy_and_hold,
        metrics.equity_start,
        decisions,
    );
    Ok((metrics, equity_csv, decisions_csv))
}

/// equity.csv and decisions.csv.
fn csv_files(
    decided: &[i64],
    curve: &[f64],
    bh: &[f64],
    equity_start: f64,
    decisions: Vec<DecisionRow>,
) -> (String, String) {
    let mut equity_csv = String::from("t,equity,buy_and_hold\n");
    for ((t, e), b) in decided.iter().zip(curve).zip(bh) {
        equity_csv += &format!("{},{e},{}\n", format_time(*t), b * equity_start);
    }
    let mut decisions_csv = String::from("t,aggregate,target_weights,skipped_reason\n");
    for DecisionRow {
        bar_t: t,
        aggregate,
        target_weights: targets,
        skipped_reason: skipped,
        ensemble_version: _,
    } in decisions
    {
        decisions_csv += &format!(
            "{},\"{}\",\"{}\",{}\n",
            format_time(t),
            aggregate.replace('"', "\"\""),
            targets.replace('"', "\"\""),
            skipped.unwrap_or_default()
        );
    }
    (equity_csv, decisions_csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buy_and_hold_is_the_mean_of_each_symbols_multiple_of_its_first_close() {
        let bar = |t: i64, close: f64| Bar {
            t,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
        };
        let bars: BTreeMap<Symbol, Vec<Bar>> = [
            (
                "BTC/USD".parse().unwrap(),
                vec![bar(0, 10.0), bar(3600, 20.0)],
            ),
            (
                "ETH/USD".parse().unwrap(),
                vec![bar(0, 4.0), bar(3600, 2.0)],
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(buy_and_hold(&bars, &[0, 3600]), vec![1.0, 1.25]);
    }
}

//! The performance report of a run: total and annualised return, volatility,
//! Sharpe and Sortino (hourly, 24x365), max drawdown with its peak and
//! trough, turnover, fees, exposure, and equal-weight buy-and-hold of the
//! same symbols over the same hours; with the run's equity.csv and
//! decisions.csv. One owner for backtests and live comparisons.

use std::collections::BTreeMap;

use serde::Serialize;
use trader_core::{Bar, PAPER_STARTING_CASH, Symbol, format_time};
use trader_store::{DecisionRow, FillRow, Recorder, RunCounts, StoreError};

/// Per decided hour (its RFC 3339 time): the aggregated actions and the
/// target weights by symbol.
pub type Decisions = BTreeMap<String, (Vec<f64>, BTreeMap<String, f64>)>;

/// How two runs decided the same hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Hours both decided.
    pub hours: usize,
    /// Share of them whose target weights hold the same symbols (weight > 0
    /// or not, per symbol).
    pub same_way_share: f64,
    /// Mean absolute difference of the aggregated actions.
    pub mean_abs_action_difference: f64,
}

/// The agreement of two runs' decisions over the hours both decided.
#[must_use]
pub fn decision_agreement(a: &Decisions, b: &Decisions) -> Agreement {
    let mut hours = 0;
    let mut same = 0usize;
    let (mut diff, mut n) = (0.0, 0.0);
    for (t, (agg_a, w_a)) in a {
        let Some((agg_b, w_b)) = b.get(t) else {
            continue;
        };
        hours += 1;
        if w_a
            .iter()
            .all(|(s, x)| (*x > 0.0) == (w_b.get(s).copied().unwrap_or(0.0) > 0.0))
        {
            same += 1;
        }
        for (x, y) in agg_a.iter().zip(agg_b) {
            diff += (x - y).abs();
            n += 1.0;
        }
    }
    Agreement {
        hours,
        same_way_share: if hours > 0 {
            same as f64 / hours as f64
        } else {
            0.0
        },
        mean_abs_action_difference: if n > 0.0 { diff / n } else { 0.0 },
    }
}

/// Hours per year, for annualising hourly figures (crypto trades 24x365).
const HOURS_PER_YEAR: f64 = 24.0 * 365.0;

/// The backtest's figures. Field order is the JSON's order.
#[derive(Debug, Serialize)]
pub struct Metrics {
    pub profile: String,
    pub from: String,
    pub to: String,
    pub hours: usize,
    pub decisions: u64,
    pub skipped: u64,
    pub orders: u64,
    pub fills: u64,
    pub equity_start: f64,
    pub equity_end: f64,
    pub total_return: f64,
    pub annualised_return: f64,
    pub annualised_volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub max_drawdown: f64,
    pub max_drawdown_peak: String,
    pub max_drawdown_trough: String,
    pub turnover: f64,
    pub fees_paid: f64,
    pub exposure: f64,
    pub buy_and_hold_return: f64,
    pub buy_and_hold_max_drawdown: f64,
}

/// Max drawdown of a curve and the indices of its peak and trough.
fn drawdown(curve: &[f64]) -> (f64, usize, usize) {
    let (mut peak, mut peak_i) = (f64::MIN, 0);
    let (mut worst, mut worst_peak, mut worst_trough) = (0.0, 0, 0);
    for (i, v) in curve.iter().enumerate() {
        if *v > peak {
            peak = *v;
            peak_i = i;
        }
        let dd = if peak > 0.0 { 1.0 - v / peak } else { 0.0 };
        if dd > worst {
            worst = dd;
            worst_peak = peak_i;
            worst_trough = i;
        }
    }
    (worst, worst_peak, worst_trough)
}

/// Mean and population standard deviation.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

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

/// What one backtest produced, hour by hour.
pub(crate) struct Run<'a> {
    pub(crate) curve: &'a [f64],
    pub(crate) exposure: &'a [f64],
    pub(crate) buy_and_hold: &'a [f64],
    /// (qty, price, fee) of every fill.
    pub(crate) fills: &'a [FillRow],
}

/// The metrics of a run over the `decided` hours.
fn summarize(profile: &str, decided: &[i64], run: &Run<'_>, counts: RunCounts) -> Metrics {
    let Run {
        curve,
        exposure,
        buy_and_hold: bh,
        fills,
    } = *run;
    let returns: Vec<f64> = curve.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let (mean, std) = mean_std(&returns);
    let downside: Vec<f64> = returns.iter().map(|r| r.min(0.0)).collect();
    let downside_std =
        (downside.iter().map(|r| r * r).sum::<f64>() / downside.len().max(1) as f64).sqrt();
    let (dd, peak, trough) = drawdown(curve);
    let equity_start = PAPER_STARTING_CASH;
    let equity_end = curve.last().copied().unwrap_or(equity_start);
    let total = equity_end / equity_start - 1.0;
    let n = curve.len() as f64;
    let traded: f64 = fills.iter().map(|f| f.qty * f.price).sum();
    let mean_equity = curve.iter().sum::<f64>() / n.max(1.0);
    Metrics {
        profile: profile.to_owned(),
        from: format_time(decided[0]),
        to: format_time(*decided.last().unwrap_or(&decided[0])),
        hours: decided.len(),
        decisions: counts.decisions,
        skipped: counts.skipped,
        orders: counts.orders,
        fills: counts.fills,
        equity_start,
        equity_end,
        total_return: total,
        annualised_return: (1.0 + total).powf(HOURS_PER_YEAR / n.max(1.0)) - 1.0,
        annualised_volatility: std * HOURS_PER_YEAR.sqrt(),
        sharpe: if std > 0.0 {
            mean / std * HOURS_PER_YEAR.sqrt()
        } else {
            0.0
        },
        sortino: if downside_std > 0.0 {
            mean / downside_std * HOURS_PER_YEAR.sqrt()
        } else {
            0.0
        },
        max_drawdown: dd,
        max_drawdown_peak: format_time(decided[peak]),
        max_drawdown_trough: format_time(decided[trough]),
        turnover: if mean_equity > 0.0 {
            traded / mean_equity
        } else {
            0.0
        },
        fees_paid: fills.iter().map(|f| f.fee).sum(),
        exposure: exposure.iter().sum::<f64>() / n.max(1.0),
        buy_and_hold_return: bh.last().copied().unwrap_or(1.0) - 1.0,
        buy_and_hold_max_drawdown: drawdown(bh).0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_hours_both_decided_and_compares_held_symbols_and_actions() {
        let d = |entries: &[(&str, f64, f64)]| -> Decisions {
            entries
                .iter()
                .map(|(t, action, weight)| {
                    (
                        (*t).to_owned(),
                        (
                            vec![*action],
                            BTreeMap::from([("BTC/USD".to_owned(), *weight)]),
                        ),
                    )
                })
                .collect()
        };
        let a = d(&[("h1", 0.5, 0.2), ("h2", 0.0, 0.0), ("h3", 1.0, 0.3)]);
        let b = d(&[("h1", 0.3, 0.1), ("h2", 0.2, 0.1), ("h4", 1.0, 0.3)]);
        let agree = decision_agreement(&a, &b);
        assert_eq!(agree.hours, 2, "h3 and h4 are one-sided");
        assert!(
            (agree.same_way_share - 0.5).abs() < 1e-12,
            "h1 both hold, h2 not"
        );
        assert!((agree.mean_abs_action_difference - 0.2).abs() < 1e-12);
        let none = decision_agreement(&a, &Decisions::new());
        assert_eq!((none.hours, none.same_way_share), (0, 0.0));
    }

    #[test]
    fn drawdown_is_the_worst_fall_from_a_running_peak() {
        let (dd, peak, trough) = drawdown(&[100.0, 120.0, 90.0, 130.0, 65.0, 70.0]);
        assert!((dd - 0.5).abs() < 1e-12, "{dd}");
        assert_eq!((peak, trough), (3, 4));
        assert_eq!(drawdown(&[1.0, 2.0, 3.0]), (0.0, 0, 0), "never falls");
    }

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

    #[test]
    fn a_flat_run_has_no_return_no_volatility_and_no_ratios() {
        let curve = [PAPER_STARTING_CASH; 4];
        let run = Run {
            curve: &curve,
            exposure: &[0.0; 4],
            buy_and_hold: &[1.0, 1.1, 1.2, 0.9],
            fills: &[],
        };
        let m = summarize("lean", &[0, 3600, 7200, 10_800], &run, RunCounts::default());
        assert_eq!(
            (m.total_return, m.annualised_volatility, m.sharpe, m.sortino),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert!((m.buy_and_hold_return - (-0.1)).abs() < 1e-12);
        assert!((m.buy_and_hold_max_drawdown - 0.25).abs() < 1e-12);
        assert_eq!(m.to, format_time(10_800));
    }
}

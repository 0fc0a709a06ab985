//! The figures of a run: total and annualised return, volatility, Sharpe
//! and Sortino (hourly, 24x365), max drawdown with its peak and trough,
//! turnover, fees and exposure. One owner for backtests and live runs.

use serde::Serialize;
use trader_core::{PAPER_STARTING_CASH, format_time};
use trader_store::{FillRow, RunCounts};

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

/// What one backtest produced, hour by hour.
pub(crate) struct Run<'a> {
    pub(crate) curve: &'a [f64],
    pub(crate) exposure: &'a [f64],
    pub(crate) buy_and_hold: &'a [f64],
    /// (qty, price, fee) of every fill.
    pub(crate) fills: &'a [FillRow],
}

/// The metrics of a run over the `decided` hours.
pub(crate) fn summarize(
    profile: &str,
    decided: &[i64],
    run: &Run<'_>,
    counts: RunCounts,
) -> Metrics {
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
    fn drawdown_is_the_worst_fall_from_a_running_peak() {
        let (dd, peak, trough) = drawdown(&[100.0, 120.0, 90.0, 130.0, 65.0, 70.0]);
        assert!((dd - 0.5).abs() < 1e-12, "{dd}");
        assert_eq!((peak, trough), (3, 4));
        assert_eq!(drawdown(&[1.0, 2.0, 3.0]), (0.0, 0, 0), "never falls");
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

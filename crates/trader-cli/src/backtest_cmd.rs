//! `trader backtest --profile P --data DIR [--from T] [--to T] [--json]
//! [--out DIR]`: the engine of `trader run`, fed hour by hour from recorded
//! bars, trading the simulator's fill model in process ([`PaperBroker`]).
//! Deterministic: the same inputs give byte-identical JSON (no timings in it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::Args;
use serde::Serialize;
use trader_config::Profile;
use trader_core::{Bar, Broker, HOUR_SECS, ManualClock, Symbol, format_time};
use trader_engine::{Engine, EngineSetup};
use trader_sim::PaperBroker;
use trader_store::{MemoryRecorder, Recorder, RunMode, Store};

use crate::budget_cmd::{Gate, gate};
use crate::files::Staged;
use crate::{Outcome, output};

/// Hours per year, for annualising hourly figures (crypto trades 24x365).
const HOURS_PER_YEAR: f64 = 24.0 * 365.0;

#[derive(Debug, Args)]
pub(crate) struct BacktestArgs {
    /// Profile name (configs/NAME.toml) or path to a TOML file.
    #[arg(long)]
    pub(crate) profile: String,
    /// Recorded set (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    data: PathBuf,
    /// First hour decided, RFC 3339 (default: as soon as the history fits).
    #[arg(long)]
    from: Option<String>,
    /// Last hour decided, RFC 3339 (default: the last common bar).
    #[arg(long)]
    to: Option<String>,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
    /// Write metrics.json, equity.csv, decisions.csv and resources.json
    /// (peak RSS, decision latency: measurements, not deterministic) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How the first layer runs: `batched` computes its market part for a
    /// block of hours in one matmul per member group; `plain` runs every
    /// hour's whole state through the ensemble as `trader run` does. The two
    /// differ by float rounding only.
    #[arg(long, value_enum, default_value_t = Forward::Batched)]
    forward: Forward,
    /// Hours per batched block (memory: hours x members x first-layer width
    /// x 4 bytes).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    block_hours: u32,
    /// Record the run (bars, decisions, orders, fills, equity) in this SQLite
    /// store, as `trader run` does. Default: in memory (faster; nothing kept
    /// beyond the files of --out).
    #[arg(long)]
    store: Option<PathBuf>,
}

/// What one backtest runs.
pub(crate) struct Plan<'a> {
    pub(crate) profile: &'a Profile,
    pub(crate) bars: BTreeMap<Symbol, Vec<Bar>>,
    /// Hours with bars of every symbol.
    pub(crate) hours: &'a [i64],
    /// The hours decided.
    pub(crate) decided: &'a [i64],
    /// `Some(block)`: the batched first layer, `block` hours at a time.
    pub(crate) block_hours: Option<usize>,
    pub(crate) progress: bool,
    /// `Some(path)`: records in this SQLite store; else in memory.
    pub(crate) store: Option<&'a std::path::Path>,
}

/// What one backtest produced.
pub(crate) struct Output {
    pub(crate) metrics: Metrics,
    pub(crate) equity_csv: String,
    pub(crate) decisions_csv: String,
    /// Decision latencies, microseconds, in order.
    pub(crate) latencies_us: Vec<u64>,
    /// Time in batched first layers (us) and the hours they covered.
    pub(crate) projection_us: u64,
    pub(crate) projected_hours: u64,
}

/// How a backtest runs the first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Forward {
    Batched,
    Plain,
}

/// The backtest's figures. Field order is the JSON's order.
#[derive(Debug, Serialize)]
pub(crate) struct Metrics {
    profile: String,
    from: String,
    to: String,
    hours: usize,
    decisions: u64,
    skipped: u64,
    pub(crate) orders: u64,
    fills: u64,
    equity_start: f64,
    equity_end: f64,
    pub(crate) total_return: f64,
    annualised_return: f64,
    annualised_volatility: f64,
    pub(crate) sharpe: f64,
    sortino: f64,
    max_drawdown: f64,
    max_drawdown_peak: String,
    max_drawdown_trough: String,
    turnover: f64,
    fees_paid: f64,
    exposure: f64,
    buy_and_hold_return: f64,
    buy_and_hold_max_drawdown: f64,
}

fn parse_time(flag: &str, s: &str) -> anyhow::Result<i64> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("{flag} {s:?} is not an RFC 3339 time"))?
        .timestamp())
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

/// Loads the profile's symbols from `dir` (the one loader: validated,
/// sorted), checking the set matches.
pub(crate) fn load_bars(
    profile: &Profile,
    dir: &std::path::Path,
) -> anyhow::Result<BTreeMap<Symbol, Vec<Bar>>> {
    trader_recorded::read_recorded_symbols(
        dir,
        &profile.symbols,
        trader_core::Clock::now(&trader_core::SystemClock),
    )
    .with_context(|| format!("profile {} cannot be backtested", profile.name))
}

/// Each symbol's bars at `hours` only (sorted).
pub(crate) fn at_hours(
    bars: &BTreeMap<Symbol, Vec<Bar>>,
    hours: &[i64],
) -> BTreeMap<Symbol, Vec<Bar>> {
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
pub(crate) fn common_hours(bars: &BTreeMap<Symbol, Vec<Bar>>) -> Vec<i64> {
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

pub(crate) fn run(a: &BacktestArgs, config_dir: &std::path::Path) -> anyhow::Result<Outcome> {
    // The checks of `trader run`, before any bar or model is loaded.
    let profile = match gate("backtest", &a.profile, None, config_dir)? {
        Gate::Fits(admitted) => admitted.inputs.profile,
        Gate::Refused => return Ok(Outcome::Refused),
    };
    let bars = load_bars(&profile, &a.data)?;
    let hours = common_hours(&bars);
    let history = i64::from(profile.history_hours) * HOUR_SECS;
    let first_possible = hours.first().map_or(i64::MAX, |t| t + history);
    let from = match &a.from {
        Some(s) => parse_time("--from", s)?,
        None => first_possible,
    };
    let to = match &a.to {
        Some(s) => parse_time("--to", s)?,
        None => hours.last().copied().unwrap_or(i64::MIN),
    };
    let decided: Vec<i64> = hours
        .iter()
        .copied()
        .filter(|t| (from..=to).contains(t))
        .collect();
    if decided.is_empty() {
        bail!(
            "no hour with bars of every symbol between {} and {} in {}",
            format_time(from),
            format_time(to),
            a.data.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = std::time::Instant::now();
    let Output {
        metrics,
        equity_csv: equity_rows,
        decisions_csv: decision_rows,
        latencies_us: mut latencies,
        projection_us,
        projected_hours,
    } = runtime.block_on(backtest(Plan {
        profile: &profile,
        bars,
        hours: &hours,
        decided: &decided,
        block_hours: (a.forward == Forward::Batched).then_some(a.block_hours as usize),
        progress: true,
        store: a.store.as_deref(),
    }))?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(out) = &a.out {
        fs_err::create_dir_all(out)?;
        // All four staged, then renamed: a failure leaves the previous set.
        let mut files = Staged::default();
        files.add(
            &out.join("metrics.json"),
            serde_json::to_string_pretty(&metrics)? + "\n",
        )?;
        files.add(&out.join("equity.csv"), equity_rows)?;
        files.add(&out.join("decisions.csv"), decision_rows)?;
        // Measurements vary run to run: kept out of metrics.json.
        latencies.sort_unstable();
        let resources = serde_json::json!({
            "peak_rss_bytes": crate::run_cmd::peak_rss(),
            "decision_latency_us_p50": crate::run_cmd::percentile(&latencies, 0.5),
            "decision_latency_us_p99": crate::run_cmd::percentile(&latencies, 0.99),
            "forward": format!("{:?}", a.forward).to_lowercase(),
            "records": if a.store.is_some() { "sqlite" } else { "memory" },
            "projected_hours": projected_hours,
            "projection_us_per_hour": projection_us as f64 / (projected_hours as f64).max(1.0),
            "seconds": seconds,
            "decided_hours_per_second": decided.len() as f64 / seconds.max(1e-9),
        });
        files.add(
            &out.join("resources.json"),
            serde_json::to_string_pretty(&resources)? + "\n",
        )?;
        files.commit()?;
    }
    if a.json {
        output::print_json(&metrics)?;
    } else {
        output::print(&render(&metrics));
    }
    Ok(Outcome::Ok)
}

/// Runs a backtest with its records in the SQLite store of `plan.store`,
/// or in memory.
pub(crate) async fn backtest(plan: Plan<'_>) -> anyhow::Result<Output> {
    let first = plan.decided[0];
    // A backtest's clock: its run ends at the close of its last hour.
    let ended_at = plan.decided.last().map_or(first, |t| t + HOUR_SECS);
    match plan.store {
        Some(path) => {
            // The run's records only: the store's bar history is left alone.
            let store = Store::open(path, Some(plan.profile.history_hours)).await?;
            let run = store
                .start_run(
                    &plan.profile.name,
                    "backtest",
                    "{}",
                    RunMode::Backtest,
                    first,
                )
                .await?;
            let out = drive(plan, store.records_only(), run.run_id).await;
            let ended = match &out {
                Ok(_) => store.finish_run(run.run_id, ended_at).await,
                Err(e) => {
                    store
                        .fail_run(run.run_id, ended_at, &format!("{e:#}"), false)
                        .await
                }
            };
            store.close().await;
            ended?;
            out
        }
        None => drive(plan, MemoryRecorder::new(), 1).await,
    }
}

/// The backtest loop: the engine hour by hour over `plan`'s bars.
async fn drive<R: Recorder>(plan: Plan<'_>, records: R, run_id: i64) -> anyhow::Result<Output> {
    let Plan {
        profile,
        bars,
        hours,
        decided,
        block_hours,
        progress,
        store: _,
    } = plan;
    let first = decided[0];
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(first, 0).unwrap_or_default(),
    ));
    let at = |t: i64| -> BTreeMap<Symbol, Bar> {
        bars.iter()
            .filter_map(|(s, b)| {
                let i = b.binary_search_by_key(&t, |x| x.t).ok()?;
                Some((s.clone(), b[i]))
            })
            .collect()
    };
    let broker = PaperBroker::new(bars.clone(), 100_000.0, clock.clone());
    let ensemble = crate::run_cmd::load_ensemble(profile)?;
    let mut engine = Engine::new(
        broker,
        records,
        ensemble,
        EngineSetup::for_profile(profile, run_id, RunMode::Backtest),
    )
    .await?;
    // The window's history before the first decided hour.
    let history_from = first - i64::from(profile.history_hours) * HOUR_SECS;
    for t in hours
        .iter()
        .copied()
        .filter(|t| (history_from..first).contains(t))
    {
        engine.add_history(&at(t), t + HOUR_SECS).await?;
    }
    // The engine is fed the common hours only: the batched first layer
    // computes its windows from the same bars.
    let fed = at_hours(&bars, hours);
    let bar = if progress {
        indicatif::ProgressBar::new(decided.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut curve = Vec::with_capacity(decided.len());
    let mut exposure = Vec::with_capacity(decided.len());
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
        curve.push(account.equity);
        exposure.push(if account.equity > 0.0 {
            1.0 - account.cash / account.equity
        } else {
            0.0
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let bh = buy_and_hold(&bars, decided);
    let (metrics, equity_csv, decisions_csv) = report_files(
        engine.store(),
        run_id,
        &profile.name,
        decided,
        Hourly {
            curve: &curve,
            exposure: &exposure,
            buy_and_hold: &bh,
        },
    )
    .await?;
    Ok(Output {
        metrics,
        equity_csv,
        decisions_csv,
        latencies_us: engine.stats().latencies_us.clone(),
        projection_us: engine.stats().projection_us,
        projected_hours: engine.stats().projected_hours,
    })
}

/// Equal-weight buy-and-hold of every symbol from the first of `decided`'s
/// closes, as a multiple of the start, per hour.
pub(crate) fn buy_and_hold(bars: &BTreeMap<Symbol, Vec<Bar>>, decided: &[i64]) -> Vec<f64> {
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
pub(crate) struct Hourly<'a> {
    pub(crate) curve: &'a [f64],
    pub(crate) exposure: &'a [f64],
    pub(crate) buy_and_hold: &'a [f64],
}

/// The metrics of run `run_id` and its equity.csv and decisions.csv, with
/// its counts, fills and decisions read from its records (a backtest's, or
/// a live run's store).
pub(crate) async fn report_files<R: Recorder>(
    records: &R,
    run_id: i64,
    profile: &str,
    decided: &[i64],
    hourly: Hourly<'_>,
) -> anyhow::Result<(Metrics, String, String)> {
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
    decisions: Vec<(i64, String, String, Option<String>)>,
) -> (String, String) {
    let mut equity_csv = String::from("t,equity,buy_and_hold\n");
    for ((t, e), b) in decided.iter().zip(curve).zip(bh) {
        equity_csv += &format!("{},{e},{}\n", format_time(*t), b * equity_start);
    }
    let mut decisions_csv = String::from("t,aggregate,target_weights,skipped_reason\n");
    for (t, aggregate, targets, skipped) in decisions {
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
    pub(crate) fills: &'a [(f64, f64, f64)],
}

/// The metrics of a run over the `decided` hours.
fn summarize(
    profile: &str,
    decided: &[i64],
    run: &Run<'_>,
    counts: trader_store::RunCounts,
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
    let equity_start = 100_000.0;
    let equity_end = curve.last().copied().unwrap_or(equity_start);
    let total = equity_end / equity_start - 1.0;
    let n = curve.len() as f64;
    let traded: f64 = fills.iter().map(|(q, p, _)| q * p).sum();
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
        fees_paid: fills.iter().map(|(_, _, f)| f).sum(),
        exposure: exposure.iter().sum::<f64>() / n.max(1.0),
        buy_and_hold_return: bh.last().copied().unwrap_or(1.0) - 1.0,
        buy_and_hold_max_drawdown: drawdown(bh).0,
    }
}

fn render(m: &Metrics) -> String {
    format!(
        "trader backtest: profile {}, {} .. {} ({} hours)\n  \
         decisions {} ({} skipped), orders {}, fills {}\n  \
         equity {:.2} -> {:.2} USD: total {:+.2} %, annualised {:+.2} %, volatility {:.2} %\n  \
         Sharpe {:.2}, Sortino {:.2}, max drawdown {:.2} % ({} -> {})\n  \
         turnover {:.2}x, fees {:.2} USD, exposure {:.1} %\n  \
         buy and hold: {:+.2} %, max drawdown {:.2} %\n",
        m.profile,
        m.from,
        m.to,
        m.hours,
        m.decisions,
        m.skipped,
        m.orders,
        m.fills,
        m.equity_start,
        m.equity_end,
        m.total_return * 100.0,
        m.annualised_return * 100.0,
        m.annualised_volatility * 100.0,
        m.sharpe,
        m.sortino,
        m.max_drawdown * 100.0,
        m.max_drawdown_peak,
        m.max_drawdown_trough,
        m.turnover,
        m.fees_paid,
        m.exposure * 100.0,
        m.buy_and_hold_return * 100.0,
        m.buy_and_hold_max_drawdown * 100.0
    )
}

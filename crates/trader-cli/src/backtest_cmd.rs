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
use trader_config::Profile;
use trader_core::{Bar, HOUR_SECS, ManualClock, PAPER_STARTING_CASH, Symbol, format_time};
use trader_engine::{
    BacktestSpan, Engine, EngineSetup, Hourly, Metrics, buy_and_hold, common_hours, report_files,
    run_backtest,
};
use trader_sim::PaperBroker;
use trader_store::{MemoryRecorder, Recorder, RunMode, Store};

use crate::gate::{Gate, gate};
use crate::{Outcome, output};
use trader_files::Staged;

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
        Some(s) => crate::args::parse_time("--from", s)?,
        None => first_possible,
    };
    let to = match &a.to {
        Some(s) => crate::args::parse_time("--to", s)?,
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
            "peak_rss_bytes": trader_budget::own_memory().peak,
            "decision_latency_us_p50": trader_core::nearest_rank(&latencies, 0.5).unwrap_or(0),
            "decision_latency_us_p99": trader_core::nearest_rank(&latencies, 0.99).unwrap_or(0),
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

/// The backtest loop of the engine over `plan`'s bars, against the
/// simulator's paper broker in process; then its report.
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
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(decided[0], 0).unwrap_or_default(),
    ));
    let broker = PaperBroker::new(bars.clone(), PAPER_STARTING_CASH, clock.clone());
    let ensemble = trader_engine::load_ensemble(profile)?;
    let mut engine = Engine::new(
        broker,
        records,
        ensemble,
        EngineSetup::for_profile(profile, run_id, RunMode::Backtest),
    )
    .await?;
    let bar = if progress {
        indicatif::ProgressBar::new(decided.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let curve = run_backtest(
        &mut engine,
        &clock,
        BacktestSpan {
            bars: &bars,
            hours,
            decided,
            block_hours,
            history_hours: profile.history_hours,
        },
        || bar.inc(1),
    )
    .await?;
    bar.finish_and_clear();
    let bh = buy_and_hold(&bars, decided);
    let (metrics, equity_csv, decisions_csv) = report_files(
        engine.store(),
        run_id,
        &profile.name,
        decided,
        Hourly {
            curve: &curve.equity,
            exposure: &curve.exposure,
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

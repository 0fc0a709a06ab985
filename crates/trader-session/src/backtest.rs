//! `trader backtest`'s session after the budget gate: the engine of
//! `trader run`, fed hour by hour from recorded bars
//! ([`trader_engine::run_backtest`]), trading the simulator's fill model in
//! process ([`PaperBroker`]), its records in memory or in a SQLite store;
//! then the report and, with an output directory, its files
//! ([`crate::out`]). Deterministic: the same inputs give the same metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::DateTime;
use trader_config::Profile;
use trader_core::{
    Bar, HOUR_SECS, ManualClock, PAPER_STARTING_CASH, StoreLocation, Symbol, format_time,
};
use trader_engine::{
    BacktestSpan, Engine, EngineSetup, Hourly, Metrics, buy_and_hold, common_hours, report_files,
    run_backtest,
};
use trader_sim::PaperBroker;
use trader_store::{MemoryRecorder, Recorder, RunMode, Store};

/// The settings of one `trader backtest`, as its flags give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacktestRequest {
    /// Recorded set (one CSV per symbol).
    pub data: PathBuf,
    /// First hour decided, epoch seconds (default: as soon as the history fits).
    pub from: Option<i64>,
    /// Last hour decided (default: the last common bar).
    pub to: Option<i64>,
    /// `Some(block)`: the batched first layer, `block` hours at a time;
    /// None: every hour's whole state through the ensemble.
    pub block_hours: Option<usize>,
    /// `Some(path)`: records in this SQLite store; else in memory.
    pub store: Option<StoreLocation>,
    /// Write metrics.json, equity.csv, decisions.csv and resources.json here.
    pub out: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What one backtest runs.
pub struct Plan<'a> {
    pub profile: &'a Profile,
    pub bars: BTreeMap<Symbol, Vec<Bar>>,
    /// Hours with bars of every symbol.
    pub hours: &'a [i64],
    /// The hours decided.
    pub decided: &'a [i64],
    /// `Some(block)`: the batched first layer, `block` hours at a time.
    pub block_hours: Option<usize>,
    pub progress: bool,
    /// `Some(path)`: records in this SQLite store; else in memory.
    pub store: Option<&'a StoreLocation>,
}

/// What one backtest produced.
#[derive(Debug)]
pub struct Output {
    pub metrics: Metrics,
    pub equity_csv: String,
    pub decisions_csv: String,
    /// Decision latencies, microseconds, in order.
    pub latencies_us: Vec<u64>,
    /// Time in batched first layers (us) and the hours they covered.
    pub projection_us: u64,
    pub projected_hours: u64,
    /// Projected hours decided ahead with the next ones (nothing traded).
    pub decided_ahead: u64,
}

/// Loads the profile's symbols from `dir` (the one loader: validated,
/// sorted), checking the set matches.
pub fn load_bars(profile: &Profile, dir: &Path) -> anyhow::Result<BTreeMap<Symbol, Vec<Bar>>> {
    trader_recorded::read_recorded_symbols(
        dir,
        &profile.symbols,
        trader_core::Clock::now(&trader_core::SystemClock),
    )
    .with_context(|| format!("profile {} cannot be backtested", profile.name))
}

/// The whole backtest of `profile` as `request` asks: bars, the hours
/// decided, the run, the files of `request.out`; returns its metrics.
pub async fn session(profile: &Profile, request: &BacktestRequest) -> anyhow::Result<Metrics> {
    let bars = load_bars(profile, &request.data)?;
    let hours = common_hours(&bars);
    let history = i64::from(profile.history_hours) * HOUR_SECS;
    let first_possible = hours.first().map_or(i64::MAX, |t| t + history);
    let from = request.from.unwrap_or(first_possible);
    let to = request
        .to
        .unwrap_or_else(|| hours.last().copied().unwrap_or(i64::MIN));
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
            request.data.display()
        );
    }
    let started = std::time::Instant::now();
    let output = backtest(Plan {
        profile,
        bars,
        hours: &hours,
        decided: &decided,
        block_hours: request.block_hours,
        progress: request.progress,
        store: request.store.as_ref(),
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(out) = &request.out {
        crate::out::write_files(
            out,
            &output,
            &crate::out::RunFacts {
                batched: request.block_hours.is_some(),
                records: match &request.store {
                    None => "memory",
                    Some(StoreLocation::Sqlite(_)) => "sqlite",
                    Some(StoreLocation::Postgres(_)) => "postgres",
                },
                seconds,
                decided_hours: decided.len(),
            },
        )?;
    }
    Ok(output.metrics)
}

/// Runs a backtest with its records in the SQLite store of `plan.store`,
/// or in memory.
pub async fn backtest(plan: Plan<'_>) -> anyhow::Result<Output> {
    let Some(&first) = plan.decided.first() else {
        bail!("a backtest needs at least one hour to decide");
    };
    // A backtest's clock: its run ends at the close of its last hour.
    let ended_at = plan.decided.last().map_or(first, |t| t + HOUR_SECS);
    match plan.store {
        Some(location) => {
            // The run's records only: the store's bar history is left alone.
            let store = Store::open(location, Some(plan.profile.history_hours)).await?;
            let run = store
                .start_run(
                    &plan.profile.name,
                    "backtest",
                    "{}",
                    RunMode::Backtest,
                    first,
                )
                .await?;
            let out = drive(plan, store.records_only(), first, run.run_id).await;
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
        None => drive(plan, MemoryRecorder::new(), first, 1).await,
    }
}

/// The backtest loop of the engine over `plan`'s bars from hour `first`,
/// against the simulator's paper broker in process; then its report.
async fn drive<R: Recorder>(
    plan: Plan<'_>,
    records: R,
    first: i64,
    run_id: i64,
) -> anyhow::Result<Output> {
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
        DateTime::from_timestamp(first, 0).unwrap_or_default(),
    ));
    let broker = PaperBroker::new(bars.clone(), PAPER_STARTING_CASH, clock.clone());
    let (ensemble, _) = trader_engine::load_ensemble(profile)?;
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
        decided_ahead: engine.stats().decided_ahead,
    })
}

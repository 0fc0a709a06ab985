//! `trader train`: the hyperparameter search. The parent process gates the
//! worker count with the budgeter, then runs `trader_train::run_search`
//! with W worker processes (each `trader train --worker-trial K`, one
//! trial, `--threads-per-worker` threads), which records each finished
//! trial and rewrites `ensemble_params.json` atomically after each one. A
//! worker runs `trader_train::run_trial`: it trains in
//! `OUT/.staging/trial_K/`, scores the member with the engine's backtest on
//! the validation span, and renames the member directory into `OUT/` only
//! when it is complete; a restart (`trader_train::Resumed`) clears
//! `.staging` and runs the trials not yet in `OUT/`. Settings, resume,
//! scheduling and the trial are trader-train's; this module has the flags,
//! the worker gate, the processes and the printing.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use trader_budget::{RUNTIME_BASE_RSS, TRADING_LOOP_RSS};
use trader_core::Clock as _;
use trader_core::Symbol;
use trader_train::{
    LaunchError, Launcher, Progress, Resumed, SearchPlan, SearchSettings, SearchSummary,
    TrainingBars, TrialResult, TrialSpec, WorkerFailure, run_search, run_trial,
    training_demand_bytes, trial_dir_name,
};

use crate::{Outcome, output};

#[derive(Debug, Clone, Args)]
pub(crate) struct TrainArgs {
    /// Recorded set (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    data: PathBuf,
    /// Trials of the search (trial numbers 0..N).
    #[arg(long)]
    trials: u32,
    /// Worker processes running trials at once.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Output ensemble directory (created; an existing search there resumes).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the search: trial K's hyperparameters and weights follow from (seed, K).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The profile the ensemble is for (name in CONFIG_DIR or a TOML path):
    /// its symbols, its history_hours as the members' limit, and its
    /// [trading] settings in the validation backtest.
    #[arg(long, default_value = "lean")]
    profile: String,
    /// Symbols traded, comma-separated (default: the profile's).
    #[arg(long, value_delimiter = ',')]
    symbols: Option<Vec<Symbol>>,
    /// Last hour whose data (features and target) trains, RFC 3339.
    #[arg(long, default_value = "2018-03-31T23:00:00Z")]
    train_until: String,
    /// Last hour of the validation span that scores (after --train-until), RFC 3339.
    #[arg(long, default_value = "2018-06-30T23:00:00Z")]
    valid_until: String,
    /// Every member's required history stays within this (default: the
    /// profile's history_hours, 72 for lean).
    #[arg(long)]
    max_history_hours: Option<u32>,
    /// Most epochs a trial trains.
    #[arg(long, default_value_t = 12)]
    max_epochs: u32,
    /// Threads of each worker's matmuls.
    #[arg(long, default_value_t = 1)]
    threads_per_worker: u32,
    /// Host file (RAM envelope and co-tenants); default CONFIG_DIR/host.toml.
    #[arg(long)]
    host: Option<PathBuf>,
    /// `top_n` suggested in ensemble_params.json.
    #[arg(long, default_value_t = 10)]
    top_n: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Internal: run one trial in this process and print its result.
    #[arg(long, hide = true)]
    worker_trial: Option<u32>,
}

pub(crate) fn run(a: &TrainArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let train_until = crate::args::parse_time("--train-until", &a.train_until)?;
    let valid_until = crate::args::parse_time("--valid-until", &a.valid_until)?;
    if valid_until <= train_until {
        bail!(
            "--valid-until {} must be after --train-until {}",
            a.valid_until,
            a.train_until
        );
    }
    if a.trials == 0 || a.workers == 0 {
        bail!("--trials and --workers must be at least 1");
    }
    let settings = SearchSettings::resolve(
        &a.profile,
        config_dir,
        a.symbols.as_deref(),
        a.max_history_hours,
        a.max_epochs,
    )?;
    if let Some(trial) = a.worker_trial {
        return worker(a, &settings, trial, train_until, valid_until);
    }
    let data = TrainingBars::load(&a.data, &settings.symbols, trader_core::SystemClock.now())?;
    let rows = data.span_rows(train_until, valid_until);
    if rows.valid == 0 {
        bail!(
            "no hour with bars of every symbol between --train-until {} and --valid-until {} in {}",
            a.train_until,
            a.valid_until,
            a.data.display()
        );
    }
    let predicted = RUNTIME_BASE_RSS
        + TRADING_LOOP_RSS
        + training_demand_bytes(rows.train, settings.symbols.len(), settings.space);
    if let Some(refusal) = gate_workers(a, predicted, config_dir)? {
        output::eprint(&refusal);
        return Ok(Outcome::Refused);
    }
    let resumed = Resumed::prepare(&a.out, a.trials, a.top_n)?;
    let plan = SearchPlan {
        out: a.out.clone(),
        trials: a.trials,
        workers: a.workers,
        top_n: a.top_n,
        predicted_worker_rss_bytes: predicted,
    };
    let mut workers = Processes {
        args: a,
        settings: &settings,
    };
    let summary =
        run_search(&plan, resumed, &mut workers, progress).map_err(anyhow::Error::from_boxed)?;
    if a.json {
        output::print_json(&summary)?;
    } else {
        output::print(&render(&summary));
    }
    if summary.failed.is_empty() {
        Ok(Outcome::Ok)
    } else {
        bail!(
            "{} trial(s) failed: {}",
            summary.failed.len(),
            summary.failed.join("; ")
        )
    }
}

/// The budgeter's check of the worker count: RAM of W workers plus the host
/// file's other co-tenants against the allowed share of the machine.
/// `Some(message)` when refused, naming how many would fit.
fn gate_workers(
    a: &TrainArgs,
    worker_bytes: u64,
    config_dir: &Path,
) -> anyhow::Result<Option<String>> {
    let room = trader_budget::resolve_worker_room(a.host.as_deref(), config_dir, worker_bytes)?;
    if room.fits(a.workers) {
        return Ok(None);
    }
    let fit = room.fit;
    let mb = |b: u64| b as f64 / 1e6;
    Ok(Some(format!(
        "trader train: REFUSED: {w} workers x {each:.1} MB predicted = {need:.1} MB, but RAM \
         {total:.1} MB ({source}) x {percent} % = {allowed:.1} MB less {others:.1} MB of other \
         co-tenants leaves {room:.1} MB: {fit} worker(s) fit{hint}\n",
        w = a.workers,
        each = mb(worker_bytes),
        need = mb(worker_bytes * u64::from(a.workers)),
        total = mb(room.limit.machine_total),
        source = room.limit.source,
        percent = room.limit.allowed_percent,
        allowed = mb(room.allowed),
        others = mb(room.others),
        room = mb(room.room),
        hint = if fit > 0 {
            format!(" (--workers {fit})")
        } else {
            String::new()
        },
    )))
}

/// Workers as processes of this binary: `trader train ... --worker-trial K`
/// with `--threads-per-worker` matmul threads, its result on its last
/// stdout line.
struct Processes<'a> {
    args: &'a TrainArgs,
    settings: &'a SearchSettings,
}

impl Launcher for Processes<'_> {
    type Worker = Child;

    fn launch(&mut self, trial: u32, _slot: u32) -> Result<Child, LaunchError> {
        spawn(self.args, self.settings, trial).map_err(Into::into)
    }

    fn has_ended(&mut self, child: &mut Child) -> Result<bool, LaunchError> {
        Ok(child.try_wait()?.is_some())
    }

    fn collect(&mut self, mut child: Child) -> Result<TrialResult, WorkerFailure> {
        let status = child
            .wait()
            .map_err(|e| WorkerFailure::Failed(e.to_string()))?;
        let mut last = String::new();
        if let Some(out) = child.stdout.take() {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                last = line;
            }
        }
        if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
            return Err(WorkerFailure::Interrupted { signal });
        }
        if !status.success() {
            return Err(WorkerFailure::Failed(format!(
                "worker exited with {status}"
            )));
        }
        serde_json::from_str(&last)
            .map_err(|e| WorkerFailure::Failed(format!("unreadable worker result {last:?}: {e}")))
    }
}

fn spawn(a: &TrainArgs, settings: &SearchSettings, trial: u32) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the trader binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("train")
        .arg("--data")
        .arg(&a.data)
        .args(["--trials", &a.trials.to_string()])
        .args(["--workers", &a.workers.to_string()])
        .arg("--out")
        .arg(&a.out)
        .args(["--seed", &a.seed.to_string()])
        .arg("--profile")
        .arg(&settings.profile.path)
        .args(["--symbols", &join_symbols(&settings.symbols)])
        .args([
            "--train-until",
            &a.train_until,
            "--valid-until",
            &a.valid_until,
        ])
        .args([
            "--max-history-hours",
            &settings.space.max_history_hours.to_string(),
        ])
        .args(["--max-epochs", &a.max_epochs.to_string()])
        .args(["--worker-trial", &trial.to_string()])
        .env("RAYON_NUM_THREADS", a.threads_per_worker.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    cmd.spawn()
        .with_context(|| format!("starting the worker of trial {trial}"))
}

fn join_symbols(symbols: &[Symbol]) -> String {
    symbols
        .iter()
        .map(Symbol::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn progress(p: &Progress<'_>) {
    let best = p
        .best
        .map_or(String::new(), |b| format!("{} {:.3}", b.dir, b.score));
    output::eprint(&format!(
        "[{}/{}] {} on worker {}: Sharpe {:.3} ({:.1} s, {:.1} MB) | {:.0} trials/h, best {best}\n",
        p.done,
        p.trials,
        trial_dir_name(p.result.trial),
        p.slot,
        p.result.score,
        p.result.seconds,
        p.result.peak_rss_bytes as f64 / 1e6,
        p.trials_per_hour,
    ));
}

fn render(s: &SearchSummary) -> String {
    let mut text = format!(
        "trader train: {} of {} trials in {} ({} before this run), {} failed\n  \
         {} workers, {:.1} s, {:.1} trials/h; best {}\n  \
         predicted RSS per worker {:.1} MB\n",
        s.done,
        s.trials,
        s.out,
        s.done_before,
        s.failed.len(),
        s.workers,
        s.seconds,
        s.trials_per_hour,
        s.best
            .as_ref()
            .map_or("-".to_owned(), |(d, v)| format!("{d} (Sharpe {v:.3})")),
        s.predicted_worker_rss_bytes as f64 / 1e6,
    );
    for w in &s.per_worker {
        text += &format!(
            "  worker {}: {} trials, {:.1} s busy, peak RSS {:.1} MB\n",
            w.worker,
            w.trials,
            w.busy_seconds,
            w.peak_rss_bytes as f64 / 1e6
        );
    }
    text
}

/// One trial, in a worker process: the library's trial (train, stage,
/// validate, move into place) on a single-threaded runtime, its result
/// printed as the last stdout line.
fn worker(
    a: &TrainArgs,
    settings: &SearchSettings,
    trial: u32,
    train_until: i64,
    valid_until: i64,
) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run_trial(
        TrialSpec {
            settings,
            data: &a.data,
            now: trader_core::SystemClock.now(),
            out: &a.out,
            seed: a.seed,
            trial,
            train_until,
            valid_until,
        },
        || trader_budget::own_memory().peak,
    ))?;
    output::print(&(serde_json::to_string(&result)? + "\n"));
    Ok(Outcome::Ok)
}

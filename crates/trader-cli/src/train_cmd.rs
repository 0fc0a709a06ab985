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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use clap::Args;
use trader_budget::{DemandSource, GovernedWorker, GovernorCounts, GovernorDemand, GovernorState};
use trader_budget::{RUNTIME_BASE_RSS, TRADING_LOOP_RSS};
use trader_core::Clock as _;
use trader_core::Symbol;
use trader_governor::{AlertLines, Demand, Governor, GovernorSettings, GovernorStats};
use trader_monitor::{TrainMetrics, TrainSample};
use trader_train::{
    Governance, GovernorView, Progress, Resumed, SearchPlan, SearchSettings, SearchSummary,
    TrainingBars, TrialSpec, run_shared_search, run_trial, training_demand_bytes, trial_dir_name,
};

use crate::train_workers::{MachineProbe, Workers};
use crate::{Outcome, output};

#[derive(Debug, Clone, Args)]
pub(crate) struct TrainArgs {
    /// Recorded set (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    pub(crate) data: PathBuf,
    /// Trials of the search (trial numbers 0..N).
    #[arg(long)]
    pub(crate) trials: u32,
    /// Worker processes at once: N (checked against the budget at start,
    /// then governed), or `auto`: as many as the memory the machine has now
    /// admits, at most one per CPU (per `--threads-per-worker`).
    #[arg(long, default_value = "1", value_parser = parse_workers)]
    pub(crate) workers: WorkerCount,
    /// Fewer workers running than this raises an alert.
    #[arg(long, default_value_t = 1)]
    pub(crate) min_workers: u32,
    /// Supervise copies of the command after `--` instead of this binary's
    /// trials: each run is one trial (`TRADER_TRIAL`), in a worker slot
    /// (`TRADER_WORKER_ID`); a non-zero exit runs it again after a back-off.
    #[arg(long, requires = "command")]
    pub(crate) exec: bool,
    /// With `--exec`: one worker's RSS until one has been measured (default:
    /// the host file's "training-worker" tenant, else 1 GB).
    #[arg(long)]
    pub(crate) worker_rss: Option<trader_core::ByteSize>,
    /// Govern the workers within a pool of this much RAM, counting only
    /// their own RSS (default: the whole machine's RAM in use against the
    /// host file's limit).
    #[arg(long)]
    pub(crate) ram_pool: Option<trader_core::ByteSize>,
    /// Serve the governor's metrics on 127.0.0.1:PORT/metrics (0: any free
    /// port; the URL is logged).
    #[arg(long)]
    pub(crate) metrics_port: Option<u16>,
    /// The command of `--exec`, after `--`.
    #[arg(last = true)]
    pub(crate) command: Vec<String>,
    /// Output ensemble directory (created; an existing search there resumes).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Seed of the search: trial K's hyperparameters and weights follow from (seed, K).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// The profile the ensemble is for (name in CONFIG_DIR or a TOML path):
    /// its symbols, its history_hours as the members' limit, and its
    /// [trading] settings in the validation backtest.
    #[arg(long, default_value = "lean")]
    pub(crate) profile: String,
    /// Symbols traded, comma-separated (default: the profile's).
    #[arg(long, value_delimiter = ',')]
    pub(crate) symbols: Option<Vec<Symbol>>,
    /// Last hour whose data (features and target) trains, RFC 3339.
    #[arg(long, default_value = "2018-03-31T23:00:00Z")]
    pub(crate) train_until: String,
    /// Last hour of the validation span that scores (after --train-until), RFC 3339.
    #[arg(long, default_value = "2018-06-30T23:00:00Z")]
    pub(crate) valid_until: String,
    /// Every member's required history stays within this (default: the
    /// profile's history_hours, 72 for lean).
    #[arg(long)]
    pub(crate) max_history_hours: Option<u32>,
    /// Most epochs a trial trains.
    #[arg(long, default_value_t = 12)]
    pub(crate) max_epochs: u32,
    /// Threads of each worker's matmuls.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads_per_worker: u32,
    /// Host file (RAM envelope and co-tenants); default CONFIG_DIR/host.toml.
    #[arg(long)]
    pub(crate) host: Option<PathBuf>,
    /// `top_n` suggested in ensemble_params.json.
    #[arg(long, default_value_t = 10)]
    pub(crate) top_n: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Share the search with other hosts through this PostgreSQL database:
    /// trials are claimed from it (a host that dies gives its trial back),
    /// results, ranks and members are stored there, and the database's
    /// ranking is materialised into --out after each finished trial.
    #[arg(long, value_parser = trader_config::parse_store_arg, conflicts_with = "exec")]
    pub(crate) queue: Option<trader_core::StoreLocation>,
    /// With --queue: the shared search's name (default PROFILE-seedSEED);
    /// every host of one search must give the same settings.
    #[arg(long, requires = "queue")]
    pub(crate) search: Option<String>,
    /// Internal: run one trial in this process and print its result.
    #[arg(long, hide = true)]
    pub(crate) worker_trial: Option<u32>,
}

/// `--workers`: a count, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerCount {
    Fixed(u32),
    Auto,
}

fn parse_workers(text: &str) -> Result<WorkerCount, String> {
    if text == "auto" {
        return Ok(WorkerCount::Auto);
    }
    match text.parse::<u32>() {
        Ok(0) | Err(_) => Err(format!(
            "{text:?} is neither `auto` nor a number of workers of at least 1"
        )),
        Ok(n) => Ok(WorkerCount::Fixed(n)),
    }
}

impl TrainArgs {
    /// The most workers at once: `--workers N`, or for `auto` one per CPU
    /// per `--threads-per-worker` (more would only share the cores).
    fn max_workers(&self) -> u32 {
        match self.workers {
            WorkerCount::Fixed(n) => n,
            WorkerCount::Auto => {
                let cpus = std::thread::available_parallelism()
                    .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
                (cpus / self.threads_per_worker.max(1)).max(1)
            }
        }
    }
}

pub(crate) fn run(a: &TrainArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    if a.trials == 0 {
        bail!("--trials must be at least 1");
    }
    if a.min_workers > a.max_workers() {
        bail!(
            "--min-workers {} is more than the {} workers that may run at once",
            a.min_workers,
            a.max_workers()
        );
    }
    if a.exec {
        return run_exec(a, config_dir);
    }
    let train_until = crate::args::parse_time("--train-until", &a.train_until)?;
    let valid_until = crate::args::parse_time("--valid-until", &a.valid_until)?;
    if valid_until <= train_until {
        bail!(
            "--valid-until {} must be after --train-until {}",
            a.valid_until,
            a.train_until
        );
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
    if let WorkerCount::Fixed(workers) = a.workers
        && let Some(refusal) = gate_workers(a, workers, predicted, config_dir)?
    {
        output::eprint(&refusal);
        return Ok(Outcome::Refused);
    }
    let mut resumed = Resumed::prepare(&a.out, a.trials, a.top_n)?;
    let mut shared = match &a.queue {
        Some(location) => {
            let (q, from_queue) = join_queue(a, &settings, location)?;
            resumed = from_queue;
            Some(q)
        }
        None => None,
    };
    let plan = SearchPlan {
        out: a.out.clone(),
        trials: a.trials,
        workers: a.max_workers(),
        top_n: a.top_n,
        predicted_worker_rss_bytes: predicted,
        retries: 0,
        write_ensemble: true,
    };
    let workers = Workers::Trials {
        args: a,
        settings: &settings,
    };
    let host = trader_budget::resolve_host(a.host.as_deref(), config_dir, false)?;
    let searched = governed_search(
        a,
        &host,
        &plan,
        resumed,
        workers,
        shared
            .as_mut()
            .map(|q| q as &mut dyn trader_train::SharedTrials),
    );
    if let Some(mut q) = shared {
        // Other hosts may have finished after this one's last trial.
        if searched.is_ok()
            && let Err(e) = q.materialise()
        {
            tracing::warn!(error = %e, "the final ranking was not materialised");
        }
        q.close();
    }
    finish(a, &searched?)
}

/// `--queue`: joins the shared search (its name and the settings every
/// host must share) and materialises what other hosts finished; the queue
/// says what is left, for every host.
fn join_queue(
    a: &TrainArgs,
    settings: &SearchSettings,
    location: &trader_core::StoreLocation,
) -> anyhow::Result<(crate::train_queue::HostQueue, Resumed)> {
    let name = a
        .search
        .clone()
        .unwrap_or_else(|| format!("{}-seed{}", settings.profile.name, a.seed));
    let id = crate::train_queue::SearchIdentity {
        name: &name,
        settings_json: serde_json::json!({
            "profile": settings.profile.name,
            "symbols": settings.symbols.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "space": format!("{:?}", settings.space),
            "train_until": a.train_until,
            "valid_until": a.valid_until,
            "seed": a.seed,
        })
        .to_string(),
        trials: a.trials,
        top_n: a.top_n,
    };
    let mut q = crate::train_queue::HostQueue::join(location, &id, &a.out)?;
    let resumed = Resumed {
        finished: q.materialise().map_err(anyhow::Error::from_boxed)?,
        todo: Vec::new(),
    };
    Ok((q, resumed))
}

/// `--exec -- CMD ARGS...`: trials 0..N, each one run of the command.
fn run_exec(a: &TrainArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    if a.command.is_empty() {
        bail!(
            "--exec needs the command after `--`: trader train --exec --trials N --out DIR -- CMD ARGS..."
        );
    }
    fs_err::create_dir_all(&a.out)?;
    let host = trader_budget::resolve_host(a.host.as_deref(), config_dir, false)?;
    let declared = host
        .tenants
        .iter()
        .find(|t| t.name == trader_budget::WORKER_TENANT)
        .map(|t| t.ram_each)
        .filter(|&b| b > 0);
    let predicted = a
        .worker_rss
        .map(|b| b.0)
        .or(declared)
        .unwrap_or(EXEC_WORKER_RSS_DEFAULT);
    let plan = SearchPlan {
        out: a.out.clone(),
        trials: a.trials,
        workers: a.max_workers(),
        top_n: a.top_n,
        predicted_worker_rss_bytes: predicted,
        retries: EXEC_RETRIES,
        write_ensemble: false,
    };
    let resumed = Resumed {
        finished: Vec::new(),
        todo: (0..a.trials).collect(),
    };
    let workers = Workers::Exec {
        command: &a.command,
    };
    finish(
        a,
        &governed_search(a, &host, &plan, resumed, workers, None)?,
    )
}

/// An `--exec` worker's demand without `--worker-rss` or a host tenant.
const EXEC_WORKER_RSS_DEFAULT: u64 = 1_000_000_000;
/// Runs of a failing `--exec` trial after the first.
const EXEC_RETRIES: u32 = 5;

/// The search with the governor: the host's envelope and alert lines, this
/// machine read every poll.
fn governed_search(
    a: &TrainArgs,
    host: &trader_budget::HostBudget,
    plan: &SearchPlan,
    resumed: Resumed,
    mut workers: Workers<'_>,
    shared: Option<&mut dyn trader_train::SharedTrials>,
) -> anyhow::Result<SearchSummary> {
    let limit = &host.envelope.ram;
    let hard_percent = trader_config::hard_ram_percent(
        host.alerts.and_then(|alerts| alerts.ram_percent),
        limit.allowed_percent,
    );
    // With a pool, the hard line is as far above it as the host's is above
    // its limit.
    let (limit_bytes, hard_limit) = match a.ram_pool {
        Some(pool) => (
            pool.0,
            (pool.0 as f64 * hard_percent / limit.allowed_percent.max(1e-9)) as u64,
        ),
        None => (
            limit.allowed(),
            (limit.machine_total as f64 * hard_percent / 100.0) as u64,
        ),
    };
    let settings = GovernorSettings {
        limit: limit_bytes,
        hard_limit,
        max_workers: plan.workers,
        min_workers: a.min_workers,
        predicted_worker: plan.predicted_worker_rss_bytes,
        margin_percent: MEASURED_MARGIN_PERCENT,
        terminate_after_ms: TERMINATE_AFTER_MS,
        alerts: AlertLines {
            process_rss: host.alerts.map(|al| al.process_rss.0),
            min_trials_per_hour: host.alerts.and_then(|al| al.min_trials_per_hour),
            window_ms: 3_600_000,
            vram_percent: host.alerts.map(|al| al.vram_percent),
        },
    };
    tracing::info!(
        limit_mb = settings.limit as f64 / 1e6,
        hard_limit_mb = settings.hard_limit as f64 / 1e6,
        max_workers = settings.max_workers,
        min_workers = settings.min_workers,
        predicted_worker_mb = settings.predicted_worker as f64 / 1e6,
        "governor"
    );
    let clock = trader_core::SystemClock;
    let mut probe = MachineProbe {
        pool_only: a.ram_pool.is_some(),
        vram: None,
        gpu: matches!(
            trader_budget::probe_gpu(),
            trader_budget::GpuProbe::Found { .. }
        ),
    };
    let mut watch = Watch::start(a, &settings)?;
    let mut on_reading = |view: &GovernorView<'_>| watch.reading(view);
    let governance = Governance::new(
        Governor::new(settings, clock.now().timestamp_millis()),
        &mut probe,
        &clock,
        &mut on_reading,
    );
    let summary = run_shared_search(
        plan,
        resumed,
        &mut workers,
        progress,
        Some(governance),
        shared,
    )
    .map_err(anyhow::Error::from_boxed)?;
    watch.finish(&summary);
    Ok(summary)
}

/// Who watches the governor: its metrics (`--metrics-port`) and its state
/// file (`OUT/.governor.json`, read by `trader budget`).
struct Watch {
    /// The metrics and the runtime serving them (dropped at the end).
    metrics: Option<(Arc<Mutex<TrainMetrics>>, tokio::runtime::Runtime)>,
    state_path: PathBuf,
    limit: u64,
    hard_limit: u64,
    started: std::time::Instant,
    written: Option<std::time::Instant>,
    last: Option<GovernorState>,
}

impl Watch {
    fn start(a: &TrainArgs, settings: &GovernorSettings) -> anyhow::Result<Self> {
        let metrics = match a.metrics_port {
            None => None,
            Some(port) => {
                // `trader train` is synchronous: the endpoint runs on a
                // runtime of its own, one thread.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("train-metrics")
                    .enable_all()
                    .build()
                    .context("starting the metrics runtime")?;
                let m = Arc::new(Mutex::new(TrainMetrics::new()));
                let addr = runtime.block_on(trader_monitor::serve(Arc::clone(&m), port))?;
                tracing::info!(url = %format!("http://{addr}/metrics"), "metrics endpoint");
                Some((m, runtime))
            }
        };
        Ok(Watch {
            metrics,
            state_path: a.out.join(trader_budget::GOVERNOR_STATE_FILE),
            limit: settings.limit,
            hard_limit: settings.hard_limit,
            started: std::time::Instant::now(),
            written: None,
            last: None,
        })
    }

    fn reading(&mut self, view: &GovernorView<'_>) {
        let hours = self.started.elapsed().as_secs_f64() / 3600.0;
        let trials_per_hour = if hours > 0.0 {
            view.stats.trials_finished as f64 / hours
        } else {
            0.0
        };
        if let Some((m, _)) = &self.metrics
            && let Ok(mut m) = m.lock()
        {
            m.update(&TrainSample {
                active: view.active,
                paused: view.paused,
                queued: view.queued,
                reading: view.reading,
                stats: view.stats,
                demand: view.demand,
                trials_per_hour,
            });
        }
        self.last = Some(self.state(view));
        if self.written.is_none_or(|t| t.elapsed().as_millis() >= 1000) {
            self.write();
        }
    }

    fn state(&self, view: &GovernorView<'_>) -> GovernorState {
        let (source, peak) = match view.demand {
            Demand::Predicted { .. } => (DemandSource::Predicted, None),
            Demand::Measured { peak, .. } => (DemandSource::Measured, Some(peak)),
        };
        GovernorState {
            pid: std::process::id(),
            updated_ms: trader_core::SystemClock.now().timestamp_millis(),
            finished: false,
            active: view.active,
            paused: view.paused,
            queued: view.queued as u64,
            workers: view
                .workers
                .iter()
                .map(|w| GovernedWorker {
                    slot: w.id,
                    rss: w.rss,
                    peak: w.peak,
                    paused: w.paused,
                })
                .collect(),
            demand: GovernorDemand {
                source,
                bytes: view.demand.bytes(),
                peak,
            },
            used: view.reading.used,
            limit: self.limit,
            hard_limit: self.hard_limit,
            counts: counts(view.stats),
        }
    }

    /// The state file, whole (a failure is logged: the search goes on).
    fn write(&mut self) {
        let Some(state) = &self.last else {
            return;
        };
        self.written = Some(std::time::Instant::now());
        let written = serde_json::to_vec_pretty(state)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                let mut staged = trader_files::Staged::default();
                staged.add(&self.state_path, bytes)?;
                staged.commit()
            });
        if let Err(e) = written {
            tracing::warn!(error = %format!("{e:#}"), "the governor's state file was not written");
        }
    }

    /// The last state, marked finished (kept beside the ensemble: the
    /// search's last counts; `trader budget` only shows the state of a
    /// coordinator still running), and the metrics endpoint stopped.
    fn finish(mut self, summary: &SearchSummary) {
        if let Some(state) = &mut self.last {
            state.finished = true;
            state.updated_ms = trader_core::SystemClock.now().timestamp_millis();
            state.active = 0;
            state.paused = 0;
            state.workers.clear();
            if let Some(stats) = &summary.governor {
                state.counts = counts(stats);
            }
        }
        self.write();
        if let Some((_, runtime)) = self.metrics.take() {
            runtime.shutdown_background();
        }
    }
}

fn counts(stats: &GovernorStats) -> GovernorCounts {
    let owned = |m: &BTreeMap<&'static str, u64>| {
        m.iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<BTreeMap<String, u64>>()
    };
    GovernorCounts {
        admitted: stats.admitted,
        refused: owned(&stats.refused),
        pauses: stats.pauses,
        resumes: stats.resumes,
        terminations: stats.terminations,
        trials_finished: stats.trials_finished,
        alerts: owned(&stats.alerts),
    }
}

/// Measured peaks count with this margin (a worker's next trial may train
/// a larger net than the largest measured so far).
const MEASURED_MARGIN_PERCENT: u32 = 10;
/// Over the hard line this long with workers paused: one is terminated.
const TERMINATE_AFTER_MS: i64 = 30_000;

fn finish(a: &TrainArgs, summary: &SearchSummary) -> anyhow::Result<Outcome> {
    if a.json {
        output::print_json(summary)?;
    } else {
        output::print(&render(summary));
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
    workers: u32,
    worker_bytes: u64,
    config_dir: &Path,
) -> anyhow::Result<Option<String>> {
    let room = trader_budget::resolve_worker_room(a.host.as_deref(), config_dir, worker_bytes)?;
    if room.fits(workers) {
        return Ok(None);
    }
    let fit = room.fit;
    let mb = |b: u64| b as f64 / 1e6;
    Ok(Some(format!(
        "trader train: REFUSED: {w} workers x {each:.1} MB predicted = {need:.1} MB, but RAM \
         {total:.1} MB ({source}) x {percent} % = {allowed:.1} MB less {others:.1} MB of other \
         co-tenants leaves {room:.1} MB: {fit} worker(s) fit{hint}\n",
        w = workers,
        each = mb(worker_bytes),
        need = mb(worker_bytes * u64::from(workers)),
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
    text += &format!(
        "  at most {} workers at once; {} trial(s) queued again\n",
        s.max_concurrent_workers, s.requeued
    );
    if let Some(g) = &s.governor {
        text += &format!(
            "  governor: {} admitted, refused {:?}, {} pauses ({:.1} s paused), {} resumes, {} terminated, alerts {:?}\n",
            g.admitted,
            g.refused,
            g.pauses,
            g.paused_ms as f64 / 1e3,
            g.resumes,
            g.terminations,
            g.alerts
        );
    }
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

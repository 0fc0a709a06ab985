//! `trader train`: the hyperparameter search. The parent process gates the
//! worker count with the budgeter, then keeps W worker processes busy (each
//! `trader train --worker-trial K`, one trial, `--threads-per-worker`
//! threads), records each finished trial and rewrites `ensemble_params.json`
//! atomically after each one. A worker trains in `OUT/.staging/trial_K/`,
//! scores the member with the backtest engine on the validation span, and
//! renames the member directory into `OUT/` only when it is complete; a
//! restart clears `.staging` and runs the trials not yet in `OUT/`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use trader_budget::{RUNTIME_BASE_RSS, TRADING_LOOP_RSS, WORKER_TENANT, probe_memory};
use trader_config::{HostConfig, MemorySpec};
use trader_core::Clock as _;
use trader_core::{Bar, HOUR_SECS, Symbol, format_time};
use trader_train::{
    Dataset, FinishedTrial, HyperParams, SearchSpace, finished_trials, train_member,
    training_demand_bytes, trial_dir_name, write_ensemble_file, write_member,
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

/// What a worker prints on its last stdout line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrialResult {
    trial: u32,
    score: f64,
    seconds: f64,
    peak_rss_bytes: u64,
    train_rows: usize,
    final_loss: f32,
    validation_return: f64,
    validation_orders: u64,
}

/// The summary of one `trader train`.
#[derive(Debug, Serialize)]
struct Summary {
    out: String,
    trials: u32,
    done: usize,
    done_before: usize,
    failed: Vec<String>,
    workers: u32,
    seconds: f64,
    trials_per_hour: f64,
    best: Option<(String, f64)>,
    predicted_worker_rss_bytes: u64,
    per_worker: Vec<WorkerStats>,
}

#[derive(Debug, Default, Clone, Serialize)]
struct WorkerStats {
    worker: u32,
    trials: u32,
    busy_seconds: f64,
    peak_rss_bytes: u64,
}

/// The search's settings: flags, else the profile's.
struct Settings {
    profile: trader_config::Profile,
    symbols: Vec<Symbol>,
    space: SearchSpace,
}

fn settings(a: &TrainArgs, config_dir: &Path) -> anyhow::Result<Settings> {
    let profile = trader_config::Profile::load(&a.profile, config_dir)?;
    Ok(Settings {
        symbols: a.symbols.clone().unwrap_or_else(|| profile.symbols.clone()),
        space: SearchSpace {
            max_history_hours: a.max_history_hours.unwrap_or(profile.history_hours),
            max_epochs: a.max_epochs,
        },
        profile,
    })
}

/// The symbols' bars at the hours every symbol has, and those hours.
/// Per symbol, bars oldest first.
type BarsBySymbol = BTreeMap<Symbol, Vec<Bar>>;

fn load_common(a: &TrainArgs, symbols: &[Symbol]) -> anyhow::Result<(BarsBySymbol, Vec<i64>)> {
    let bars =
        trader_recorded::read_recorded_symbols(&a.data, symbols, trader_core::SystemClock.now())?;
    let hours = trader_engine::common_hours(&bars);
    Ok((trader_engine::at_hours(&bars, &hours), hours))
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
    let settings = settings(a, config_dir)?;
    if let Some(trial) = a.worker_trial {
        return worker(a, &settings, trial, train_until, valid_until);
    }
    let (_, hours) = load_common(a, &settings.symbols)?;
    let train_rows = hours.iter().filter(|t| **t <= train_until).count();
    let valid_rows = hours
        .iter()
        .filter(|t| (train_until + 1..=valid_until).contains(*t))
        .count();
    if valid_rows == 0 {
        bail!(
            "no hour with bars of every symbol between --train-until {} and --valid-until {} in {}",
            a.train_until,
            a.valid_until,
            a.data.display()
        );
    }
    let predicted = RUNTIME_BASE_RSS
        + TRADING_LOOP_RSS
        + training_demand_bytes(train_rows, settings.symbols.len(), settings.space);
    if let Some(refusal) = gate_workers(a, predicted, config_dir)? {
        output::eprint(&refusal);
        return Ok(Outcome::Refused);
    }
    search(a, &settings, predicted)
}

/// The budgeter's check of the worker count: RAM of W workers plus the host
/// file's other co-tenants against the allowed share of the machine.
/// `Some(message)` when refused, naming how many would fit.
fn gate_workers(
    a: &TrainArgs,
    worker_bytes: u64,
    config_dir: &Path,
) -> anyhow::Result<Option<String>> {
    let host_path = a.host.clone().or_else(|| {
        let p = config_dir.join("host.toml");
        p.is_file().then_some(p)
    });
    let host = host_path
        .as_deref()
        .map(HostConfig::from_file)
        .transpose()?;
    let declared = host.as_ref().and_then(|h| match h.ram {
        MemorySpec::Declared(size) => Some(size.0),
        MemorySpec::Auto => None,
    });
    let (total, source) = if let Some(total) = declared {
        (total, "declared in the host file".to_owned())
    } else {
        let p = probe_memory(Path::new("/"))?;
        (p.total.0, p.source)
    };
    let percent = host.as_ref().map_or(90.0, |h| h.limits.ram_percent);
    let others: u64 = host.as_ref().map_or(0, |h| {
        h.tenants
            .iter()
            .filter(|t| t.name != WORKER_TENANT)
            .map(|t| u64::from(t.count) * t.ram.map_or(0, |s| s.0))
            .sum()
    });
    let allowed = (total as f64 * percent / 100.0) as u64;
    let room = allowed.saturating_sub(others);
    let fit = room / worker_bytes.max(1);
    if u64::from(a.workers) <= fit {
        return Ok(None);
    }
    let mb = |b: u64| b as f64 / 1e6;
    Ok(Some(format!(
        "trader train: REFUSED: {w} workers x {each:.1} MB predicted = {need:.1} MB, but RAM \
         {total:.1} MB ({source}) x {percent} % = {allowed:.1} MB less {others:.1} MB of other \
         co-tenants leaves {room:.1} MB: {fit} worker(s) fit{hint}\n",
        w = a.workers,
        each = mb(worker_bytes),
        need = mb(worker_bytes * u64::from(a.workers)),
        total = mb(total),
        allowed = mb(allowed),
        others = mb(others),
        room = mb(room),
        hint = if fit > 0 {
            format!(" (--workers {fit})")
        } else {
            String::new()
        },
    )))
}

/// One running worker process.
struct Running {
    child: Child,
    trial: u32,
    slot: u32,
    started: Instant,
}

fn spawn(a: &TrainArgs, settings: &Settings, trial: u32, slot: u32) -> anyhow::Result<Running> {
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
    let child = cmd
        .spawn()
        .with_context(|| format!("starting the worker of trial {trial}"))?;
    Ok(Running {
        child,
        trial,
        slot,
        started: Instant::now(),
    })
}

fn join_symbols(symbols: &[Symbol]) -> String {
    symbols
        .iter()
        .map(Symbol::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// How a worker killed by a signal is reported: the search stops.
const INTERRUPTED: &str = "interrupted";

/// The result line a finished worker printed, or why there is none.
fn collect(mut r: Running) -> Result<TrialResult, String> {
    let status = r.child.wait().map_err(|e| e.to_string())?;
    let mut last = String::new();
    if let Some(out) = r.child.stdout.take() {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            last = line;
        }
    }
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return Err(format!("{INTERRUPTED} (signal {signal})"));
    }
    if !status.success() {
        return Err(format!("worker exited with {status}"));
    }
    serde_json::from_str(&last).map_err(|e| format!("unreadable worker result {last:?}: {e}"))
}

fn search(a: &TrainArgs, settings: &Settings, predicted: u64) -> anyhow::Result<Outcome> {
    fs_err::create_dir_all(&a.out)?;
    // Trials in flight when a search stopped left only their staging copy.
    let staging = a.out.join(".staging");
    if staging.exists() {
        fs_err::remove_dir_all(&staging).context("clearing the staging of a stopped search")?;
    }
    let mut finished: Vec<FinishedTrial> = finished_trials(&a.out)?
        .into_iter()
        .filter(|t| t.trial < a.trials)
        .collect();
    let done_before = finished.len();
    if done_before > 0 {
        write_ensemble_file(&a.out, &finished, a.top_n)?;
    }
    let mut todo: Vec<u32> = (0..a.trials)
        .filter(|t| !finished.iter().any(|f| f.trial == *t))
        .rev()
        .collect();
    tracing::info!(
        done = done_before,
        todo = todo.len(),
        workers = a.workers,
        "search starts"
    );
    let started = Instant::now();
    let mut stats: Vec<WorkerStats> = (0..a.workers)
        .map(|w| WorkerStats {
            worker: w,
            ..WorkerStats::default()
        })
        .collect();
    let mut running: Vec<Running> = Vec::new();
    let mut failed = Vec::new();
    loop {
        while running.len() < a.workers as usize {
            let Some(trial) = todo.pop() else { break };
            let slot = (0..a.workers)
                .find(|s| !running.iter().any(|r| r.slot == *s))
                .unwrap_or(0);
            running.push(spawn(a, settings, trial, slot)?);
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut i = 0;
        while i < running.len() {
            if running[i].child.try_wait()?.is_none() {
                i += 1;
                continue;
            }
            let r = running.swap_remove(i);
            let (trial, slot, busy) = (r.trial, r.slot, r.started.elapsed().as_secs_f64());
            match collect(r) {
                Ok(result) => {
                    let w = &mut stats[slot as usize];
                    w.trials += 1;
                    w.busy_seconds += busy;
                    w.peak_rss_bytes = w.peak_rss_bytes.max(result.peak_rss_bytes);
                    finished.push(FinishedTrial {
                        trial,
                        dir: trial_dir_name(trial),
                        score: result.score,
                    });
                    write_ensemble_file(&a.out, &finished, a.top_n)?;
                    progress(a, &finished, done_before, started, slot, &result);
                }
                Err(e) => {
                    tracing::error!(trial, error = %e, "trial failed");
                    if e.starts_with(INTERRUPTED) {
                        // Stopped from outside: run nothing more.
                        todo.clear();
                    }
                    failed.push(format!("{}: {e}", trial_dir_name(trial)));
                }
            }
        }
    }
    finish(a, predicted, &finished, done_before, failed, started, stats)
}

/// Prints the summary; an error when a trial failed.
fn finish(
    a: &TrainArgs,
    predicted: u64,
    finished: &[FinishedTrial],
    done_before: usize,
    failed: Vec<String>,
    started: Instant,
    stats: Vec<WorkerStats>,
) -> anyhow::Result<Outcome> {
    let seconds = started.elapsed().as_secs_f64();
    let best = finished
        .iter()
        .max_by(|x, y| x.score.total_cmp(&y.score).then_with(|| y.dir.cmp(&x.dir)))
        .map(|b| (b.dir.clone(), b.score));
    let summary = Summary {
        out: a.out.display().to_string(),
        trials: a.trials,
        done: finished.len(),
        done_before,
        failed,
        workers: a.workers,
        seconds,
        trials_per_hour: (finished.len() - done_before) as f64 * 3600.0 / seconds.max(1e-9),
        best,
        predicted_worker_rss_bytes: predicted,
        per_worker: stats,
    };
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

fn progress(
    a: &TrainArgs,
    finished: &[FinishedTrial],
    done_before: usize,
    started: Instant,
    slot: u32,
    r: &TrialResult,
) {
    let new = finished.len() - done_before;
    let per_hour = new as f64 * 3600.0 / started.elapsed().as_secs_f64().max(1e-9);
    let best = finished
        .iter()
        .max_by(|x, y| x.score.total_cmp(&y.score))
        .map_or(String::new(), |b| format!("{} {:.3}", b.dir, b.score));
    output::eprint(&format!(
        "[{}/{}] {} on worker {slot}: Sharpe {:.3} ({:.1} s, {:.1} MB) | {per_hour:.0} trials/h, best {best}\n",
        finished.len(),
        a.trials,
        trial_dir_name(r.trial),
        r.score,
        r.seconds,
        r.peak_rss_bytes as f64 / 1e6,
    ));
}

fn render(s: &Summary) -> String {
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

/// One trial, in a worker process: train, write to staging, score with the
/// backtest engine on the validation span, move into place, print the result.
fn worker(
    a: &TrainArgs,
    settings: &Settings,
    trial: u32,
    train_until: i64,
    valid_until: i64,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let (bars, hours) = load_common(a, &settings.symbols)?;
    let hp = HyperParams::sample(a.seed, trial, settings.space);
    let first = hours.first().copied().unwrap_or(0);
    let data = Dataset::build(&bars, &settings.symbols, &hp, first, train_until)?;
    let member = train_member(&data, &hp, &settings.symbols)?;
    let name = trial_dir_name(trial);
    let stage = a.out.join(".staging").join(&name);
    write_member(&stage.join(&name), &member, None)?;
    write_ensemble_file(
        &stage,
        &[FinishedTrial {
            trial,
            dir: name.clone(),
            score: 0.0,
        }],
        1,
    )?;
    let metrics = validate(
        settings,
        &stage,
        &bars,
        &hours,
        (train_until, valid_until),
        &hp,
    )?;
    let score = if metrics.sharpe.is_finite() {
        metrics.sharpe
    } else {
        0.0
    };
    write_member(&stage.join(&name), &member, Some(score))?;
    let target = a.out.join(&name);
    fs_err::rename(stage.join(&name), &target).context("moving the finished member into place")?;
    let _ = fs_err::remove_dir_all(&stage);
    let result = TrialResult {
        trial,
        score,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: trader_budget::own_memory().peak,
        train_rows: data.rows,
        final_loss: member.epoch_losses.last().copied().unwrap_or(f32::NAN),
        validation_return: metrics.total_return,
        validation_orders: metrics.orders,
    };
    output::print(&(serde_json::to_string(&result)? + "\n"));
    Ok(Outcome::Ok)
}

/// The backtest of the staged member alone over (train_until, valid_until].
fn validate(
    settings: &Settings,
    ensemble_dir: &Path,
    bars: &BTreeMap<Symbol, Vec<Bar>>,
    hours: &[i64],
    (train_until, valid_until): (i64, i64),
    hp: &HyperParams,
) -> anyhow::Result<trader_engine::Metrics> {
    let decided: Vec<i64> = hours
        .iter()
        .copied()
        .filter(|t| (train_until + HOUR_SECS..=valid_until).contains(t))
        .collect();
    if decided.is_empty() {
        bail!("no validation hour after {}", format_time(train_until));
    }
    // The member alone, traded by the profile's rules.
    let profile = trader_config::Profile {
        name: "train".to_owned(),
        symbols: settings.symbols.clone(),
        history_hours: hp.required_history_hours().max(1),
        ensemble_dir: ensemble_dir.to_path_buf(),
        top_n: 1,
        aggregate: trader_core::Aggregate::Mean,
        device: trader_core::ComputeDevice::Cpu,
        metrics_port: None,
        ..settings.profile.clone()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let output = runtime.block_on(crate::backtest_cmd::backtest(crate::backtest_cmd::Plan {
        profile: &profile,
        bars: bars.clone(),
        hours,
        decided: &decided,
        block_hours: Some(256),
        progress: false,
        store: None,
    }))?;
    Ok(output.metrics)
}

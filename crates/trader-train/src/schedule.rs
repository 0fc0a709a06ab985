//! The search's scheduling: keeps W workers busy with the trials still to
//! run, records each finished one and rewrites `ensemble_params.json` after
//! it, keeps each worker slot's bookkeeping, and stops launching when a
//! worker was stopped from outside. How a worker runs (a process of the
//! `trader` binary) is the caller's [`Launcher`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{FinishedTrial, Resumed, trial_dir_name, write_ensemble_file};

/// An error of the caller's launcher, kept with its chain of sources.
pub type LaunchError = Box<dyn std::error::Error + Send + Sync>;

/// How often the scheduler looks for finished workers.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What a worker reports for its trial (a worker process prints it as JSON
/// on its last stdout line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub trial: u32,
    /// Sharpe of the validation backtest (0 when not finite).
    pub score: f64,
    pub seconds: f64,
    pub peak_rss_bytes: u64,
    pub train_rows: usize,
    pub final_loss: f32,
    pub validation_return: f64,
    pub validation_orders: u64,
}

/// Why a worker gave no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkerFailure {
    /// Killed by a signal: stopped from outside, so the search stops.
    #[error("interrupted (signal {signal})")]
    Interrupted { signal: i32 },
    /// It failed (its exit status, an unreadable result, ...).
    #[error("{0}")]
    Failed(String),
}

/// Runs workers, one trial each; the search polls them.
pub trait Launcher {
    /// A running worker.
    type Worker;
    /// Starts the worker of `trial` in worker slot `slot`.
    ///
    /// # Errors
    /// The worker cannot start: the search stops with it.
    fn launch(&mut self, trial: u32, slot: u32) -> Result<Self::Worker, LaunchError>;
    /// Whether `worker` has ended (without waiting).
    ///
    /// # Errors
    /// Its state cannot be read: the search stops with it.
    fn has_ended(&mut self, worker: &mut Self::Worker) -> Result<bool, LaunchError>;
    /// The result of an ended worker, or why there is none.
    ///
    /// # Errors
    /// The worker's failure, recorded; the search goes on unless it was
    /// [`WorkerFailure::Interrupted`].
    fn collect(&mut self, worker: Self::Worker) -> Result<TrialResult, WorkerFailure>;
}

/// What a search runs.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    /// The output ensemble directory.
    pub out: PathBuf,
    /// Trials `0..trials`.
    pub trials: u32,
    /// Workers at once.
    pub workers: u32,
    /// `top_n` written in `ensemble_params.json`.
    pub top_n: u32,
    /// The budgeter's prediction of one worker's RSS (reported only).
    pub predicted_worker_rss_bytes: u64,
}

/// One worker slot's bookkeeping.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct WorkerStats {
    pub worker: u32,
    pub trials: u32,
    pub busy_seconds: f64,
    pub peak_rss_bytes: u64,
}

/// The summary of one search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchSummary {
    pub out: String,
    pub trials: u32,
    /// Finished trials, those of earlier runs included.
    pub done: usize,
    /// Finished before this run.
    pub done_before: usize,
    /// `trial_NNNN: why`, one per failed trial.
    pub failed: Vec<String>,
    pub workers: u32,
    pub seconds: f64,
    /// Trials finished by this run per hour.
    pub trials_per_hour: f64,
    /// The best member and its score (ties: the first directory).
    pub best: Option<(String, f64)>,
    pub predicted_worker_rss_bytes: u64,
    pub per_worker: Vec<WorkerStats>,
}

/// One finished trial, as the search reports it while it runs.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Finished trials, those of earlier runs included.
    pub done: usize,
    pub trials: u32,
    /// The worker slot that ran it.
    pub slot: u32,
    pub result: &'a TrialResult,
    /// Trials finished by this run per hour so far.
    pub trials_per_hour: f64,
    /// The best finished member so far (ties: the last finished).
    pub best: Option<&'a FinishedTrial>,
}

struct Running<W> {
    worker: W,
    trial: u32,
    slot: u32,
    started: Instant,
}

/// Runs the trials `resumed.todo` on `plan.workers` workers of `launcher`,
/// in trial order, each in the lowest free slot. After each finished trial
/// `ensemble_params.json` is rewritten atomically with every finished trial
/// and `on_progress` is called. A failed trial is recorded (and logged);
/// an interrupted one (a worker killed by a signal) stops the launching of
/// more, the running ones are still collected.
///
/// # Errors
/// A worker that cannot start or be polled, or an ensemble file that cannot
/// be written: the search stops (workers already running are left to the
/// caller's process group).
pub fn run_search<L: Launcher>(
    plan: &SearchPlan,
    resumed: Resumed,
    launcher: &mut L,
    mut on_progress: impl FnMut(&Progress<'_>),
) -> Result<SearchSummary, LaunchError> {
    let Resumed { mut finished, todo } = resumed;
    let done_before = finished.len();
    let mut todo: Vec<u32> = todo.into_iter().rev().collect();
    tracing::info!(
        done = done_before,
        todo = todo.len(),
        workers = plan.workers,
        "search starts"
    );
    let started = Instant::now();
    let mut stats: Vec<WorkerStats> = (0..plan.workers)
        .map(|w| WorkerStats {
            worker: w,
            ..WorkerStats::default()
        })
        .collect();
    let mut running: Vec<Running<L::Worker>> = Vec::new();
    let mut failed = Vec::new();
    loop {
        while running.len() < plan.workers as usize {
            let Some(trial) = todo.pop() else { break };
            let slot = (0..plan.workers)
                .find(|s| !running.iter().any(|r| r.slot == *s))
                .unwrap_or(0);
            running.push(Running {
                worker: launcher.launch(trial, slot)?,
                trial,
                slot,
                started: Instant::now(),
            });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
        let mut i = 0;
        while i < running.len() {
            if !launcher.has_ended(&mut running[i].worker)? {
                i += 1;
                continue;
            }
            let r = running.swap_remove(i);
            let (trial, slot, busy) = (r.trial, r.slot, r.started.elapsed().as_secs_f64());
            match launcher.collect(r.worker) {
                Ok(result) => {
                    if let Some(w) = stats.get_mut(slot as usize) {
                        w.trials += 1;
                        w.busy_seconds += busy;
                        w.peak_rss_bytes = w.peak_rss_bytes.max(result.peak_rss_bytes);
                    }
                    finished.push(FinishedTrial {
                        trial,
                        dir: trial_dir_name(trial),
                        score: result.score,
                    });
                    write_ensemble_file(&plan.out, &finished, plan.top_n)?;
                    let new = finished.len() - done_before;
                    on_progress(&Progress {
                        done: finished.len(),
                        trials: plan.trials,
                        slot,
                        result: &result,
                        trials_per_hour: per_hour(new, started),
                        best: finished.iter().max_by(|x, y| x.score.total_cmp(&y.score)),
                    });
                }
                Err(e) => {
                    tracing::error!(trial, error = %e, "trial failed");
                    if matches!(e, WorkerFailure::Interrupted { .. }) {
                        // Stopped from outside: run nothing more.
                        todo.clear();
                    }
                    failed.push(format!("{}: {e}", trial_dir_name(trial)));
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let best = finished
        .iter()
        .max_by(|x, y| x.score.total_cmp(&y.score).then_with(|| y.dir.cmp(&x.dir)))
        .map(|b| (b.dir.clone(), b.score));
    Ok(SearchSummary {
        out: plan.out.display().to_string(),
        trials: plan.trials,
        done: finished.len(),
        done_before,
        failed,
        workers: plan.workers,
        seconds,
        trials_per_hour: (finished.len() - done_before) as f64 * 3600.0 / seconds.max(1e-9),
        best,
        predicted_worker_rss_bytes: plan.predicted_worker_rss_bytes,
        per_worker: stats,
    })
}

fn per_hour(trials: usize, since: Instant) -> f64 {
    trials as f64 * 3600.0 / since.elapsed().as_secs_f64().max(1e-9)
}

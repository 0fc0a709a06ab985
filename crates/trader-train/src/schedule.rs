//! The search's scheduling: keeps W workers busy with the trials still to
//! run, records each finished one and rewrites `ensemble_params.json` after
//! it, keeps each worker slot's bookkeeping, and stops launching when a
//! worker was stopped from outside. How a worker runs (a process of the
//! `trader` binary) is the caller's [`Launcher`].

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{FinishedTrial, Governance, Resumed, trial_dir_name, write_ensemble_file};

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

/// A signal the scheduler sends a running worker (the governor's actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerSignal {
    /// SIGSTOP: it stops growing; its memory stays.
    Pause,
    /// SIGCONT.
    Resume,
    /// SIGKILL: its memory is given back; its trial runs again later.
    Terminate,
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
    /// The worker's process id, for the governor's readings (None: not a
    /// process this machine can measure).
    fn pid(&self, worker: &Self::Worker) -> Option<u32>;
    /// Sends `signal` to the worker.
    ///
    /// # Errors
    /// The signal could not be sent: the search stops with it.
    fn signal(
        &mut self,
        worker: &mut Self::Worker,
        signal: WorkerSignal,
    ) -> Result<(), LaunchError>;
}

/// The trials of a search shared with other hosts (`trader train --queue`):
/// this host claims them one at a time, and each finished one is recorded
/// there; the ensemble of every host's members is what `finished` returns.
pub trait SharedTrials {
    /// Claims the next trial for this host; None: none is free now.
    ///
    /// # Errors
    /// The queue cannot be read: the search stops.
    fn claim(&mut self) -> Result<Option<u32>, LaunchError>;
    /// Whether trials remain that other hosts hold: this host waits for
    /// them, since a host that dies gives its trial back.
    ///
    /// # Errors
    /// The queue cannot be read: the search stops.
    fn others_pending(&mut self) -> Result<bool, LaunchError>;
    /// A claimed trial finished (its member is in `out/trial_K`): recorded;
    /// returns the finished members of every host, available in `out`.
    ///
    /// # Errors
    /// It could not be recorded: the search stops.
    fn finished(&mut self, result: &TrialResult) -> Result<Vec<FinishedTrial>, LaunchError>;
    /// A claimed trial failed for good: recorded, no host runs it again.
    ///
    /// # Errors
    /// It could not be recorded: the search stops.
    fn failed(&mut self, trial: u32, why: &str) -> Result<(), LaunchError>;
    /// A claimed trial this host will not run: queued again for any host.
    fn release(&mut self, trial: u32);
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
    /// A failed trial runs again up to this many times, after 1, 2, 4 ...
    /// s (at most [`RETRY_BACKOFF_MAX`]); 0: recorded as failed at once.
    pub retries: u32,
    /// Rewrite `ensemble_params.json` after each finished trial (trials of
    /// this binary; not for `--exec` children, which write their own).
    pub write_ensemble: bool,
}

/// The longest wait before a failed trial runs again.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_mins(1);

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
    /// Most workers that ran at once.
    pub max_concurrent_workers: u32,
    /// Trials queued again (failed and retried, or terminated by the governor).
    pub requeued: u32,
    /// Trials finished by this run per hour.
    pub trials_per_hour: f64,
    /// The best member and its score (ties: the first directory).
    pub best: Option<(String, f64)>,
    pub predicted_worker_rss_bytes: u64,
    pub per_worker: Vec<WorkerStats>,
    /// The governor's counts (admissions, refusals, pauses, time paused,
    /// alerts), when it governed the search.
    pub governor: Option<trader_governor::GovernorStats>,
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
    /// Runs of this trial before this one (failed and retried, or
    /// terminated by the governor).
    attempts: u32,
    /// Terminated by the governor: its trial is queued again.
    terminated: bool,
}

/// A trial waiting for a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queued {
    pub(crate) trial: u32,
    pub(crate) attempts: u32,
    /// Not before this (a failed trial's back-off).
    pub(crate) not_before: Instant,
}

/// Runs the trials `resumed.todo` on at most `plan.workers` workers of
/// `launcher`, in trial order, each in the lowest free slot. With
/// `governance`, the governor admits each worker by the memory the machine
/// has now, and pauses, resumes or terminates running ones (a terminated
/// worker's trial is queued again). After each finished trial
/// `ensemble_params.json` is rewritten atomically with every finished trial
/// (when `plan.write_ensemble`) and `on_progress` is called. A failed trial
/// runs again up to `plan.retries` times with back-off, then is recorded
/// (and logged); an interrupted one (a worker killed by a signal from
/// outside) stops the launching of more, the running ones are still
/// collected.
///
/// # Errors
/// A worker that cannot start, be polled or signalled, or an ensemble file
/// that cannot be written: the search stops (workers already running are
/// left to the caller's process group).
pub fn run_search<L: Launcher>(
    plan: &SearchPlan,
    resumed: Resumed,
    launcher: &mut L,
    on_progress: impl FnMut(&Progress<'_>),
    governance: Option<Governance<'_>>,
) -> Result<SearchSummary, LaunchError> {
    run_shared_search(plan, resumed, launcher, on_progress, governance, None)
}

/// [`run_search`] whose trials are, beyond `resumed.todo`, claimed from
/// `shared` while slots are free, and recorded there when they end; the
/// host waits while other hosts hold trials (a dead host's come back).
///
/// # Errors
/// As [`run_search`], and a queue that cannot be read or written.
pub fn run_shared_search<L: Launcher>(
    plan: &SearchPlan,
    resumed: Resumed,
    launcher: &mut L,
    on_progress: impl FnMut(&Progress<'_>),
    governance: Option<Governance<'_>>,
    shared: Option<&mut dyn SharedTrials>,
) -> Result<SearchSummary, LaunchError> {
    let Resumed { finished, todo } = resumed;
    let now = Instant::now();
    tracing::info!(
        done = finished.len(),
        todo = todo.len(),
        workers = plan.workers,
        governed = governance.is_some(),
        "search starts"
    );
    let mut search = Search {
        plan,
        launcher,
        governance,
        on_progress,
        done_before: finished.len(),
        finished,
        todo: todo
            .into_iter()
            .map(|trial| Queued {
                trial,
                attempts: 0,
                not_before: now,
            })
            .collect(),
        running: Vec::new(),
        stats: (0..plan.workers)
            .map(|w| WorkerStats {
                worker: w,
                ..WorkerStats::default()
            })
            .collect(),
        failed: Vec::new(),
        max_concurrent: 0,
        requeued: 0,
        started: now,
        shared,
        stopped: false,
    };
    loop {
        // Workers that ended since the last look free their slots first: a
        // launch never counts an ended, uncollected worker as running.
        search.collect_ended()?;
        search.launch_ready()?;
        if search.running.is_empty() && search.todo.is_empty() && !search.waits_for_others()? {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
        search.govern()?;
        search.collect_ended()?;
    }
    Ok(search.summary())
}

/// One search while it runs.
struct Search<'p, 'g, 's, L: Launcher, P> {
    plan: &'p SearchPlan,
    launcher: &'p mut L,
    governance: Option<Governance<'g>>,
    on_progress: P,
    finished: Vec<FinishedTrial>,
    done_before: usize,
    todo: VecDeque<Queued>,
    running: Vec<Running<L::Worker>>,
    stats: Vec<WorkerStats>,
    failed: Vec<String>,
    max_concurrent: u32,
    requeued: u32,
    started: Instant,
    shared: Option<&'s mut dyn SharedTrials>,
    /// A worker was stopped from outside: nothing more is launched or claimed.
    stopped: bool,
}

impl<L: Launcher, P: FnMut(&Progress<'_>)> Search<'_, '_, '_, L, P> {
    /// With shared trials: whether another host still holds some (this
    /// one waits for them).
    fn waits_for_others(&mut self) -> Result<bool, LaunchError> {
        match self.shared.as_mut() {
            Some(shared) if !self.stopped => shared.others_pending(),
            _ => Ok(false),
        }
    }

    /// With shared trials and nothing due here: claims one more.
    fn claim_shared(&mut self) -> Result<(), LaunchError> {
        if self.stopped || self.todo.iter().any(|q| q.not_before <= Instant::now()) {
            return Ok(());
        }
        if let Some(shared) = self.shared.as_mut()
            && let Some(trial) = shared.claim()?
        {
            tracing::info!(trial, "claimed from the shared queue");
            self.todo.push_back(Queued {
                trial,
                attempts: 0,
                not_before: Instant::now(),
            });
        }
        Ok(())
    }

    /// Starts workers for the trials due, while slots are free and the
    /// governor admits them.
    fn launch_ready(&mut self) -> Result<(), LaunchError> {
        while self.running.len() < self.plan.workers as usize {
            self.claim_shared()?;
            let Some(pos) = self
                .todo
                .iter()
                .position(|q| q.not_before <= Instant::now())
            else {
                break;
            };
            let pids = pids(self.launcher, &self.running);
            if let Some(g) = self.governance.as_mut()
                && !g.admit(&pids, self.todo.len())
            {
                break;
            }
            let Some(q) = self.todo.remove(pos) else {
                break;
            };
            let slot = (0..self.plan.workers)
                .find(|s| !self.running.iter().any(|r| r.slot == *s))
                .unwrap_or(0);
            self.running.push(Running {
                worker: self.launcher.launch(q.trial, slot)?,
                trial: q.trial,
                slot,
                started: Instant::now(),
                attempts: q.attempts,
                terminated: false,
            });
            if let Some(g) = self.governance.as_mut() {
                g.started(slot);
            }
            self.max_concurrent = self.max_concurrent.max(count(self.running.len()));
        }
        Ok(())
    }

    /// The governor's reading and the signals it asks for.
    fn govern(&mut self) -> Result<(), LaunchError> {
        let pids = pids(self.launcher, &self.running);
        let Some(g) = self.governance.as_mut() else {
            return Ok(());
        };
        for (slot, signal) in g.observe(&pids, self.todo.len()) {
            if let Some(r) = self.running.iter_mut().find(|r| r.slot == slot) {
                self.launcher.signal(&mut r.worker, signal)?;
                r.terminated |= signal == WorkerSignal::Terminate;
            }
        }
        Ok(())
    }

    /// Collects every ended worker.
    fn collect_ended(&mut self) -> Result<(), LaunchError> {
        let mut i = 0;
        while i < self.running.len() {
            if self.launcher.has_ended(&mut self.running[i].worker)? {
                let r = self.running.swap_remove(i);
                self.collect(r)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    fn collect(&mut self, r: Running<L::Worker>) -> Result<(), LaunchError> {
        let (trial, slot, busy) = (r.trial, r.slot, r.started.elapsed().as_secs_f64());
        if r.terminated {
            // Reaped; the governor gave its memory back by ending it.
            let _ = self.launcher.collect(r.worker);
            if let Some(g) = self.governance.as_mut() {
                g.ended(slot, None, false);
            }
            tracing::info!(
                trial,
                slot,
                "worker terminated by the governor; its trial is queued again"
            );
            self.requeue(trial, r.attempts, Duration::ZERO, true);
            return Ok(());
        }
        match self.launcher.collect(r.worker) {
            Ok(result) => {
                let peak = self
                    .governance
                    .as_ref()
                    .and_then(|g| g.peak_of(slot))
                    .unwrap_or(0)
                    .max(result.peak_rss_bytes);
                if let Some(g) = self.governance.as_mut() {
                    g.ended(slot, Some(peak), true);
                }
                if let Some(w) = self.stats.get_mut(slot as usize) {
                    w.trials += 1;
                    w.busy_seconds += busy;
                    w.peak_rss_bytes = w.peak_rss_bytes.max(peak);
                }
                self.finished.push(FinishedTrial {
                    trial,
                    dir: trial_dir_name(trial),
                    score: result.score,
                });
                if let Some(shared) = self.shared.as_mut() {
                    self.finished = shared.finished(&result)?;
                }
                if self.plan.write_ensemble {
                    write_ensemble_file(&self.plan.out, &self.finished, self.plan.top_n)?;
                }
                let new = self.finished.len() - self.done_before;
                (self.on_progress)(&Progress {
                    done: self.finished.len(),
                    trials: self.plan.trials,
                    slot,
                    result: &result,
                    trials_per_hour: per_hour(new, self.started),
                    best: self
                        .finished
                        .iter()
                        .max_by(|x, y| x.score.total_cmp(&y.score)),
                });
            }
            Err(e) => {
                if let Some(g) = self.governance.as_mut() {
                    g.ended(slot, None, false);
                }
                let interrupted = matches!(e, WorkerFailure::Interrupted { .. });
                if !interrupted && r.attempts < self.plan.retries {
                    let wait = retry_backoff(r.attempts);
                    tracing::warn!(trial, error = %e, attempt = r.attempts + 1, retry_in_s = wait.as_secs_f64(), "trial failed; it runs again after a back-off");
                    self.requeue(trial, r.attempts, wait, false);
                    return Ok(());
                }
                tracing::error!(trial, error = %e, "trial failed");
                if interrupted {
                    // Stopped from outside: run nothing more; shared
                    // trials go back to the queue for the other hosts.
                    self.stopped = true;
                    let mut given_back: Vec<u32> = self.todo.drain(..).map(|q| q.trial).collect();
                    given_back.push(trial);
                    if let Some(shared) = self.shared.as_mut() {
                        for t in given_back {
                            shared.release(t);
                        }
                    }
                } else if let Some(shared) = self.shared.as_mut() {
                    shared.failed(trial, &e.to_string())?;
                }
                self.failed.push(format!("{}: {e}", trial_dir_name(trial)));
            }
        }
        Ok(())
    }

    /// Queues `trial` again after `wait` (first when `first`).
    fn requeue(&mut self, trial: u32, attempts: u32, wait: Duration, first: bool) {
        let q = Queued {
            trial,
            attempts: attempts + 1,
            not_before: Instant::now() + wait,
        };
        if first {
            self.todo.push_front(q);
        } else {
            self.todo.push_back(q);
        }
        self.requeued += 1;
    }

    fn summary(self) -> SearchSummary {
        let seconds = self.started.elapsed().as_secs_f64();
        let best = self
            .finished
            .iter()
            .max_by(|x, y| x.score.total_cmp(&y.score).then_with(|| y.dir.cmp(&x.dir)))
            .map(|b| (b.dir.clone(), b.score));
        let plan = self.plan;
        SearchSummary {
            out: plan.out.display().to_string(),
            trials: plan.trials,
            done: self.finished.len(),
            done_before: self.done_before,
            failed: self.failed,
            workers: plan.workers,
            max_concurrent_workers: self.max_concurrent,
            requeued: self.requeued,
            seconds,
            trials_per_hour: (self.finished.len() - self.done_before) as f64 * 3600.0
                / seconds.max(1e-9),
            best,
            predicted_worker_rss_bytes: plan.predicted_worker_rss_bytes,
            per_worker: self.stats,
            governor: self.governance.map(Governance::into_stats),
        }
    }
}

/// The process ids of the running workers, by slot.
fn pids<L: Launcher>(launcher: &L, running: &[Running<L::Worker>]) -> BTreeMap<u32, u32> {
    running
        .iter()
        .filter_map(|r| launcher.pid(&r.worker).map(|pid| (r.slot, pid)))
        .collect()
}

/// 1, 2, 4 ... s before attempt `attempts + 1`, at most [`RETRY_BACKOFF_MAX`].
fn retry_backoff(attempts: u32) -> Duration {
    Duration::from_secs(1_u64 << attempts.min(16)).min(RETRY_BACKOFF_MAX)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn per_hour(trials: usize, since: Instant) -> f64 {
    trials as f64 * 3600.0 / since.elapsed().as_secs_f64().max(1e-9)
}

//! The processes of `trader train`: trial workers of this binary
//! (`trader train --worker-trial K`), or copies of the user's own command
//! (`--exec -- CMD ARGS...`, each with `TRADER_WORKER_ID` and
//! `TRADER_TRIAL`); the governor's readings of this machine
//! (`/proc/meminfo`, each worker's `/proc/PID/status`, NVML) and its
//! signals. Workers stay in the coordinator's process group, so a signal to
//! the group (Ctrl-C) stops them with it; the governor's signals go to the
//! worker process itself (a command's own children are neither measured
//! nor paused).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use trader_governor::{Reading, WorkerId};
use trader_train::{
    LaunchError, Launcher, MemoryProbe, SearchSettings, TrialResult, WorkerFailure, WorkerSignal,
};

use crate::train_cmd::TrainArgs;

/// A worker process and when it started.
pub(crate) struct Worker {
    child: Child,
    trial: u32,
    started: Instant,
}

/// How a worker is started.
pub(crate) enum Workers<'a> {
    /// Trials of this binary; the result on the worker's last stdout line.
    Trials {
        args: &'a TrainArgs,
        settings: &'a SearchSettings,
    },
    /// The user's command, once per trial; exit 0 is a finished trial.
    Exec { command: &'a [String] },
}

impl Launcher for Workers<'_> {
    type Worker = Worker;

    fn launch(&mut self, trial: u32, slot: u32) -> Result<Worker, LaunchError> {
        let mut cmd = match self {
            Workers::Trials { args, settings } => trial_command(args, settings, trial)?,
            Workers::Exec { command } => {
                let (program, rest) = command
                    .split_first()
                    .context("--exec needs a command after --")?;
                let mut cmd = Command::new(program);
                cmd.args(rest).stdout(Stdio::null());
                cmd
            }
        };
        cmd.env("TRADER_WORKER_ID", slot.to_string())
            .env("TRADER_TRIAL", trial.to_string())
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the worker of trial {trial}"))?;
        Ok(Worker {
            child,
            trial,
            started: Instant::now(),
        })
    }

    fn has_ended(&mut self, w: &mut Worker) -> Result<bool, LaunchError> {
        Ok(w.child.try_wait()?.is_some())
    }

    fn collect(&mut self, mut w: Worker) -> Result<TrialResult, WorkerFailure> {
        let status = w
            .child
            .wait()
            .map_err(|e| WorkerFailure::Failed(e.to_string()))?;
        let mut last = String::new();
        if let Some(out) = w.child.stdout.take() {
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
        match self {
            Workers::Trials { .. } => serde_json::from_str(&last).map_err(|e| {
                WorkerFailure::Failed(format!("unreadable worker result {last:?}: {e}"))
            }),
            Workers::Exec { .. } => Ok(TrialResult {
                trial: w.trial,
                score: 0.0,
                seconds: w.started.elapsed().as_secs_f64(),
                // The governor's readings give the peak.
                peak_rss_bytes: 0,
                train_rows: 0,
                final_loss: 0.0,
                validation_return: 0.0,
                validation_orders: 0,
            }),
        }
    }

    fn pid(&self, w: &Worker) -> Option<u32> {
        Some(w.child.id())
    }

    fn signal(&mut self, w: &mut Worker, signal: WorkerSignal) -> Result<(), LaunchError> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(w.child.id())?)
            .context("a worker without a process id")?;
        let signal = match signal {
            WorkerSignal::Pause => rustix::process::Signal::STOP,
            WorkerSignal::Resume => rustix::process::Signal::CONT,
            WorkerSignal::Terminate => rustix::process::Signal::KILL,
        };
        match rustix::process::kill_process(pid, signal) {
            // Already gone: it is collected at the next poll.
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(format!("signalling worker {pid:?}: {e}").into()),
        }
    }
}

/// `trader train ... --worker-trial K` with `--threads-per-worker`
/// matmul threads.
fn trial_command(a: &TrainArgs, settings: &SearchSettings, trial: u32) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("locating the trader binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("train")
        .arg("--data")
        .arg(&a.data)
        .args(["--trials", &a.trials.to_string()])
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
        .stdout(Stdio::piped());
    Ok(cmd)
}

fn join_symbols(symbols: &[trader_core::Symbol]) -> String {
    symbols
        .iter()
        .map(trader_core::Symbol::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// This machine, read for the governor: RAM in use (MemTotal less
/// MemAvailable; with `--ram-pool`, the workers' RSS only), each worker's
/// RSS, VRAM by NVML when a GPU answers.
pub(crate) struct MachineProbe {
    /// `--ram-pool`: only the workers count.
    pub(crate) pool_only: bool,
    /// NVML found a GPU at start (else VRAM is not read again).
    pub(crate) gpu: bool,
    /// The last VRAM reading and when it was taken: NVML is asked at most
    /// every [`VRAM_EVERY`], not at every 50 ms reading.
    pub(crate) vram: Option<(std::time::Instant, Option<f64>)>,
}

/// Real time between two VRAM readings (the VRAM alert's resolution).
const VRAM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl MemoryProbe for MachineProbe {
    fn read(&mut self, now_ms: i64, pids: &BTreeMap<WorkerId, u32>) -> Reading {
        let root = std::path::Path::new("/");
        let workers: BTreeMap<WorkerId, u64> = pids
            .iter()
            .filter_map(|(slot, pid)| {
                trader_budget::process_memory(&root.join(format!("proc/{pid}/status")))
                    .map(|m| (*slot, m.rss))
            })
            .collect();
        let used = if self.pool_only {
            workers.values().sum()
        } else {
            trader_budget::probe_memory(root)
                .map_or(0, |p| p.mem_total.0.saturating_sub(p.available.0))
        };
        let vram_percent = match self.vram {
            _ if !self.gpu => None,
            Some((at, percent)) if at.elapsed() < VRAM_EVERY => percent,
            _ => {
                let percent = match trader_budget::probe_gpu() {
                    trader_budget::GpuProbe::Found { used, total, .. } if total.0 > 0 => {
                        Some(used.0 as f64 * 100.0 / total.0 as f64)
                    }
                    _ => None,
                };
                self.vram = Some((std::time::Instant::now(), percent));
                percent
            }
        };
        Reading {
            now_ms,
            used,
            workers,
            vram_percent,
        }
    }
}

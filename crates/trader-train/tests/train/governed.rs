//! The search under the governor, with scripted workers (each grows by a
//! step per poll and ends after its polls) and readings computed from them
//! on a manual clock: admission by memory, pause and resume over the hard
//! line, a terminated worker's trial run again, every trial done once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use chrono::DateTime;
use trader_core::ManualClock;
use trader_governor::{AlertLines, Governor, GovernorSettings, Reading, WorkerId};
use trader_train::{
    Governance, GovernorView, LaunchError, Launcher, MemoryProbe, Resumed, SearchPlan, TrialResult,
    WorkerFailure, WorkerSignal, run_search,
};

const MB: u64 = 1_000_000;

/// A scripted worker: its RSS grows by `step` per poll up to `peak`, and it
/// ends after `polls` polls of running (a paused one does not advance).
#[derive(Debug, Clone)]
struct Sim {
    trial: u32,
    rss: u64,
    step: u64,
    peak: u64,
    polls: u32,
    paused: bool,
    killed: bool,
}

#[derive(Default)]
struct Machine {
    /// Memory of everything but the workers.
    base: u64,
    workers: BTreeMap<u32, Sim>,
    next_pid: u32,
    /// The trial whose first run grows past the rest (a leak), and to what.
    leak: Option<(u32, u64)>,
    /// Most workers alive at once, and most memory in use seen.
    max_alive: usize,
    max_used: u64,
    finished: Vec<u32>,
}

impl Machine {
    fn used(&self) -> u64 {
        self.base + self.workers.values().map(|w| w.rss).sum::<u64>()
    }
}

struct Scripted(Rc<RefCell<Machine>>);

impl Launcher for Scripted {
    type Worker = u32;

    fn launch(&mut self, trial: u32, _slot: u32) -> Result<u32, LaunchError> {
        let mut m = self.0.borrow_mut();
        m.next_pid += 1;
        let pid = m.next_pid;
        // The leak strikes only its trial's first run.
        let (peak, polls) = match m.leak {
            Some((t, peak)) if t == trial => {
                m.leak = None;
                (peak, 40)
            }
            _ => (200 * MB, 6),
        };
        m.workers.insert(
            pid,
            Sim {
                trial,
                rss: 20 * MB,
                step: 60 * MB,
                peak,
                polls,
                paused: false,
                killed: false,
            },
        );
        m.max_alive = m.max_alive.max(m.workers.len());
        Ok(pid)
    }

    fn has_ended(&mut self, pid: &mut u32) -> Result<bool, LaunchError> {
        let mut m = self.0.borrow_mut();
        let w = m.workers.get_mut(pid).unwrap();
        if w.killed {
            return Ok(true);
        }
        if !w.paused {
            w.rss = (w.rss + w.step).min(w.peak);
            w.polls = w.polls.saturating_sub(1);
        }
        let ended = w.polls == 0;
        let used = m.used();
        m.max_used = m.max_used.max(used);
        Ok(ended)
    }

    fn collect(&mut self, pid: u32) -> Result<TrialResult, WorkerFailure> {
        let mut m = self.0.borrow_mut();
        let w = m.workers.remove(&pid).unwrap();
        if w.killed {
            return Err(WorkerFailure::Interrupted { signal: 9 });
        }
        m.finished.push(w.trial);
        Ok(TrialResult {
            trial: w.trial,
            score: 0.0,
            seconds: 0.0,
            peak_rss_bytes: w.peak,
            train_rows: 0,
            final_loss: 0.0,
            validation_return: 0.0,
            validation_orders: 0,
        })
    }

    fn pid(&self, pid: &u32) -> Option<u32> {
        Some(*pid)
    }

    fn signal(&mut self, pid: &mut u32, signal: WorkerSignal) -> Result<(), LaunchError> {
        let mut m = self.0.borrow_mut();
        let w = m.workers.get_mut(pid).unwrap();
        match signal {
            WorkerSignal::Pause => w.paused = true,
            WorkerSignal::Resume => w.paused = false,
            WorkerSignal::Terminate => {
                w.killed = true;
                w.rss = 0;
            }
        }
        Ok(())
    }
}

/// Readings from the scripted machine; every reading moves the clock 1 s.
struct Probe {
    machine: Rc<RefCell<Machine>>,
    clock: Arc<ManualClock>,
}

impl MemoryProbe for Probe {
    fn read(&mut self, now_ms: i64, pids: &BTreeMap<WorkerId, u32>) -> Reading {
        let m = self.machine.borrow();
        self.clock
            .set(DateTime::from_timestamp_millis(now_ms + 1_000).unwrap());
        Reading {
            now_ms,
            used: m.used(),
            workers: pids
                .iter()
                .filter_map(|(slot, pid)| m.workers.get(pid).map(|w| (*slot, w.rss)))
                .collect(),
            vram_percent: None,
        }
    }
}

fn settings(max_workers: u32) -> GovernorSettings {
    GovernorSettings {
        limit: 1_000 * MB,
        hard_limit: 1_100 * MB,
        max_workers,
        min_workers: 1,
        predicted_worker: 250 * MB,
        margin_percent: 10,
        terminate_after_ms: 3_000,
        alerts: AlertLines {
            process_rss: Some(500 * MB),
            min_trials_per_hour: None,
            window_ms: 3_600_000,
            vram_percent: None,
        },
    }
}

/// Runs `trials` trials with `max_workers` under the governor over
/// `machine`; returns the summary and the machine.
fn search(
    trials: u32,
    max_workers: u32,
    machine: Machine,
) -> (trader_train::SearchSummary, Rc<RefCell<Machine>>) {
    let tmp = tempfile::tempdir().unwrap();
    let machine = Rc::new(RefCell::new(machine));
    let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(0, 0).unwrap()));
    let mut probe = Probe {
        machine: Rc::clone(&machine),
        clock: Arc::clone(&clock),
    };
    let mut views = 0;
    let mut on_reading = |_: &GovernorView<'_>| views += 1;
    let governance = Governance::new(
        Governor::new(settings(max_workers), 0),
        &mut probe,
        clock.as_ref(),
        &mut on_reading,
    );
    let plan = SearchPlan {
        out: tmp.path().to_path_buf(),
        trials,
        workers: max_workers,
        top_n: 3,
        predicted_worker_rss_bytes: 250 * MB,
        retries: 0,
        write_ensemble: false,
    };
    let resumed = Resumed {
        finished: Vec::new(),
        todo: (0..trials).collect(),
    };
    let summary = run_search(
        &plan,
        resumed,
        &mut Scripted(Rc::clone(&machine)),
        |_| {},
        Some(governance),
    )
    .unwrap();
    assert!(views > 0, "the governor's view is reported");
    (summary, machine)
}

#[test]
fn workers_are_admitted_only_while_their_demand_fits_and_every_trial_runs_once() {
    // 300 MB besides: 700 MB left, two workers of 250 predicted (three
    // would be 750), then 200 measured + 10 % = 220: three fit (660).
    let (summary, machine) = search(
        8,
        4,
        Machine {
            base: 300 * MB,
            ..Machine::default()
        },
    );
    let m = machine.borrow();
    let mut done = m.finished.clone();
    done.sort_unstable();
    assert_eq!(done, (0..8).collect::<Vec<_>>(), "every trial once");
    assert!(summary.failed.is_empty());
    assert_eq!(m.max_alive, 3, "never more than fit");
    assert!(m.max_used <= 1_000 * MB, "used {} MB", m.max_used / MB);
    let g = summary.governor.unwrap();
    assert!(g.refused.get("memory").is_some_and(|n| *n > 0), "{g:?}");
    assert_eq!(g.pauses, 0);
    assert_eq!(summary.max_concurrent_workers, 3);
}

#[test]
fn a_leaking_worker_is_reported_paused_then_terminated_and_its_trial_runs_again() {
    // Trial 1 grows to 1.5 GB: over process_rss (500 MB), then over the
    // hard line (1.1 GB with the others): the newest running workers are paused,
    // then after the grace the newest paused (trial 1) is terminated, the
    // other resumes, and trial 1 runs again (its leak was its first run's
    // only).
    let machine = Machine {
        base: 100 * MB,
        leak: Some((1, 1_500 * MB)),
        ..Machine::default()
    };
    let (summary, machine) = search(4, 2, machine);
    let m = machine.borrow();
    let mut done = m.finished.clone();
    done.sort_unstable();
    assert_eq!(done, [0, 1, 2, 3], "every trial done once");
    let g = summary.governor.unwrap();
    assert!(g.pauses >= 1, "{g:?}");
    assert_eq!(g.terminations, 1, "{g:?}");
    assert_eq!(g.alerts.get("worker_rss"), Some(&1), "{g:?}");
    assert_eq!(summary.requeued, 1);
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
}

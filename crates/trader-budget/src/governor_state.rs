//! The state a running `trader train`'s governor writes into its output
//! directory ([`GOVERNOR_STATE_FILE`], whole-file: the CLI writes it at most
//! once a second and at the end, marked `finished`), and how `trader budget`
//! finds the governors running now: `trader train` coordinators in `/proc`
//! (see [`crate::probe_train_processes`]), their `--out DIR`, and
//! `DIR/.governor.json` written by that process. A finished file stays
//! beside the ensemble (the last counts of the search); only a file whose
//! `pid` is a coordinator running now counts as a running governor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Tenant, WORKER_TENANT, probe_train_processes};

/// The governor's state file in `trader train`'s `--out` directory.
pub const GOVERNOR_STATE_FILE: &str = ".governor.json";

/// Where a worker's demand comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemandSource {
    /// The budget model's bound (no worker measured yet).
    Predicted,
    /// The largest measured peak plus the margin.
    Measured,
}

/// One worker's demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernorDemand {
    pub source: DemandSource,
    /// Bytes one more worker is counted at.
    pub bytes: u64,
    /// The largest measured peak, when measured.
    pub peak: Option<u64>,
}

/// A running or paused worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernedWorker {
    pub slot: u32,
    /// Resident set at the last reading.
    pub rss: u64,
    /// Its largest reading so far.
    pub peak: u64,
    /// Paused by the governor (SIGSTOP) at the last reading.
    #[serde(default)]
    pub paused: bool,
}

/// The governor's counts (trader-governor's `GovernorStats`, as plain data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernorCounts {
    pub admitted: u64,
    pub refused: BTreeMap<String, u64>,
    pub pauses: u64,
    pub resumes: u64,
    pub terminations: u64,
    pub trials_finished: u64,
    pub alerts: BTreeMap<String, u64>,
}

/// What `trader train`'s governor holds now ([`GOVERNOR_STATE_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernorState {
    /// The coordinator's process id.
    pub pid: u32,
    /// Clock time of this state, ms since the epoch.
    pub updated_ms: i64,
    /// The search ended (the last state written).
    pub finished: bool,
    pub active: u32,
    pub paused: u32,
    /// Trials waiting for a worker.
    pub queued: u64,
    pub workers: Vec<GovernedWorker>,
    pub demand: GovernorDemand,
    /// RAM in use as the governor counts it (the machine's, or the workers'
    /// own with `--ram-pool`).
    pub used: u64,
    /// What all together may use.
    pub limit: u64,
    /// Over this, workers are paused.
    pub hard_limit: u64,
    pub counts: GovernorCounts,
}

impl GovernorState {
    /// Reads `dir`'s state file; None when it is missing or unreadable.
    #[must_use]
    pub fn read(dir: &Path) -> Option<GovernorState> {
        let text = fs_err::read_to_string(dir.join(GOVERNOR_STATE_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// A `trader train` coordinator running now, and its governor's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningGovernor {
    pub pid: u32,
    /// Its `--out` directory.
    pub out: PathBuf,
    /// Its state file, when it has written one (None: not yet, or it is not
    /// governed by this version).
    pub state: Option<GovernorState>,
}

/// The `trader train` coordinators running under `root` (`/` on a real
/// machine) with their governors' states: command lines with `train`, an
/// `--out DIR` and no `--worker-trial`; a relative DIR is taken from the
/// process's working directory (`/proc/PID/cwd`). A state file written by
/// another process (an earlier run) is not theirs and is left out.
#[must_use]
pub fn probe_governors(root: &Path) -> Vec<RunningGovernor> {
    probe_train_processes(root)
        .into_iter()
        .filter(|p| !p.worker)
        .filter_map(|p| {
            let out = out_arg(&p.args)?;
            let out = if out.is_absolute() {
                out
            } else {
                fs_err::read_link(root.join(format!("proc/{}/cwd", p.pid)))
                    .ok()?
                    .join(out)
            };
            let state = GovernorState::read(&out).filter(|s| s.pid == p.pid);
            Some(RunningGovernor {
                pid: p.pid,
                out,
                state,
            })
        })
        .collect()
}

/// The value of `--out DIR` or `--out=DIR` after the `train` argument.
fn out_arg(args: &[String]) -> Option<PathBuf> {
    let after = args.iter().position(|a| a == "train")?;
    let mut rest = args[after + 1..].iter().take_while(|a| *a != "--");
    while let Some(a) = rest.next() {
        if a == "--out" {
            return rest.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--out=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// What one training worker is counted at in a budget, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRam {
    /// Bytes per worker of the [`WORKER_TENANT`] co-tenant.
    pub bytes: u64,
    /// The host file's value.
    pub declared: u64,
    /// `measured` (a running governor's measured demand) or `declared`.
    pub source: &'static str,
    /// The governor it was measured by.
    pub governor_pid: Option<u32>,
}

/// The governors' view in a budget: the running ones and what a worker is
/// counted at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GovernorSection {
    pub running: Vec<RunningGovernor>,
    /// None without a [`WORKER_TENANT`] co-tenant.
    pub worker_ram: Option<WorkerRam>,
}

/// Counts the [`WORKER_TENANT`] co-tenant of `tenants` at the largest
/// measured demand of the running `governors` (the budget's fixes then use
/// measured worker sizes); the host file's value stays when none has
/// measured one.
#[must_use]
pub fn use_measured_workers(
    tenants: &mut [Tenant],
    governors: Vec<RunningGovernor>,
) -> GovernorSection {
    let measured = governors
        .iter()
        .filter_map(|g| {
            let s = g.state.as_ref()?;
            (s.demand.source == DemandSource::Measured && !s.finished)
                .then_some((s.demand.bytes, g.pid))
        })
        .max();
    let worker_ram = tenants
        .iter_mut()
        .find(|t| t.name == WORKER_TENANT)
        .map(|t| {
            let declared = t.ram_each;
            match measured {
                Some((bytes, pid)) => {
                    t.ram_each = bytes;
                    WorkerRam {
                        bytes,
                        declared,
                        source: "measured",
                        governor_pid: Some(pid),
                    }
                }
                None => WorkerRam {
                    bytes: declared,
                    declared,
                    source: "declared",
                    governor_pid: None,
                },
            }
        });
    GovernorSection {
        running: governors,
        worker_ram,
    }
}

/// The text of [`GovernorSection`] for `trader budget` (empty when no
/// governor runs).
#[must_use]
pub fn render_governors(section: &GovernorSection) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let mut text = String::new();
    for g in &section.running {
        text += &format!(
            "governor: trader train (pid {}), out {}\n",
            g.pid,
            g.out.display()
        );
        let Some(s) = &g.state else {
            text += "  no state written yet\n";
            continue;
        };
        text += &format!(
            "  workers: {} active, {} paused, {} trials queued; RAM in use {:.1} MB, limit {:.1} MB, hard line {:.1} MB{}\n",
            s.active,
            s.paused,
            s.queued,
            mb(s.used),
            mb(s.limit),
            mb(s.hard_limit),
            if s.finished { " (finished)" } else { "" },
        );
        for w in &s.workers {
            text += &format!(
                "  worker {}: {:.1} MB now, peak {:.1} MB{}\n",
                w.slot,
                mb(w.rss),
                mb(w.peak),
                if w.paused { " (paused)" } else { "" }
            );
        }
        text += &match s.demand.source {
            DemandSource::Predicted => format!(
                "  demand per worker: {:.1} MB (predicted: no worker measured yet)\n",
                mb(s.demand.bytes)
            ),
            DemandSource::Measured => format!(
                "  demand per worker: {:.1} MB (measured: peak {:.1} MB plus the margin)\n",
                mb(s.demand.bytes),
                mb(s.demand.peak.unwrap_or(0))
            ),
        };
    }
    if !section.running.is_empty()
        && let Some(w) = &section.worker_ram
    {
        text += &match w.governor_pid {
            Some(pid) => format!(
                "{WORKER_TENANT:?} counted at {:.1} MB per worker: measured by the governor (pid {pid}), instead of the host file's {:.1} MB\n",
                mb(w.bytes),
                mb(w.declared)
            ),
            None => format!(
                "{WORKER_TENANT:?} counted at {:.1} MB per worker: the host file's (no governor has measured a worker yet)\n",
                mb(w.bytes)
            ),
        };
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pid: u32, source: DemandSource, bytes: u64) -> GovernorState {
        GovernorState {
            pid,
            updated_ms: 1_700_000_000_000,
            finished: false,
            active: 2,
            paused: 1,
            queued: 4,
            workers: vec![
                GovernedWorker {
                    slot: 0,
                    rss: 300_000_000,
                    peak: 350_000_000,
                    paused: false,
                },
                GovernedWorker {
                    slot: 1,
                    rss: 100_000_000,
                    peak: 120_000_000,
                    paused: true,
                },
            ],
            demand: GovernorDemand {
                source,
                bytes,
                peak: (source == DemandSource::Measured).then_some(bytes * 10 / 11),
            },
            used: 1_500_000_000,
            limit: 2_000_000_000,
            hard_limit: 2_500_000_000,
            counts: GovernorCounts {
                admitted: 5,
                refused: [("memory".to_owned(), 3)].into(),
                pauses: 1,
                ..GovernorCounts::default()
            },
        }
    }

    fn write(path: &Path, text: &str) {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
    }

    #[test]
    fn the_state_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(42, DemandSource::Measured, 385_000_000);
        write(
            &dir.path().join(GOVERNOR_STATE_FILE),
            &serde_json::to_string(&s).unwrap(),
        );
        assert_eq!(GovernorState::read(dir.path()), Some(s));
        write(&dir.path().join(GOVERNOR_STATE_FILE), "{\"pid\":");
        assert_eq!(GovernorState::read(dir.path()), None);
    }

    #[test]
    fn budget_finds_a_running_governor_and_counts_its_measured_workers() {
        let root = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        fs_err::create_dir(cwd.path().join("rel")).unwrap();
        let p = root.path();
        let out_arg = format!("--out\0{}\0", out.path().display());
        write(
            &p.join("proc/500/cmdline"),
            &format!("/bin/trader\0train\0--exec\0--trials\x003\0{out_arg}--\0python3\0"),
        );
        // A worker of that search, a relative --out without a state file,
        // and a trader run: not governors (or no state).
        write(
            &p.join("proc/501/cmdline"),
            &format!("/bin/trader\0train\0{out_arg}--worker-trial\x001\0"),
        );
        write(&p.join("proc/501/status"), "VmRSS: 1000 kB\n");
        write(&p.join("proc/502/cmdline"), "trader\0train\0--out=rel\0");
        std::os::unix::fs::symlink(cwd.path(), p.join("proc/502/cwd")).unwrap();
        write(&p.join("proc/503/cmdline"), "trader\0run\0--out\0x\0");
        let s = state(500, DemandSource::Measured, 385_000_000);
        write(
            &out.path().join(GOVERNOR_STATE_FILE),
            &serde_json::to_string(&s).unwrap(),
        );

        let found = probe_governors(p);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].pid, found[0].out.as_path()), (500, out.path()));
        assert_eq!(found[0].state, Some(s.clone()));
        assert_eq!(
            (found[1].pid, found[1].out.clone(), found[1].state.clone()),
            (502, cwd.path().join("rel"), None)
        );

        let mut tenants = vec![Tenant {
            name: WORKER_TENANT.to_owned(),
            count: 3,
            ram_each: 1_000_000_000,
            vram_each: 0,
        }];
        let section = use_measured_workers(&mut tenants, found);
        assert_eq!(tenants[0].ram_each, 385_000_000);
        let w = section.worker_ram.clone().unwrap();
        assert_eq!(
            (w.source, w.declared, w.governor_pid),
            ("measured", 1_000_000_000, Some(500))
        );
        let text = render_governors(&section);
        for part in [
            "governor: trader train (pid 500)",
            "2 active, 1 paused, 4 trials queued",
            "worker 0: 300.0 MB now, peak 350.0 MB\n",
            "worker 1: 100.0 MB now, peak 120.0 MB (paused)",
            "demand per worker: 385.0 MB (measured",
            "\"training-worker\" counted at 385.0 MB per worker: measured by the governor (pid 500), instead of the host file's 1000.0 MB",
            "no state written yet",
        ] {
            assert!(text.contains(part), "{part:?} not in\n{text}");
        }

        // A predicted demand (or a state of an earlier run) leaves the
        // host file's value.
        let mut state_other = s;
        state_other.pid = 999;
        write(
            &out.path().join(GOVERNOR_STATE_FILE),
            &serde_json::to_string(&state_other).unwrap(),
        );
        let section = use_measured_workers(&mut tenants[..0], probe_governors(p));
        assert!(section.running.iter().all(|g| g.state.is_none()));
        let mut tenants = vec![Tenant {
            name: WORKER_TENANT.to_owned(),
            count: 3,
            ram_each: 1_000_000_000,
            vram_each: 0,
        }];
        let predicted = vec![RunningGovernor {
            pid: 7,
            out: PathBuf::from("/x"),
            state: Some(state(7, DemandSource::Predicted, 5)),
        }];
        let section = use_measured_workers(&mut tenants, predicted);
        assert_eq!(tenants[0].ram_each, 1_000_000_000);
        assert_eq!(section.worker_ram.unwrap().source, "declared");
    }
}

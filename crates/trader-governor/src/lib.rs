//! The live governor of training workers (`trader train --workers auto`):
//! the budget as a policy while the box changes, instead of `kill` by hand.
//!
//! Pure: every decision is a function of the [`Reading`]s it is given (the
//! RAM in use on the machine, each worker's RSS, the VRAM percent) and
//! their times, so the rules are tested with scripted readings on a manual
//! clock. The caller measures (trader-budget's probes), launches, signals
//! and restarts (trader-train's scheduler, the CLI's processes).
//!
//! The rules, in the order they apply:
//! - **Demand of a worker**: the budget model's bound until a worker has
//!   finished, then the largest peak measured so far plus
//!   `margin_percent` ([`Demand`]; the log says which). A worker that
//!   crossed `process_rss` (a leak) does not set it.
//! - **Admission** ([`Governor::admit`]): one more worker starts only
//!   when fewer than `max_workers` run, none is paused, and the RAM in use
//!   plus what the running workers will still grow to (each up to the
//!   demand) plus one more demand fits `limit`. Otherwise it is refused
//!   with a [`Refusal`] (counted by reason).
//! - **Over the limit while workers run**: no admission. A worker runs one
//!   trial, so the newest one that finishes is simply not replaced: that
//!   is "finishes its trial and is not restarted".
//! - **Over the hard line** (`hard_limit`, the host's alert level): the
//!   newest running worker is paused (SIGSTOP), one per reading. Paused
//!   workers are resumed (SIGCONT) oldest first when the RAM in use plus
//!   their growth fits `limit` again. A pause stops growth but frees
//!   nothing: when workers are paused, none runs and none can resume for
//!   `terminate_after_ms`, the paused one holding the most is terminated
//!   and its trial re-queued (this frees its memory; the trial runs again
//!   from the start). Pause first, because a paused trial keeps its work
//!   when the squeeze is brief (another process's peak); terminate only
//!   when waiting cannot help.
//! - **`min_workers`**: a pause that leaves fewer workers running raises the
//!   [`AlertKind::BelowMinWorkers`] alert (memory first: the box must not
//!   run out).
//! - **Alerts**, once per crossing (raised, then cleared): a worker's RSS
//!   over `process_rss` ("memory leak"), trials per hour below
//!   `min_trials_per_hour` over `window_ms` ("too few workers"), VRAM over
//!   `vram_percent`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

/// A worker's id (its slot, or a supervised child's number).
pub type WorkerId = u32;

/// The user's alerts (the host file's `[alerts]`, and `--min-trials-per-hour`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlertLines {
    /// A worker resident above this is reported ("memory leak").
    pub process_rss: Option<u64>,
    /// Trials per hour below this over `window_ms` ("too few workers").
    pub min_trials_per_hour: Option<f64>,
    /// The window of the trials-per-hour rate, ms (checked once this long
    /// has passed since the start).
    pub window_ms: i64,
    /// VRAM use above this percent of the card.
    pub vram_percent: Option<f64>,
}

/// What the governor holds to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GovernorSettings {
    /// RAM all processes together may use (the host's allowed bytes).
    pub limit: u64,
    /// The hard line: over it, workers are paused.
    pub hard_limit: u64,
    /// Most workers at once (`--workers N` as a cap).
    pub max_workers: u32,
    /// Fewer running than this raises an alert (`--min-workers`).
    pub min_workers: u32,
    /// The budget model's bound of one worker's RSS.
    pub predicted_worker: u64,
    /// Measured peaks count with this margin.
    pub margin_percent: u32,
    /// Over the hard line this long with a worker paused: terminate one.
    pub terminate_after_ms: i64,
    pub alerts: AlertLines,
}

/// What the machine looks like now.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Clock time, ms.
    pub now_ms: i64,
    /// RAM in use on the machine (workers included), bytes.
    pub used: u64,
    /// Each running or paused worker's RSS now, bytes.
    pub workers: BTreeMap<WorkerId, u64>,
    /// VRAM in use, percent of the card (None: no GPU).
    pub vram_percent: Option<f64>,
}

/// A worker's demand, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum Demand {
    /// The budget model's bound (no worker measured yet).
    Predicted { bytes: u64 },
    /// The largest measured peak plus the margin.
    Measured { peak: u64, bytes: u64 },
}

impl Demand {
    #[must_use]
    pub fn bytes(self) -> u64 {
        match self {
            Demand::Predicted { bytes } | Demand::Measured { bytes, .. } => bytes,
        }
    }
}

/// Why one more worker did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Refusal {
    /// `max_workers` run already.
    MaxWorkers,
    /// A worker is paused: it is resumed before any other starts.
    Paused,
    /// The RAM in use, the running workers' growth and one more demand
    /// exceed the limit.
    Memory { need: u64, free: u64 },
}

impl Refusal {
    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxWorkers => "max_workers",
            Refusal::Paused => "paused",
            Refusal::Memory { .. } => "memory",
        }
    }
}

/// Which alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A worker's RSS over `process_rss`.
    WorkerRss,
    /// Trials per hour below `min_trials_per_hour`.
    TrialsPerHour,
    /// VRAM over `vram_percent`.
    Vram,
    /// Fewer than `min_workers` running (paused to keep the box alive).
    BelowMinWorkers,
}

impl AlertKind {
    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::WorkerRss => "worker_rss",
            AlertKind::TrialsPerHour => "trials_per_hour",
            AlertKind::Vram => "vram",
            AlertKind::BelowMinWorkers => "below_min_workers",
        }
    }
}

/// An alert that started (`raised`) or stopped holding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    /// The worker it is about, when it is about one.
    pub worker: Option<WorkerId>,
    pub raised: bool,
    pub message: String,
}

/// What the caller does now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Action {
    /// Stop the worker (SIGSTOP).
    Pause(WorkerId),
    /// Continue it (SIGCONT).
    Resume(WorkerId),
    /// Kill it and run its trial again later.
    Terminate(WorkerId),
    /// Log (WARN when raised) and count.
    Alert(Alert),
}

/// The governor's counts, for the summary and metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GovernorStats {
    pub admitted: u64,
    /// Admissions refused, by [`Refusal::as_str`].
    pub refused: BTreeMap<&'static str, u64>,
    pub pauses: u64,
    pub resumes: u64,
    pub terminations: u64,
    /// Milliseconds workers spent paused, all together.
    pub paused_ms: i64,
    pub max_concurrent_workers: u32,
    pub trials_finished: u64,
    /// Alerts raised, by [`AlertKind::as_str`].
    pub alerts: BTreeMap<&'static str, u64>,
}

/// One worker as the governor holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkerView {
    pub id: WorkerId,
    /// RSS at the last reading, bytes.
    pub rss: u64,
    /// Its largest reading so far.
    pub peak: u64,
    pub paused: bool,
}

#[derive(Debug, Clone)]
struct WorkerState {
    started_ms: i64,
    paused_since: Option<i64>,
    peak: u64,
    rss: u64,
    /// Crossed `process_rss` at some reading (a leak), even if it fell back.
    leaked: bool,
}

/// The governor of one search (see the crate doc).
#[derive(Debug, Clone)]
pub struct Governor {
    settings: GovernorSettings,
    workers: BTreeMap<WorkerId, WorkerState>,
    measured_peak: Option<u64>,
    started_ms: i64,
    finished_ms: VecDeque<i64>,
    /// Since when workers are paused, none runs and none can resume.
    stuck_since: Option<i64>,
    holding: BTreeSet<(AlertKind, Option<WorkerId>)>,
    stats: GovernorStats,
}

impl Governor {
    /// A governor from clock time `now_ms` on.
    #[must_use]
    pub fn new(settings: GovernorSettings, now_ms: i64) -> Self {
        Governor {
            settings,
            workers: BTreeMap::new(),
            measured_peak: None,
            started_ms: now_ms,
            finished_ms: VecDeque::new(),
            stuck_since: None,
            holding: BTreeSet::new(),
            stats: GovernorStats::default(),
        }
    }

    #[must_use]
    pub fn settings(&self) -> &GovernorSettings {
        &self.settings
    }

    #[must_use]
    pub fn stats(&self) -> &GovernorStats {
        &self.stats
    }

    /// Workers running (not paused).
    #[must_use]
    pub fn active(&self) -> u32 {
        count(self.workers.values().filter(|w| w.paused_since.is_none()))
    }

    /// Workers paused.
    #[must_use]
    pub fn paused(&self) -> u32 {
        count(self.workers.values().filter(|w| w.paused_since.is_some()))
    }

    /// Every running or paused worker, by id.
    #[must_use]
    pub fn workers(&self) -> Vec<WorkerView> {
        self.workers
            .iter()
            .map(|(id, w)| WorkerView {
                id: *id,
                rss: w.rss,
                peak: w.peak,
                paused: w.paused_since.is_some(),
            })
            .collect()
    }

    /// The largest RSS read of a running worker.
    #[must_use]
    pub fn peak_of(&self, id: WorkerId) -> Option<u64> {
        self.workers.get(&id).map(|w| w.peak)
    }

    /// The largest peak measured of a finished worker.
    #[must_use]
    pub fn measured_peak(&self) -> Option<u64> {
        self.measured_peak
    }

    /// One worker's demand now.
    #[must_use]
    pub fn demand(&self) -> Demand {
        match self.measured_peak {
            None => Demand::Predicted {
                bytes: self.settings.predicted_worker,
            },
            Some(peak) => Demand::Measured {
                peak,
                bytes: peak + peak * u64::from(self.settings.margin_percent) / 100,
            },
        }
    }

    /// What the workers still grow to: each up to the demand. A worker the
    /// reading has no RSS for (exiting: its /proc entry without memory, a
    /// zombie not yet collected) is not in `reading.used` either: it counts
    /// whole, at its demand (or the more it was last seen holding), until
    /// the caller collects it and calls [`Governor::ended`]. Counting only
    /// its growth from its last RSS let a worker start in the slot of one
    /// still ending, one more at once than the pool holds.
    fn growth(&self, reading: &Reading, paused_too: bool) -> u64 {
        let demand = self.demand().bytes();
        self.workers
            .iter()
            .filter(|(_, w)| paused_too || w.paused_since.is_none())
            .map(|(id, w)| match reading.workers.get(id) {
                Some(&rss) => demand.saturating_sub(rss),
                None => demand.max(w.rss),
            })
            .sum()
    }

    /// Whether one more worker may start now: Ok with its demand (the
    /// caller then starts it and calls [`Governor::started`]).
    ///
    /// # Errors
    /// The [`Refusal`], counted.
    pub fn admit(&mut self, reading: &Reading) -> Result<Demand, Refusal> {
        let refusal = if self.workers.len() >= self.settings.max_workers as usize {
            Some(Refusal::MaxWorkers)
        } else if self.paused() > 0 {
            Some(Refusal::Paused)
        } else {
            let demand = self.demand().bytes();
            let committed = reading.used + self.growth(reading, true);
            let free = self.settings.limit.saturating_sub(committed);
            (demand > free).then_some(Refusal::Memory { need: demand, free })
        };
        match refusal {
            Some(r) => {
                *self.stats.refused.entry(r.as_str()).or_insert(0) += 1;
                Err(r)
            }
            None => Ok(self.demand()),
        }
    }

    /// A worker admitted by [`Governor::admit`] started.
    pub fn started(&mut self, id: WorkerId, now_ms: i64) {
        self.workers.insert(
            id,
            WorkerState {
                started_ms: now_ms,
                paused_since: None,
                peak: 0,
                rss: 0,
                leaked: false,
            },
        );
        self.stats.admitted += 1;
        self.stats.max_concurrent_workers = self
            .stats
            .max_concurrent_workers
            .max(count(self.workers.values()));
    }

    /// A worker ended: its trial done (`trial_done`) or not (failed,
    /// terminated); `peak` its peak RSS, when known.
    pub fn ended(&mut self, id: WorkerId, now_ms: i64, peak: Option<u64>, trial_done: bool) {
        let Some(w) = self.workers.remove(&id) else {
            return;
        };
        if let Some(since) = w.paused_since {
            self.stats.paused_ms += now_ms - since;
        }
        let peak = peak.unwrap_or(0).max(w.peak);
        // A worker that crossed `process_rss` (a leak) is not what the next
        // one will need: its peak does not set the demand.
        let leaked = w.leaked;
        if trial_done {
            self.stats.trials_finished += 1;
            self.finished_ms.push_back(now_ms);
            if peak > 0 && !leaked {
                self.measured_peak = Some(self.measured_peak.unwrap_or(0).max(peak));
            }
        }
        self.holding.remove(&(AlertKind::WorkerRss, Some(id)));
    }

    /// What to do now, given `reading` (pauses, resumes, terminations and
    /// alert crossings).
    pub fn observe(&mut self, reading: &Reading) -> Vec<Action> {
        let mut actions = Vec::new();
        for (id, w) in &mut self.workers {
            if let Some(&rss) = reading.workers.get(id) {
                w.rss = rss;
                w.peak = w.peak.max(rss);
            }
        }
        self.check_alerts(reading, &mut actions);
        let s = self.settings;
        if reading.used > s.hard_limit
            && let Some(id) = self.newest(false)
        {
            self.pause(id, reading.now_ms, &mut actions);
            if self.active() < s.min_workers {
                self.raise(
                    (AlertKind::BelowMinWorkers, None),
                    format!(
                        "{} MB in use is over the hard line of {} MB: worker {id} paused, {} running, fewer than --min-workers {}",
                        mb(reading.used),
                        mb(s.hard_limit),
                        self.active(),
                        s.min_workers
                    ),
                    &mut actions,
                );
            }
            return actions;
        }
        // Headroom: resume the oldest paused worker when it fits again.
        let mut resumed = false;
        if reading.used <= s.hard_limit
            && let Some(id) = self.oldest_paused()
        {
            let committed = reading.used + self.growth(reading, false);
            let its_growth = self
                .demand()
                .bytes()
                .saturating_sub(reading.workers.get(&id).copied().unwrap_or(0));
            if committed + its_growth <= s.limit {
                self.resume(id, reading.now_ms, &mut actions);
                resumed = true;
            }
        }
        // Stuck: workers paused, none running, none can resume (over the
        // hard line, or over the limit). Pausing froze growth but gives
        // nothing back: after the grace, the paused worker holding the most
        // is terminated (its trial runs again later).
        let stuck = self.paused() > 0 && self.active() == 0 && !resumed;
        if stuck {
            let since = *self.stuck_since.get_or_insert(reading.now_ms);
            if reading.now_ms - since >= s.terminate_after_ms
                && let Some(id) = self.largest_paused()
            {
                if let Some(paused) = self.workers.remove(&id).and_then(|w| w.paused_since) {
                    self.stats.paused_ms += reading.now_ms - paused;
                }
                self.stats.terminations += 1;
                self.stuck_since = Some(reading.now_ms);
                actions.push(Action::Terminate(id));
            }
        } else {
            self.stuck_since = None;
        }
        if self.active() >= s.min_workers {
            self.clear((AlertKind::BelowMinWorkers, None), &mut actions);
        }
        actions
    }

    /// The paused worker holding the most memory.
    fn largest_paused(&self) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, w)| w.paused_since.is_some())
            .max_by_key(|(id, w)| (w.rss, **id))
            .map(|(id, _)| *id)
    }

    /// The newest worker running (`paused` false) or paused (true).
    fn newest(&self, paused: bool) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, w)| w.paused_since.is_some() == paused)
            .max_by_key(|(id, w)| (w.started_ms, **id))
            .map(|(id, _)| *id)
    }

    fn oldest_paused(&self) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, w)| w.paused_since.is_some())
            .min_by_key(|(id, w)| (w.started_ms, **id))
            .map(|(id, _)| *id)
    }

    fn pause(&mut self, id: WorkerId, now_ms: i64, actions: &mut Vec<Action>) {
        if let Some(w) = self.workers.get_mut(&id) {
            w.paused_since = Some(now_ms);
            self.stats.pauses += 1;
            actions.push(Action::Pause(id));
        }
    }

    fn resume(&mut self, id: WorkerId, now_ms: i64, actions: &mut Vec<Action>) {
        if let Some(w) = self.workers.get_mut(&id)
            && let Some(since) = w.paused_since.take()
        {
            self.stats.paused_ms += now_ms - since;
            self.stats.resumes += 1;
            actions.push(Action::Resume(id));
        }
    }

    fn check_alerts(&mut self, reading: &Reading, actions: &mut Vec<Action>) {
        let lines = self.settings.alerts;
        if let Some(line) = lines.process_rss {
            let over: Vec<(WorkerId, u64)> =
                self.workers.iter().map(|(id, w)| (*id, w.rss)).collect();
            for (id, rss) in over {
                let key = (AlertKind::WorkerRss, Some(id));
                if rss > line {
                    if let Some(w) = self.workers.get_mut(&id) {
                        w.leaked = true;
                    }
                    self.raise(
                        key,
                        format!(
                            "worker {id} holds {} MB, over process_rss {} MB (memory leak?)",
                            mb(rss),
                            mb(line)
                        ),
                        actions,
                    );
                } else {
                    self.clear(key, actions);
                }
            }
        }
        if let Some(min) = lines.min_trials_per_hour
            && reading.now_ms - self.started_ms >= lines.window_ms
            && lines.window_ms > 0
        {
            let from = reading.now_ms - lines.window_ms;
            while self.finished_ms.front().is_some_and(|&t| t < from) {
                self.finished_ms.pop_front();
            }
            let rate = self.finished_ms.len() as f64 * 3_600_000.0 / lines.window_ms as f64;
            let key = (AlertKind::TrialsPerHour, None);
            if rate < min {
                self.raise(
                    key,
                    format!(
                        "{rate:.1} trials per hour over the last {} min, below min_trials_per_hour {min} (too few workers?)",
                        lines.window_ms / 60_000
                    ),
                    actions,
                );
            } else {
                self.clear(key, actions);
            }
        }
        if let (Some(line), Some(pct)) = (lines.vram_percent, reading.vram_percent) {
            let key = (AlertKind::Vram, None);
            if pct > line {
                self.raise(
                    key,
                    format!("VRAM {pct:.0} % in use, over vram_percent {line:.0} %"),
                    actions,
                );
            } else {
                self.clear(key, actions);
            }
        }
    }

    fn raise(
        &mut self,
        key: (AlertKind, Option<WorkerId>),
        message: String,
        actions: &mut Vec<Action>,
    ) {
        if self.holding.insert(key) {
            *self.stats.alerts.entry(key.0.as_str()).or_insert(0) += 1;
            actions.push(Action::Alert(Alert {
                kind: key.0,
                worker: key.1,
                raised: true,
                message,
            }));
        }
    }

    fn clear(&mut self, key: (AlertKind, Option<WorkerId>), actions: &mut Vec<Action>) {
        if self.holding.remove(&key) {
            actions.push(Action::Alert(Alert {
                kind: key.0,
                worker: key.1,
                raised: false,
                message: format!("{} cleared", key.0.as_str()),
            }));
        }
    }
}

fn count<'a>(it: impl Iterator<Item = &'a WorkerState>) -> u32 {
    u32::try_from(it.count()).unwrap_or(u32::MAX)
}

fn mb(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests;

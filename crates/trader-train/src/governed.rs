//! The search under the governor (`trader train --workers auto`): each
//! worker admitted by the memory the machine has now, running ones paused,
//! resumed or terminated as it changes, and the user's alerts logged, with
//! trader-governor's decisions over the caller's [`MemoryProbe`] readings.

use std::collections::BTreeMap;

use trader_core::Clock;
use trader_governor::{Action, Demand, Governor, GovernorStats, Reading, WorkerId, WorkerView};

use crate::WorkerSignal;

/// Measures the machine for the governor.
pub trait MemoryProbe {
    /// RAM in use now (workers included), each worker's RSS by its pid
    /// (`pids`: worker slot -> process id; a process gone is left out), and
    /// the VRAM percent when a GPU is there.
    fn read(&mut self, now_ms: i64, pids: &BTreeMap<WorkerId, u32>) -> Reading;
}

/// What the governor holds after a reading (for metrics).
#[derive(Debug, Clone, Copy)]
pub struct GovernorView<'a> {
    pub active: u32,
    pub paused: u32,
    /// Trials waiting for a worker.
    pub queued: usize,
    pub reading: &'a Reading,
    /// Every running or paused worker: its RSS, peak and whether paused.
    pub workers: &'a [WorkerView],
    pub stats: &'a GovernorStats,
    pub demand: Demand,
}

/// A governor with its probe, its clock and who watches it.
pub struct Governance<'a> {
    governor: Governor,
    probe: &'a mut dyn MemoryProbe,
    clock: &'a dyn Clock,
    on_reading: &'a mut dyn FnMut(&GovernorView<'_>),
    last_refusal: Option<&'static str>,
    last_demand: Option<Demand>,
}

impl<'a> Governance<'a> {
    #[must_use]
    pub fn new(
        governor: Governor,
        probe: &'a mut dyn MemoryProbe,
        clock: &'a dyn Clock,
        on_reading: &'a mut dyn FnMut(&GovernorView<'_>),
    ) -> Self {
        Governance {
            governor,
            probe,
            clock,
            on_reading,
            last_refusal: None,
            last_demand: None,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn read(&mut self, pids: &BTreeMap<WorkerId, u32>) -> Reading {
        let now = self.now_ms();
        self.probe.read(now, pids)
    }

    /// Whether one more worker may start now (logged when the answer or
    /// the demand's source changes).
    pub(crate) fn admit(&mut self, pids: &BTreeMap<WorkerId, u32>, queued: usize) -> bool {
        let reading = self.read(pids);
        let answer = self.governor.admit(&reading);
        self.report(&reading, queued);
        match answer {
            Ok(demand) => {
                let measured = |d: &Demand| matches!(d, Demand::Measured { .. });
                if self.last_demand.as_ref().map(measured) != Some(measured(&demand)) {
                    match demand {
                        Demand::Predicted { bytes } => tracing::info!(
                            demand_mb = bytes as f64 / 1e6,
                            "a worker's demand: the budget model's bound (no worker measured yet)"
                        ),
                        Demand::Measured { peak, bytes } => tracing::info!(
                            demand_mb = bytes as f64 / 1e6,
                            peak_mb = peak as f64 / 1e6,
                            margin_percent = self.governor.settings().margin_percent,
                            "a worker's demand: the largest measured peak plus the margin"
                        ),
                    }
                }
                self.last_demand = Some(demand);
                self.last_refusal = None;
                true
            }
            Err(refusal) => {
                if let trader_governor::Refusal::Memory { need, free } = refusal
                    && self.governor.active() == 0
                    && self.governor.paused() == 0
                    && self.last_refusal != Some(refusal.as_str())
                {
                    tracing::warn!(
                        need_mb = need as f64 / 1e6,
                        free_mb = free as f64 / 1e6,
                        "no worker fits even with none running; waiting for memory to free up"
                    );
                }
                if self.last_refusal != Some(refusal.as_str()) {
                    tracing::info!(
                        reason = refusal.as_str(),
                        running = self.governor.active(),
                        paused = self.governor.paused(),
                        used_mb = reading.used as f64 / 1e6,
                        limit_mb = self.governor.settings().limit as f64 / 1e6,
                        "no worker admitted now: {refusal:?}"
                    );
                    self.last_refusal = Some(refusal.as_str());
                }
                false
            }
        }
    }

    pub(crate) fn started(&mut self, slot: WorkerId) {
        let now = self.now_ms();
        self.governor.started(slot, now);
    }

    /// The signals to send now (pauses, resumes, terminations); alerts are
    /// logged (WARN when raised).
    pub(crate) fn observe(
        &mut self,
        pids: &BTreeMap<WorkerId, u32>,
        queued: usize,
    ) -> Vec<(WorkerId, WorkerSignal)> {
        let reading = self.read(pids);
        let actions = self.governor.observe(&reading);
        let mut signals = Vec::new();
        let used_mb = reading.used as f64 / 1e6;
        for action in actions {
            match action {
                Action::Pause(id) => {
                    tracing::warn!(
                        worker = id,
                        used_mb,
                        "over the hard line: worker paused (SIGSTOP)"
                    );
                    signals.push((id, WorkerSignal::Pause));
                }
                Action::Resume(id) => {
                    tracing::info!(
                        worker = id,
                        used_mb,
                        "headroom again: worker resumed (SIGCONT)"
                    );
                    signals.push((id, WorkerSignal::Resume));
                }
                Action::Terminate(id) => {
                    tracing::warn!(
                        worker = id,
                        used_mb,
                        "workers paused and none can resume: the paused worker holding the most is terminated and its trial queued again"
                    );
                    signals.push((id, WorkerSignal::Terminate));
                }
                Action::Alert(alert) if alert.raised => {
                    tracing::warn!(kind = alert.kind.as_str(), worker = ?alert.worker, "{}", alert.message);
                }
                Action::Alert(alert) => {
                    tracing::info!(kind = alert.kind.as_str(), worker = ?alert.worker, "alert cleared: {}", alert.message);
                }
            }
        }
        self.report(&reading, queued);
        signals
    }

    fn report(&mut self, reading: &Reading, queued: usize) {
        let workers = self.governor.workers();
        (self.on_reading)(&GovernorView {
            active: self.governor.active(),
            paused: self.governor.paused(),
            queued,
            reading,
            workers: &workers,
            stats: self.governor.stats(),
            demand: self.governor.demand(),
        });
    }

    pub(crate) fn ended(&mut self, slot: WorkerId, peak: Option<u64>, trial_done: bool) {
        let now = self.now_ms();
        self.governor.ended(slot, now, peak, trial_done);
    }

    /// The largest RSS read of a running worker.
    pub(crate) fn peak_of(&self, slot: WorkerId) -> Option<u64> {
        self.governor.peak_of(slot)
    }

    pub(crate) fn into_stats(self) -> GovernorStats {
        self.governor.stats().clone()
    }
}

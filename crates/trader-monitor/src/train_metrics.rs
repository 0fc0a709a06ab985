//! `/metrics` of `trader train --metrics-port P`: the governor of the
//! training workers after each of its readings ([`TrainMetrics::update`]).
//! Served by [`crate::serve`] like the trader's own metrics.
//!
//! - `trader_train_workers{state="active"|"paused"|"queued"}` (queued:
//!   trials waiting for a worker);
//! - `trader_train_admissions_refused_total{reason}`, `trader_train_pauses_total`,
//!   `trader_train_alerts_total{kind}` (the governor's counts);
//! - `trader_train_trials_per_hour` (trials finished by this run per hour of it);
//! - `trader_train_worker_rss_bytes{worker="<slot>"}` (the label removed when
//!   the worker ends);
//! - `trader_train_ram_used_bytes` (the RAM the governor counts: the machine's,
//!   or the workers' own with `--ram-pool`);
//! - `trader_train_worker_demand_bytes{source="predicted"|"measured"}`: one
//!   worker's demand, labelled by where it comes from (one series at a time).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use trader_governor::{Demand, GovernorStats, Reading, WorkerId};

use crate::metrics::Exposition;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

/// What the governor holds after one reading (trader-train's view of it,
/// in the governor's own types).
#[derive(Debug, Clone, Copy)]
pub struct TrainSample<'a> {
    pub active: u32,
    pub paused: u32,
    /// Trials waiting for a worker.
    pub queued: usize,
    pub reading: &'a Reading,
    pub stats: &'a GovernorStats,
    pub demand: Demand,
    /// Trials finished by this run per hour of it.
    pub trials_per_hour: f64,
}

type IntGauge = Gauge<i64, AtomicI64>;
type IntCounter = Counter<u64, AtomicU64>;

/// The governor's metrics.
pub struct TrainMetrics {
    registry: Registry,
    workers: Family<StateLabel, IntGauge>,
    refused: Family<ReasonLabel, IntCounter>,
    trials_per_hour: Gauge<f64, AtomicU64>,
    worker_rss: Family<WorkerLabel, IntGauge>,
    pauses: IntCounter,
    alerts: Family<KindLabel, IntCounter>,
    ram_used: IntGauge,
    demand: Family<SourceLabel, IntGauge>,
    seen: GovernorStats,
    slots: Vec<WorkerId>,
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for TrainMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl TrainMetrics {
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("trader_train");
        let m = TrainMetrics {
            workers: Family::default(),
            refused: Family::default(),
            trials_per_hour: Gauge::default(),
            worker_rss: Family::default(),
            pauses: Counter::default(),
            alerts: Family::default(),
            ram_used: Gauge::default(),
            demand: Family::default(),
            seen: GovernorStats::default(),
            slots: Vec::new(),
            registry: Registry::default(),
        };
        registry.register(
            "workers",
            "Training workers by state (active, paused) and trials queued for one",
            m.workers.clone(),
        );
        registry.register(
            "admissions_refused",
            "Workers not started when asked, by reason",
            m.refused.clone(),
        );
        registry.register(
            "trials_per_hour",
            "Trials finished by this run per hour of it",
            m.trials_per_hour.clone(),
        );
        registry.register(
            "worker_rss_bytes",
            "Resident set of each running or paused worker, by slot",
            m.worker_rss.clone(),
        );
        registry.register("pauses", "Workers paused (SIGSTOP)", m.pauses.clone());
        registry.register(
            "alerts",
            "Governor alerts raised, by kind",
            m.alerts.clone(),
        );
        registry.register(
            "ram_used_bytes",
            "RAM in use as the governor counts it (the machine's, or the workers' with --ram-pool)",
            m.ram_used.clone(),
        );
        registry.register(
            "worker_demand_bytes",
            "One worker's demand: the budget model's bound (predicted) or the largest measured peak plus the margin (measured)",
            m.demand.clone(),
        );
        TrainMetrics { registry, ..m }
    }

    /// Brings the metrics up to `s` (counts only grow).
    pub fn update(&mut self, s: &TrainSample<'_>) {
        for (state, n) in [
            ("active", u64::from(s.active)),
            ("paused", u64::from(s.paused)),
            ("queued", s.queued as u64),
        ] {
            self.workers
                .get_or_create(&StateLabel { state })
                .set(int(n));
        }
        let new = |now: &BTreeMap<&'static str, u64>, before: &BTreeMap<&'static str, u64>| {
            now.iter()
                .map(|(k, n)| (*k, n.saturating_sub(before.get(k).copied().unwrap_or(0))))
                .collect::<Vec<_>>()
        };
        for (reason, n) in new(&s.stats.refused, &self.seen.refused) {
            self.refused
                .get_or_create(&ReasonLabel {
                    reason: reason.to_owned(),
                })
                .inc_by(n);
        }
        for (kind, n) in new(&s.stats.alerts, &self.seen.alerts) {
            self.alerts
                .get_or_create(&KindLabel {
                    kind: kind.to_owned(),
                })
                .inc_by(n);
        }
        self.pauses
            .inc_by(s.stats.pauses.saturating_sub(self.seen.pauses));
        self.seen = s.stats.clone();
        self.trials_per_hour.set(s.trials_per_hour);
        self.ram_used.set(int(s.reading.used));
        for gone in self
            .slots
            .iter()
            .filter(|id| !s.reading.workers.contains_key(id))
        {
            self.worker_rss.remove(&WorkerLabel {
                worker: gone.to_string(),
            });
        }
        for (id, rss) in &s.reading.workers {
            self.worker_rss
                .get_or_create(&WorkerLabel {
                    worker: id.to_string(),
                })
                .set(int(*rss));
        }
        self.slots = s.reading.workers.keys().copied().collect();
        let (source, other) = match s.demand {
            Demand::Predicted { .. } => ("predicted", "measured"),
            Demand::Measured { .. } => ("measured", "predicted"),
        };
        self.demand.remove(&SourceLabel { source: other });
        self.demand
            .get_or_create(&SourceLabel { source })
            .set(int(s.demand.bytes()));
    }
}

impl Exposition for TrainMetrics {
    fn encode(&mut self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode(out, &self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &mut TrainMetrics) -> String {
        let mut out = String::new();
        m.encode(&mut out).unwrap();
        out
    }

    fn reading(used: u64, workers: &[(WorkerId, u64)]) -> Reading {
        Reading {
            now_ms: 0,
            used,
            workers: workers.iter().copied().collect(),
            vram_percent: None,
        }
    }

    #[test]
    fn updates_show_in_the_text_and_an_ended_worker_loses_its_label() {
        let mut m = TrainMetrics::new();
        let mut stats = GovernorStats::default();
        stats.refused.insert("memory", 2);
        stats.pauses = 1;
        stats.alerts.insert("worker_rss", 1);
        let r = reading(5_000, &[(0, 100), (1, 200)]);
        m.update(&TrainSample {
            active: 1,
            paused: 1,
            queued: 3,
            reading: &r,
            stats: &stats,
            demand: Demand::Predicted { bytes: 300 },
            trials_per_hour: 12.5,
        });
        let t = text(&mut m);
        for line in [
            "trader_train_workers{state=\"active\"} 1",
            "trader_train_workers{state=\"paused\"} 1",
            "trader_train_workers{state=\"queued\"} 3",
            "trader_train_admissions_refused_total{reason=\"memory\"} 2",
            "trader_train_pauses_total 1",
            "trader_train_alerts_total{kind=\"worker_rss\"} 1",
            "trader_train_trials_per_hour 12.5",
            "trader_train_ram_used_bytes 5000",
            "trader_train_worker_rss_bytes{worker=\"0\"} 100",
            "trader_train_worker_rss_bytes{worker=\"1\"} 200",
            "trader_train_worker_demand_bytes{source=\"predicted\"} 300",
        ] {
            assert!(t.contains(line), "{line:?} not in\n{t}");
        }

        // Worker 1 ended; the counts grew; the demand is measured now.
        stats.refused.insert("memory", 5);
        stats.pauses = 2;
        let r = reading(4_000, &[(0, 150)]);
        m.update(&TrainSample {
            active: 1,
            paused: 0,
            queued: 2,
            reading: &r,
            stats: &stats,
            demand: Demand::Measured {
                peak: 200,
                bytes: 220,
            },
            trials_per_hour: 20.0,
        });
        let t = text(&mut m);
        for line in [
            "trader_train_workers{state=\"paused\"} 0",
            "trader_train_admissions_refused_total{reason=\"memory\"} 5",
            "trader_train_pauses_total 2",
            "trader_train_alerts_total{kind=\"worker_rss\"} 1",
            "trader_train_worker_rss_bytes{worker=\"0\"} 150",
            "trader_train_worker_demand_bytes{source=\"measured\"} 220",
        ] {
            assert!(t.contains(line), "{line:?} not in\n{t}");
        }
        assert!(!t.contains("worker=\"1\""), "{t}");
        assert!(!t.contains("source=\"predicted\""), "{t}");
    }
}

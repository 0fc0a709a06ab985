//! The ensemble's part of `/metrics` (live ensemble updates):
//! `trader_ensemble_swaps_total`, `trader_ensemble_swaps_refused_total{reason}`
//! and `trader_ensemble_info{version}` (1 for the version in use).

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use trader_engine::EngineStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// Swaps, refusals and the version in use.
pub(crate) struct EnsembleMetrics {
    swaps: Counter<u64, AtomicU64>,
    refused: Family<ReasonLabel, Counter<u64, AtomicU64>>,
    info: Family<VersionLabel, Gauge<i64, AtomicI64>>,
}

impl EnsembleMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = EnsembleMetrics {
            swaps: Counter::default(),
            refused: Family::default(),
            info: Family::default(),
        };
        registry.register(
            "ensemble_swaps",
            "New ensembles adopted while running ([ensemble] reload = \"on-change\")",
            m.swaps.clone(),
        );
        registry.register(
            "ensemble_swaps_refused",
            "New ensemble selections refused (the ensemble in use kept), by reason",
            m.refused.clone(),
        );
        registry.register(
            "ensemble_info",
            "The ensemble in use: 1 for its version (a content hash of its members' files)",
            m.info.clone(),
        );
        m
    }

    /// Brings the metrics from `seen` up to `stats`; returns the refusals
    /// new since `seen` (each one an alert crossing for the caller).
    pub(crate) fn update(&self, stats: &EngineStats, seen: &EngineStats) -> u64 {
        self.swaps
            .inc_by((stats.swaps.len() as u64).saturating_sub(seen.swaps.len() as u64));
        let mut new_refusals = 0;
        for (reason, n) in &stats.swaps_refused {
            let new = n.saturating_sub(seen.swaps_refused.get(reason).copied().unwrap_or(0));
            self.refused
                .get_or_create(&ReasonLabel {
                    reason: (*reason).to_owned(),
                })
                .inc_by(new);
            new_refusals += new;
        }
        if stats.ensemble_version != seen.ensemble_version {
            self.info.remove(&VersionLabel {
                version: seen.ensemble_version.clone(),
            });
        }
        self.info
            .get_or_create(&VersionLabel {
                version: stats.ensemble_version.clone(),
            })
            .set(1);
        new_refusals
    }
}

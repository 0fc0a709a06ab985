//! `/metrics` (Prometheus text format) and `/healthz` of `trader run`, on
//! 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::ensemble_metrics::EnsembleMetrics;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use trader_engine::EngineStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The trader's metrics, updated by the run loop after each poll.
pub struct Metrics {
    registry: Registry,
    rss: Gauge<i64, AtomicI64>,
    bars: Counter<u64, AtomicU64>,
    decisions: Counter<u64, AtomicU64>,
    skipped: Counter<u64, AtomicU64>,
    orders: Family<StatusLabel, Counter<u64, AtomicU64>>,
    poll_errors: Family<KindLabel, Counter<u64, AtomicU64>>,
    last_bar_age: Gauge<i64, AtomicI64>,
    latency: Histogram,
    members: Gauge<i64, AtomicI64>,
    alerts: Family<KindLabel, Counter<u64, AtomicU64>>,
    alerts_active: Family<KindLabel, Gauge<i64, AtomicI64>>,
    vram_used: Gauge<i64, AtomicI64>,
    ensemble: EnsembleMetrics,
    seen: EngineStats,
    /// The data alarms holding now, with their reasons, for `/healthz`.
    holding: std::collections::BTreeMap<&'static str, String>,
    /// Real time of the last poll that succeeded, for `/healthz`.
    last_ok_poll: Option<Instant>,
    healthy_within_secs: u64,
}

fn rss_bytes() -> i64 {
    i64::try_from(trader_budget::own_memory().rss).unwrap_or(i64::MAX)
}

impl Metrics {
    /// The metrics of a trader with `members` ensemble members, healthy
    /// while a poll succeeded within `healthy_within_secs` seconds.
    #[must_use]
    pub fn new(members: usize, healthy_within_secs: u64) -> Self {
        let mut registry = Registry::with_prefix("trader");
        let rss = Gauge::<i64, AtomicI64>::default();
        let bars = Counter::<u64, AtomicU64>::default();
        let decisions = Counter::<u64, AtomicU64>::default();
        let skipped = Counter::<u64, AtomicU64>::default();
        let orders = Family::<StatusLabel, Counter<u64, AtomicU64>>::default();
        let poll_errors = Family::<KindLabel, Counter<u64, AtomicU64>>::default();
        let last_bar_age = Gauge::<i64, AtomicI64>::default();
        let latency = Histogram::new([
            100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 100e-3,
        ]);
        let member_gauge = Gauge::<i64, AtomicI64>::default();
        member_gauge.set(i64::try_from(members).unwrap_or(i64::MAX));
        registry.register(
            "rss_bytes",
            "Resident set size of this process",
            rss.clone(),
        );
        registry.register(
            "bars_received",
            "Bars stored (history and closed hours)",
            bars.clone(),
        );
        registry.register("decisions", "Hours decided", decisions.clone());
        registry.register(
            "hours_skipped",
            "Hours not traded (fail-closed, no state)",
            skipped.clone(),
        );
        registry.register(
            "orders",
            "Orders by outcome (sent, adopted, failed, filled)",
            orders.clone(),
        );
        registry.register(
            "poll_errors",
            "Polls that failed after retries, by kind",
            poll_errors.clone(),
        );
        registry.register(
            "last_bar_age_seconds",
            "Clock time since the newest stored bar closed",
            last_bar_age.clone(),
        );
        registry.register(
            "decision_latency_seconds",
            "State + inference time of a decision",
            latency.clone(),
        );
        registry.register("ensemble_members", "Members loaded", member_gauge.clone());
        let alerts = Family::<KindLabel, Counter<u64, AtomicU64>>::default();
        let alerts_active = Family::<KindLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "alerts",
            "Alert crossings (resources, stale data, clock skew), by kind",
            alerts.clone(),
        );
        registry.register(
            "alert_active",
            "Alerts holding now (resources, stale data, clock skew), by kind",
            alerts_active.clone(),
        );
        let vram_used = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "gpu_vram_used_bytes",
            "VRAM in use on GPU 0 (all processes) at the last resource check; 0 without a GPU",
            vram_used.clone(),
        );
        let ensemble = EnsembleMetrics::register(&mut registry);
        Metrics {
            ensemble,
            registry,
            rss,
            bars,
            decisions,
            skipped,
            orders,
            poll_errors,
            last_bar_age,
            latency,
            members: member_gauge,
            alerts,
            alerts_active,
            vram_used,
            seen: EngineStats::default(),
            holding: std::collections::BTreeMap::new(),
            last_ok_poll: None,
            healthy_within_secs,
        }
    }

    /// Brings the metrics up to `stats` (counts only grow).
    pub fn update(
        &mut self,
        stats: &EngineStats,
        last_bar_age_secs: Option<i64>,
        poll_ok: Option<&str>,
    ) {
        let d = |now: u64, before: u64| now.saturating_sub(before);
        self.bars.inc_by(d(stats.bars, self.seen.bars));
        self.decisions
            .inc_by(d(stats.decisions, self.seen.decisions));
        self.skipped.inc_by(d(stats.skipped, self.seen.skipped));
        for (status, now, before) in [
            ("sent", stats.orders_sent, self.seen.orders_sent),
            ("adopted", stats.orders_adopted, self.seen.orders_adopted),
            ("failed", stats.orders_failed, self.seen.orders_failed),
            ("filled", stats.fills, self.seen.fills),
        ] {
            self.orders
                .get_or_create(&StatusLabel {
                    status: status.to_owned(),
                })
                .inc_by(d(now, before));
        }
        for us in stats.latencies_us.iter().skip(self.seen.latencies_us.len()) {
            self.latency.observe(*us as f64 / 1e6);
        }
        let refused = self.ensemble.update(stats, &self.seen);
        self.alerts
            .get_or_create(&KindLabel {
                kind: "ensemble_swap_refused".to_owned(),
            })
            .inc_by(refused);
        self.seen = stats.clone();
        if let Some(age) = last_bar_age_secs {
            self.last_bar_age.set(age);
        }
        match poll_ok {
            None => self.last_ok_poll = Some(Instant::now()),
            Some(kind) => {
                self.poll_errors
                    .get_or_create(&KindLabel {
                        kind: kind.to_owned(),
                    })
                    .inc();
            }
        }
        self.rss.set(rss_bytes());
        let _ = &self.members;
    }

    /// Records GPU 0's VRAM in use.
    pub(crate) fn set_vram_used(&mut self, bytes: u64) {
        self.vram_used.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Records new alert crossings and the kinds active now.
    pub(crate) fn alerts(
        &mut self,
        new: &[(String, String)],
        active: &std::collections::BTreeMap<String, u64>,
    ) {
        for (key, _) in new {
            let kind = key.split(':').next().unwrap_or(key).to_owned();
            self.alerts.get_or_create(&KindLabel { kind }).inc();
        }
        for kind in ["vram", "process_rss", "own_rss"] {
            let n = active.get(kind).copied().unwrap_or(0);
            self.alerts_active
                .get_or_create(&KindLabel {
                    kind: kind.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Records a data alarm's crossing: `trader_alerts_total{kind}` on
    /// each start, `trader_alert_active{kind}` while it holds, and its
    /// reason in `/healthz`.
    pub fn alarm(&mut self, crossing: &crate::Crossing) {
        let kind = crossing.kind.as_str();
        let label = KindLabel {
            kind: kind.to_owned(),
        };
        if crossing.raised {
            self.alerts.get_or_create(&label).inc();
            self.holding.insert(kind, crossing.reason.clone());
        } else {
            self.holding.remove(kind);
        }
        self.alerts_active
            .get_or_create(&label)
            .set(i64::from(crossing.raised));
    }

    /// Why `/healthz` is 503, or None when healthy.
    fn why_unhealthy(&self) -> Option<String> {
        if !self.holding.is_empty() {
            let reasons: Vec<&str> = self.holding.values().map(String::as_str).collect();
            return Some(reasons.join("\n") + "\n");
        }
        let polled = self
            .last_ok_poll
            .is_some_and(|t| t.elapsed().as_secs() <= self.healthy_within_secs);
        (!polled).then(|| "no successful poll recently\n".to_owned())
    }
}

impl Exposition for Metrics {
    fn encode(&mut self, out: &mut String) -> std::fmt::Result {
        self.rss.set(rss_bytes());
        prometheus_client::encoding::text::encode(out, &self.registry)
    }

    fn unhealthy(&self) -> Option<String> {
        self.why_unhealthy()
    }
}

/// What [`serve`] exposes: `/metrics` in the Prometheus text format and
/// `/healthz` (the trader's [`Metrics`], `trader train`'s
/// [`crate::TrainMetrics`]).
pub trait Exposition: Send + 'static {
    /// The metrics in the Prometheus text format, appended to `out`.
    ///
    /// # Errors
    /// The encoder's.
    fn encode(&mut self, out: &mut String) -> std::fmt::Result;

    /// Why `/healthz` is 503, or None when healthy.
    fn unhealthy(&self) -> Option<String> {
        None
    }
}

async fn metrics_text<T: Exposition>(
    State(m): State<Arc<Mutex<T>>>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let mut out = String::new();
    let ok = m.lock().map(|mut m| m.encode(&mut out).is_ok());
    let status = if matches!(ok, Ok(true)) {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (
        status,
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
}

async fn healthz<T: Exposition>(State(m): State<Arc<Mutex<T>>>) -> (StatusCode, String) {
    match m.lock().map(|m| m.unhealthy()) {
        Ok(None) => (StatusCode::OK, "ok\n".to_owned()),
        Ok(Some(reason)) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics state poisoned\n".to_owned(),
        ),
    }
}

/// Why the endpoint cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("binding the metrics endpoint to {addr} (the metrics port flag or setting)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Serves `/metrics` and `/healthz` of `metrics` on 127.0.0.1:`port` (0:
/// any free port), on the current tokio runtime; returns the address.
///
/// # Errors
/// The port cannot be bound.
pub async fn serve<T: Exposition>(
    metrics: Arc<Mutex<T>>,
    port: u16,
) -> Result<SocketAddr, MonitorError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let bind = |source| MonitorError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let app = Router::new()
        .route("/metrics", get(metrics_text::<T>))
        .route("/healthz", get(healthz::<T>))
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(addr)
}

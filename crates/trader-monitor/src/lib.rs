//! Monitoring of a running trader (`trader run`): `/metrics` in the
//! Prometheus text format (prometheus-client, the Prometheus project's own
//! Rust client) and `/healthz` on 127.0.0.1, fed by the engine's counts
//! after each poll ([`Metrics::update`]), and the resource alerts checked
//! every `[alerts] check_interval_secs` ([`spawn_alerts`]): VRAM, every
//! process's RSS, and this trader's own RSS against the budget's prediction;
//! and the alarms on the data ([`DataAlarms`]: stale data, clock skew),
//! which turn `/healthz` to 503 with their reason while they hold.
//! Also `trader train --metrics-port`'s metrics of the training workers'
//! governor ([`TrainMetrics`], `train_metrics.rs`), served by the same
//! [`serve`] (anything [`Exposition`]).
//!
//! What it does not do: decide or trade (trader-engine), or predict memory
//! (trader-budget, whose probes it reads). Tests: `cargo test -p
//! trader-monitor` (the rules of the alerts and the exposition;
//! `tests/healthz.rs`: a data alarm against the real endpoint), and
//! `trader-cli/tests/cli/run.rs` over HTTP against a running trader.

mod alerts;
mod data_alarms;
mod ensemble_metrics;
mod metrics;
mod train_metrics;

pub use alerts::spawn as spawn_alerts;
pub use data_alarms::{AlarmKind, Crossing, DataAlarms, SKEW_BOUND_MS};
pub use metrics::{Exposition, Metrics, MonitorError, serve};
pub use train_metrics::{TrainMetrics, TrainSample};

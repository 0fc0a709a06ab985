//! The files of `trader backtest --out DIR`: metrics.json, equity.csv,
//! decisions.csv and resources.json (peak RSS, decision latency, speed:
//! measurements, not deterministic, so kept out of metrics.json), staged
//! and renamed together ([`trader_files::Staged`]): a failure leaves the
//! previous set.

use std::path::Path;

use trader_core::nearest_rank;
use trader_files::Staged;

use crate::backtest::Output;

/// How the backtest ran, for resources.json.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunFacts {
    /// The batched first layer (else plain).
    pub batched: bool,
    /// Where the records went: `memory`, `sqlite` or `postgres`.
    pub records: &'static str,
    /// Wall time of the backtest itself.
    pub seconds: f64,
    pub decided_hours: usize,
}

/// Writes the four files of `output` into `out` (created).
pub fn write_files(out: &Path, output: &Output, facts: &RunFacts) -> anyhow::Result<()> {
    fs_err::create_dir_all(out)?;
    // All four staged, then renamed: a failure leaves the previous set.
    let mut files = Staged::default();
    files.add(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&output.metrics)? + "\n",
    )?;
    files.add(&out.join("equity.csv"), &output.equity_csv)?;
    files.add(&out.join("decisions.csv"), &output.decisions_csv)?;
    let mut latencies = output.latencies_us.clone();
    latencies.sort_unstable();
    let RunFacts {
        batched,
        records,
        seconds,
        decided_hours,
    } = *facts;
    let resources = serde_json::json!({
        "peak_rss_bytes": trader_budget::own_memory().peak,
        "decision_latency_us_p50": nearest_rank(&latencies, 0.5).unwrap_or(0),
        "decision_latency_us_p99": nearest_rank(&latencies, 0.99).unwrap_or(0),
        "forward": if batched { "batched" } else { "plain" },
        "records": records,
        "projected_hours": output.projected_hours,
        "decided_ahead_hours": output.decided_ahead,
        "projection_us_per_hour": output.projection_us as f64 / (output.projected_hours as f64).max(1.0),
        "seconds": seconds,
        "decided_hours_per_second": decided_hours as f64 / seconds.max(1e-9),
    });
    files.add(
        &out.join("resources.json"),
        serde_json::to_string_pretty(&resources)? + "\n",
    )?;
    files.commit()?;
    Ok(())
}

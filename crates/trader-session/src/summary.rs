//! The end of a `trader run`: the run finished in the store (or left open
//! for the next start to resume) and [`Summary`], what the binary prints,
//! from the store's counts and the engine's measurements.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use trader_alpaca::AlpacaClient;
use trader_config::PollScheduleKind;
use trader_core::{AccountState, Broker, StoreLocation, format_time, nearest_rank};
use trader_engine::{Engine, LiveOutcome, SwapRecord, TradeWindow};
use trader_store::{Recorder, RunMode, RunStart};

use crate::market::Market;

/// What `trader run` prints at the end (its JSON with `--json`; the field
/// names and their order are the output's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub profile: String,
    /// `live` or `replay`.
    pub mode: &'static str,
    /// The SQLite file, or the PostgreSQL URL without its password.
    pub store: String,
    pub run_id: i64,
    pub resumed: bool,
    pub from: String,
    pub until: String,
    pub hours_seen: u64,
    /// Bars taken into the window (stored in the store's bar history by a
    /// live run; a replay's come from the recorded set and are not stored).
    pub bars_received: u64,
    pub decisions: u64,
    pub skipped: u64,
    pub orders: u64,
    pub orders_adopted: u64,
    pub orders_filled: u64,
    pub fills: u64,
    pub poll_errors: BTreeMap<String, u64>,
    pub equity_start: f64,
    pub equity_end: f64,
    pub return_pct: f64,
    pub decision_latency_us_p50: u64,
    pub decision_latency_us_p99: u64,
    /// Where decisions' time went (medians) and how many were prepared ahead.
    pub decision_split: SplitMedians,
    /// Bars handed over to the hour's last order answered (hours with orders).
    pub bar_to_order_us_p50: u64,
    pub bar_to_order_us_p99: u64,
    pub peak_rss_bytes: u64,
    /// `aligned` (at each close plus `bar_delay_secs`) or `fixed`.
    pub poll_schedule: &'static str,
    /// Polls made by the live loop.
    pub polls: u64,
    /// Broker-clock ms from an hour's close to the poll that saw its bars
    /// (hours decided as the newest closed one).
    pub close_to_seen_ms_p50: u64,
    /// Broker-clock ms from an hour's close to its last order answered
    /// (those hours, with orders).
    pub close_to_order_ms_p50: u64,
    pub close_to_order_ms_p99: u64,
    /// The trading client's requests during the loop per broker-clock hour
    /// (the clock readings of [`crate::follow`] not included).
    pub requests_per_hour: f64,
    /// The version of the ensemble in use at the end.
    pub ensemble_version: String,
    /// Ensembles adopted while it ran (`[ensemble] reload = "on-change"`):
    /// after which hour, old -> new version, load ms, RSS before and after.
    pub ensemble_swaps: Vec<SwapRecord>,
    /// New selections refused, by reason.
    pub ensemble_swaps_refused: BTreeMap<String, u64>,
}

/// The median of each part of a decision, microseconds
/// ([`trader_engine::DecisionSplit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SplitMedians {
    pub features_us: u64,
    pub state_us: u64,
    pub inference_us: u64,
    /// Targets, planned orders, the records, and sending.
    pub orders_us: u64,
    /// Decisions this process made, and those whose hour was prepared ahead.
    pub decisions: u64,
    pub prepared: u64,
    /// Preparing the next hour after a decision, off the decision path.
    pub prepare_next_us: u64,
}

impl SplitMedians {
    /// The medians of `splits`, and of `prepare_us`.
    #[must_use]
    pub fn of(splits: &[trader_engine::DecisionSplit], prepare_us: &[u64]) -> Self {
        let median = |pick: fn(&trader_engine::DecisionSplit) -> u64| {
            let mut v: Vec<u64> = splits.iter().map(pick).collect();
            v.sort_unstable();
            nearest_rank(&v, 0.5).unwrap_or(0)
        };
        let mut prepare = prepare_us.to_vec();
        prepare.sort_unstable();
        SplitMedians {
            features_us: median(|s| s.features_us),
            state_us: median(|s| s.state_us),
            inference_us: median(|s| s.inference_us),
            orders_us: median(|s| s.orders_us),
            decisions: splits.len() as u64,
            prepared: splits.iter().filter(|s| s.prepared).count() as u64,
            prepare_next_us: nearest_rank(&prepare, 0.5).unwrap_or(0),
        }
    }
}

/// What [`summarize`] needs of the run besides its engine.
pub(crate) struct SummaryInputs<'a> {
    pub(crate) profile: &'a str,
    pub(crate) store_location: &'a StoreLocation,
    pub(crate) run: RunStart,
    pub(crate) window: TradeWindow,
    pub(crate) start_account: Option<AccountState>,
    pub(crate) outcome: LiveOutcome,
    pub(crate) schedule: PollScheduleKind,
    /// The trading client's requests during the loop and the broker ms
    /// it lasted (None: no loop ran).
    pub(crate) loop_requests: Option<(u64, i64)>,
}

/// How long the summary waits for the broker's account after a stop.
const SUMMARY_ACCOUNT_WAIT: Duration = Duration::from_millis(500);

/// Finishes the run in the store and sums it up from the store's counts.
pub(crate) async fn summarize(
    engine: &Engine<AlpacaClient>,
    client: &AlpacaClient,
    market: &Market,
    inputs: SummaryInputs<'_>,
) -> anyhow::Result<Summary> {
    // After a stop the broker gets a second, not its retries.
    let end_account = if inputs.outcome.stopped {
        tokio::time::timeout(SUMMARY_ACCOUNT_WAIT, client.account())
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        client.account().await.ok()
    };
    let finished_at = market.clock.now().timestamp();
    // A live run cut short with an order planned but not confirmed stays
    // open: the next start resumes it and sends that order again with its id.
    let half_sent = if inputs.outcome.interrupted && market.mode == RunMode::Live {
        // Through the trait: the store's record methods are `Recorder`'s.
        Recorder::unsettled_orders(engine.store(), inputs.run.run_id)
            .await?
            .iter()
            .any(|o| o.status.needs_resend())
    } else {
        false
    };
    if half_sent {
        tracing::info!(
            run_id = inputs.run.run_id,
            "the run stays open: the next start resumes it and settles the orders of the hour that was interrupted"
        );
    } else {
        engine
            .store()
            .finish_run(inputs.run.run_id, finished_at)
            .await?;
    }
    let counts = Recorder::run_counts(engine.store(), inputs.run.run_id).await?;
    let stats = engine.stats().clone();
    let mut latencies = stats.latencies_us.clone();
    latencies.sort_unstable();
    let mut to_order = stats.bar_to_order_us.clone();
    to_order.sort_unstable();
    let mut seen = inputs.outcome.close_to_seen_ms.clone();
    seen.sort_unstable();
    let mut close_to_order = inputs.outcome.close_to_order_ms.clone();
    close_to_order.sort_unstable();
    let requests_per_hour = inputs.loop_requests.map_or(0.0, |(n, ms)| {
        if ms > 0 {
            n as f64 / (ms as f64 / 3_600_000.0)
        } else {
            0.0
        }
    });
    let equity_start = inputs.start_account.map_or(0.0, |a| a.equity);
    let equity_end = end_account.map_or(equity_start, |a| a.equity);
    Ok(Summary {
        profile: inputs.profile.to_owned(),
        mode: market.mode.as_str(),
        store: inputs.store_location.to_string(),
        run_id: inputs.run.run_id,
        resumed: inputs.run.resumed,
        from: format_time(inputs.window.decide_from),
        until: format_time(finished_at.min(inputs.window.until)),
        hours_seen: stats.hours,
        bars_received: stats.bars,
        decisions: counts.decisions,
        skipped: counts.skipped,
        orders: counts.orders,
        orders_adopted: stats.orders_adopted,
        orders_filled: counts.filled,
        fills: counts.fills,
        poll_errors: inputs.outcome.poll_errors.clone(),
        equity_start,
        equity_end,
        return_pct: if equity_start > 0.0 {
            (equity_end / equity_start - 1.0) * 100.0
        } else {
            0.0
        },
        decision_latency_us_p50: nearest_rank(&latencies, 0.5).unwrap_or(0),
        decision_latency_us_p99: nearest_rank(&latencies, 0.99).unwrap_or(0),
        decision_split: SplitMedians::of(&stats.splits, &stats.prepare_us),
        bar_to_order_us_p50: nearest_rank(&to_order, 0.5).unwrap_or(0),
        bar_to_order_us_p99: nearest_rank(&to_order, 0.99).unwrap_or(0),
        peak_rss_bytes: trader_budget::own_memory().peak,
        poll_schedule: match inputs.schedule {
            PollScheduleKind::Aligned => "aligned",
            PollScheduleKind::Fixed => "fixed",
        },
        polls: inputs.outcome.polls,
        close_to_seen_ms_p50: nearest_rank(&seen, 0.5).unwrap_or(0),
        close_to_order_ms_p50: nearest_rank(&close_to_order, 0.5).unwrap_or(0),
        close_to_order_ms_p99: nearest_rank(&close_to_order, 0.99).unwrap_or(0),
        requests_per_hour,
        ensemble_version: stats.ensemble_version.clone(),
        ensemble_swaps: stats.swaps.clone(),
        ensemble_swaps_refused: stats
            .swaps_refused
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
    })
}

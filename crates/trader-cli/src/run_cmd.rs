//! `trader run --profile P`: the live paper trader.
//!
//! Budget check first (refused: exit 3 before any model is loaded or any
//! request made). With Alpaca keys in the environment it trades Alpaca
//! paper (`APCA_API_BASE_URL`; the live host only with `--allow-live`);
//! without, it starts the embedded simulator on 127.0.0.1 over the shipped
//! recorded data and replays the last 30 days on an accelerated clock
//! through the same client code, then prints a summary.
//!
//! The session itself (market, run, summary) is `trader_session::run`;
//! this module parses the flags, passes the gate, holds the profile's lock
//! for the run, builds the runtime, turns signals into its stop and prints.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use trader_core::{Clock, StoreLocation, SystemClock};
use trader_session::{RunRequest, RunSetup, Summary};
use trader_store::ProfileLock;

use crate::args::parse_time;
use crate::gate::{Admitted, Gate, gate};
use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Profile name (configs/NAME.toml) or path to a TOML file.
    #[arg(long)]
    pub(crate) profile: String,
    /// Host file for the budget check; default CONFIG_DIR/host.toml.
    #[arg(long)]
    host: Option<PathBuf>,
    /// SQLite file or postgres:// URL; default: TRADER_STORE_URL, else the
    /// profile's `[store]`.
    #[arg(long, value_parser = trader_config::parse_store_arg)]
    store: Option<StoreLocation>,
    /// Without Alpaca keys: the recorded set the embedded simulator replays.
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    data: PathBuf,
    /// Replay speed, simulated seconds per real second (default: the replay
    /// takes about a minute). With keys not needed: the broker's clock is
    /// followed and its speed derived (a `--speed` that disagrees is warned
    /// about and the broker's is followed).
    #[arg(long)]
    speed: Option<f64>,
    /// Replay start, RFC 3339 (default: 30 days before the last recorded bar).
    #[arg(long)]
    from: Option<String>,
    /// Replay end, RFC 3339 (default: the end of the recorded set).
    #[arg(long)]
    until: Option<String>,
    /// Allow APCA_API_BASE_URL to be Alpaca's live (real-money) host.
    #[arg(long)]
    allow_live: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// No `/metrics` and `/healthz` endpoint.
    #[arg(long)]
    no_metrics: bool,
    /// Port of `/metrics` and `/healthz` on 127.0.0.1 (0: any free port);
    /// default: the profile's `[metrics] port`.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Seconds between resource checks; default: host.toml's
    /// `[alerts] check_interval_secs`.
    #[arg(long)]
    alert_interval_secs: Option<u64>,
    /// Timeout of every request to the broker, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The client's quota, requests a minute (default: Alpaca's, 180).
    /// Alpaca answers 429 above 200; raise it only for a `trader sim
    /// --rate-limit` that allows more (a fast simulator's clock).
    #[arg(long)]
    requests_per_minute: Option<std::num::NonZeroU32>,
}

pub(crate) fn run(a: &RunArgs, config_dir: &std::path::Path) -> anyhow::Result<Outcome> {
    // 1. The budget, before anything is loaded or requested.
    let Gate::Fits(admitted) = gate("run", &a.profile, a.host.as_deref(), config_dir)? else {
        return Ok(Outcome::Refused);
    };
    let Admitted { inputs, report } = *admitted;
    let profile = inputs.profile.clone();
    let verdict_json = serde_json::to_string(&report).unwrap_or_default();
    let store = trader_config::resolve_store(a.store.as_ref(), &profile.store)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // One trader per store and profile, before the broker or the store is touched.
    let lock = runtime.block_on(ProfileLock::acquire(
        &store,
        &profile.name,
        "trader run",
        SystemClock.now().timestamp(),
    ))?;
    tracing::debug!(lock = %lock.shown(), "store locked for this profile");
    let request = RunRequest {
        data: a.data.clone(),
        speed: a.speed,
        from: a
            .from
            .as_deref()
            .map(|s| parse_time("--from", s))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| parse_time("--until", s))
            .transpose()?,
        allow_live: a.allow_live,
        metrics_port: if a.no_metrics {
            None
        } else {
            a.metrics_port.or(profile.metrics_port)
        },
        alert_interval: a.alert_interval_secs.map(Duration::from_secs),
        timeout: Duration::from_millis(a.timeout_ms),
        requests_per_minute: a.requests_per_minute,
    };
    let setup = RunSetup {
        profile: &profile,
        store: &store,
        verdict_json: &verdict_json,
        alerts: inputs.alerts,
        // A trader that swaps may keep the swap's transient (the loading
        // thread's heap): its own-RSS alert counts it.
        predicted_rss: report.trader_terms.iter().map(|t| t.ram_bytes).sum::<u64>()
            + inputs.swap_transient_term().map_or(0, |t| t.ram_bytes),
        host: a.host.as_deref(),
        config_dir,
        reload_trigger: None,
    };
    let traded = runtime.block_on(async {
        let stop = crate::signals::stop_on_signal();
        let reload = crate::signals::reload_on_sighup();
        let setup = RunSetup {
            reload_trigger: Some(&reload),
            ..setup
        };
        let traded = trader_session::run::trade(&request, setup, stop).await;
        lock.release().await;
        traded
    });
    // Blocking helpers (resource samples) get half a second, not a wait.
    runtime.shutdown_timeout(Duration::from_millis(500));
    let Some(summary) = traded? else {
        output::eprint("trader run: stopped by a signal before the first hour\n");
        return Ok(Outcome::Ok);
    };
    if a.json {
        output::print_json(&summary)?;
    } else {
        output::print(&render(&summary));
    }
    Ok(Outcome::Ok)
}

fn render(s: &Summary) -> String {
    let mut out = format!(
        "trader run: profile {} ({}), run {}{}, store {}\n",
        s.profile,
        s.mode,
        s.run_id,
        if s.resumed { " (resumed)" } else { "" },
        s.store
    );
    out += &format!("  hours        {} .. {}\n", s.from, s.until);
    out += &format!(
        "  bars         {} received{}, {} hours seen\n",
        s.bars_received,
        if s.mode == "replay" {
            " (from the recorded set; a replay leaves the store's bars alone)"
        } else {
            " and stored"
        },
        s.hours_seen
    );
    out += &format!(
        "  decisions    {} ({} hours skipped)\n",
        s.decisions, s.skipped
    );
    out += &format!(
        "  orders       {} ({} filled, {} adopted after a lost answer)\n",
        s.orders, s.orders_filled, s.orders_adopted
    );
    out += &format!("  fills        {}\n", s.fills);
    out += &format!(
        "  equity       {:.2} -> {:.2} USD ({:+.2} %)\n",
        s.equity_start, s.equity_end, s.return_pct
    );
    out += &format!(
        "  decision     p50 {} us, p99 {} us\n",
        s.decision_latency_us_p50, s.decision_latency_us_p99
    );
    let split = &s.decision_split;
    out += &format!(
        "  split (p50)  features {} us, state {} us, inference {} us, orders {} us; {} of {} prepared ahead (preparing: {} us, after the orders)\n",
        split.features_us,
        split.state_us,
        split.inference_us,
        split.orders_us,
        split.prepared,
        split.decisions,
        split.prepare_next_us
    );
    out += &format!(
        "  bar->order   p50 {} us, p99 {} us (from the poll that brought the bar)\n",
        s.bar_to_order_us_p50, s.bar_to_order_us_p99
    );
    out += &format!(
        "  close->seen  p50 {} ms; close->order p50 {} ms, p99 {} ms (broker clock)\n",
        s.close_to_seen_ms_p50, s.close_to_order_ms_p50, s.close_to_order_ms_p99
    );
    out += &format!(
        "  polls        {} ({} schedule), {:.1} requests per broker hour\n",
        s.polls, s.poll_schedule, s.requests_per_hour
    );
    out += &format!("  peak RSS     {:.1} MB\n", s.peak_rss_bytes as f64 / 1e6);
    out += &format!(
        "  ensemble     {} ({} swaps{})\n",
        s.ensemble_version,
        s.ensemble_swaps.len(),
        if s.ensemble_swaps_refused.is_empty() {
            String::new()
        } else {
            format!(", refused {:?}", s.ensemble_swaps_refused)
        }
    );
    let mb =
        |b: Option<u64>| b.map_or_else(|| "?".to_owned(), |b| format!("{:.1}", b as f64 / 1e6));
    for w in &s.ensemble_swaps {
        out += &format!(
            "    after {}: {} -> {}, loaded in {} ms, RSS {} -> {} MB\n",
            w.after_hour
                .map_or_else(|| "start".to_owned(), trader_core::format_time),
            w.from,
            w.to,
            w.load_ms,
            mb(w.rss_before),
            mb(w.rss_after)
        );
    }
    if !s.poll_errors.is_empty() {
        out += &format!("  poll errors  {:?}\n", s.poll_errors);
    }
    out
}

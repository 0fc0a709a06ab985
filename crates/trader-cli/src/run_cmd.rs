//! `trader run --profile P`: the live paper trader.
//!
//! Budget check first (refused: exit 3 before any model is loaded or any
//! request made). With Alpaca keys in the environment it trades Alpaca
//! paper (`APCA_API_BASE_URL`; the live host only with `--allow-live`);
//! without, it starts the embedded simulator on 127.0.0.1 over the shipped
//! recorded data and replays the last 30 days on an accelerated clock
//! through the same client code, then prints a summary.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::Args;
use serde::Serialize;
use trader_alpaca::{AlpacaClient, ClientSettings};
use trader_config::{AlpacaEndpoints, AlpacaKeys, Secret};
use trader_core::{Broker, Clock, SystemClock, format_time};
use trader_engine::{
    Engine, EngineSetup, LiveOutcome, Poller, ResumePoint, Stop, TradeWindow, hours_to_trade,
    run_live,
};
use trader_ensemble::Ensemble;
use trader_sim::{EmbeddedReplay, ReplayClock, ReplaySpan};
use trader_store::{ProfileLock, RunMode, Store};

use crate::gate::{Admitted, Gate, gate};
use crate::{Outcome, output};
use trader_monitor::Metrics;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Profile name (configs/NAME.toml) or path to a TOML file.
    #[arg(long)]
    pub(crate) profile: String,
    /// Host file for the budget check; default CONFIG_DIR/host.toml.
    #[arg(long)]
    host: Option<PathBuf>,
    /// SQLite store; default: the profile's `[store] path`.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Without Alpaca keys: the recorded set the embedded simulator replays.
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    data: PathBuf,
    /// Replay speed, simulated seconds per real second (default: the replay
    /// takes about a minute). With keys, against a standalone `trader sim`:
    /// the speed it was started with (its clock is read at start).
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
}

/// What `trader run` prints at the end.
#[derive(Debug, Serialize)]
struct Summary {
    profile: String,
    mode: &'static str,
    store: PathBuf,
    run_id: i64,
    resumed: bool,
    from: String,
    until: String,
    hours_seen: u64,
    /// Bars taken into the window (stored in the store's bar history by a
    /// live run; a replay's come from the recorded set and are not stored).
    bars_received: u64,
    decisions: u64,
    skipped: u64,
    orders: u64,
    orders_adopted: u64,
    orders_filled: u64,
    fills: u64,
    poll_errors: BTreeMap<String, u64>,
    equity_start: f64,
    equity_end: f64,
    return_pct: f64,
    decision_latency_us_p50: u64,
    decision_latency_us_p99: u64,
    /// Bars handed over to the hour's last order answered (hours with orders).
    bar_to_order_us_p50: u64,
    bar_to_order_us_p99: u64,
    peak_rss_bytes: u64,
}

/// Where the trader connects and how its time runs.
struct Market {
    endpoints: AlpacaEndpoints,
    keys: AlpacaKeys,
    clock: Arc<dyn Clock>,
    mode: RunMode,
    /// Replay: first hour decided and the end of the replay.
    replay: Option<(i64, i64)>,
    /// Replay: the embedded simulator's clock and its start, restarted when
    /// the trader is ready.
    replay_clock: Option<(Arc<ReplayClock>, i64)>,
    sim: Option<trader_sim::SimHandle>,
}

async fn connect(a: &RunArgs, profile: &trader_config::Profile) -> anyhow::Result<Market> {
    match AlpacaKeys::from_env()? {
        Some(keys) => connect_alpaca(a, keys).await,
        None => connect_embedded(a, profile).await,
    }
}

/// Alpaca (or a standalone simulator) named by the environment.
async fn connect_alpaca(a: &RunArgs, keys: AlpacaKeys) -> anyhow::Result<Market> {
    {
        let endpoints = AlpacaEndpoints::from_env()?;
        if endpoints.is_live() && !a.allow_live {
            bail!(
                "APCA_API_BASE_URL is Alpaca's live (real-money) host {}; \
                 pass --allow-live to trade real money, or use the paper host",
                endpoints.trading_url
            );
        }
        tracing::info!(trading_url = %endpoints.trading_url, data_url = %endpoints.data_url, "trading through Alpaca");
        let clock: Arc<dyn Clock> = match a.speed {
            None => Arc::new(SystemClock),
            Some(speed) => {
                if !(speed.is_finite() && speed > 0.0) {
                    bail!("--speed {speed} must be a positive number");
                }
                if endpoints.trading_url.contains("alpaca.markets") {
                    bail!("--speed applies to a simulator; Alpaca runs in real time");
                }
                // A standalone simulator: its clock, read once, then run at its speed.
                let probe = AlpacaClient::new(&endpoints, &keys, ClientSettings::default())?;
                let now = probe.broker_time().await?;
                Arc::new(ReplayClock::new(
                    DateTime::from_timestamp(now, 0).unwrap_or_default(),
                    speed,
                ))
            }
        };
        Ok(Market {
            endpoints,
            keys,
            clock,
            mode: RunMode::Live,
            replay: None,
            replay_clock: None,
            sim: None,
        })
    }
}

/// No keys: the embedded simulator over the shipped recorded data.
async fn connect_embedded(a: &RunArgs, profile: &trader_config::Profile) -> anyhow::Result<Market> {
    let bars = trader_recorded::read_recorded_symbols(&a.data, &profile.symbols, SystemClock.now())
        .with_context(|| format!("profile {} cannot be replayed", profile.name))?;
    let span = ReplaySpan {
        from: a
            .from
            .as_deref()
            .map(|s| crate::args::parse_time("--from", s))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| crate::args::parse_time("--until", s))
            .transpose()?,
        speed: a.speed,
    };
    let replay = EmbeddedReplay::start(bars, span).await?;
    let keys = AlpacaKeys {
        key_id: Secret::new(replay.key_id.clone()),
        secret_key: Secret::new(replay.secret_key.clone()),
    };
    let clock: Arc<dyn Clock> = replay.clock.clone();
    Ok(Market {
        endpoints: AlpacaEndpoints {
            trading_url: replay.sim.base_url(),
            data_url: replay.sim.base_url(),
        },
        keys,
        clock,
        mode: RunMode::Replay,
        replay: Some((replay.from, replay.until)),
        replay_clock: Some((replay.clock, replay.start)),
        sim: Some(replay.sim),
    })
}

pub(crate) fn run(a: &RunArgs, config_dir: &std::path::Path) -> anyhow::Result<Outcome> {
    // 1. The budget, before anything is loaded or requested.
    let Gate::Fits(admitted) = gate("run", &a.profile, a.host.as_deref(), config_dir)? else {
        return Ok(Outcome::Refused);
    };
    let Admitted { inputs, report } = *admitted;
    let profile = inputs.profile.clone();
    let verdict_json = serde_json::to_string(&report).unwrap_or_default();
    let store_path = a
        .store
        .clone()
        .unwrap_or_else(|| profile.store_path.clone());
    // One trader per store and profile, before the broker or the store is touched.
    let lock = ProfileLock::acquire(
        &store_path,
        &profile.name,
        "trader run",
        SystemClock.now().timestamp(),
    )?;
    tracing::debug!(lock = %lock.path().display(), "store locked for this profile");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let predicted_rss: u64 = report.trader_terms.iter().map(|t| t.ram_bytes).sum();
    let watch = inputs.alerts.map(|alerts| {
        let every = a
            .alert_interval_secs
            .unwrap_or(u64::from(alerts.check_interval_secs.get()));
        (alerts, Duration::from_secs(every.max(1)), predicted_rss)
    });
    let traded = runtime.block_on(async {
        let stop = crate::signals::stop_on_signal();
        trade(a, &profile, &store_path, &verdict_json, watch, stop).await
    });
    // Blocking helpers (resource samples) get half a second, not a wait.
    runtime.shutdown_timeout(Duration::from_millis(500));
    drop(lock);
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

/// `/metrics` and `/healthz` on 127.0.0.1:`port`, healthy while a poll
/// succeeded within three poll intervals (real time, at least 5 s).
async fn start_metrics(
    port: Option<u16>,
    members: u32,
    real_interval: Duration,
) -> anyhow::Result<Option<Arc<Mutex<Metrics>>>> {
    let Some(port) = port else {
        return Ok(None);
    };
    let healthy_within = (real_interval * 3).as_secs().max(5);
    let m = Arc::new(Mutex::new(Metrics::new(members as usize, healthy_within)));
    let addr = trader_monitor::serve(Arc::clone(&m), port).await?;
    tracing::info!(url = %format!("http://{addr}/metrics"), "metrics endpoint");
    Ok(Some(m))
}

/// FNV-1a of the budget verdict: which configuration a run used.
fn fnv1a(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// The client for `market`: Alpaca's quota, or none for the embedded replay.
fn client_for(market: &Market, timeout: Duration) -> anyhow::Result<AlpacaClient> {
    let settings = match market.mode {
        // The replay compresses hours into milliseconds: Alpaca's per-minute
        // quota does not apply to the embedded simulator.
        RunMode::Replay => ClientSettings {
            requests_per_minute: NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN),
            timeout,
            ..ClientSettings::default()
        },
        _ => ClientSettings {
            timeout,
            ..ClientSettings::default()
        },
    };
    Ok(AlpacaClient::new(
        &market.endpoints,
        &market.keys,
        settings,
    )?)
}

async fn trade(
    a: &RunArgs,
    profile: &trader_config::Profile,
    store_path: &std::path::Path,
    verdict_json: &str,
    watch: Option<(trader_config::AlertSettings, Duration, u64)>,
    stop: Stop,
) -> anyhow::Result<Option<Summary>> {
    let Some(market) = stop.unless(connect(a, profile)).await else {
        return Ok(None);
    };
    let market = market?;
    let client = client_for(&market, Duration::from_millis(a.timeout_ms.max(1)))?;
    let store = Store::open(store_path, Some(profile.history_hours)).await?;
    let ensemble = trader_engine::load_ensemble(profile)?;
    let now = market.clock.now().timestamp();
    if market.mode != RunMode::Live {
        // A replay's broker died with its process: an unfinished replay of
        // this profile (killed) cannot be resumed. This process holds the
        // profile's lock, so none of them is running.
        let abandoned = store
            .abandon_unfinished(&profile.name, market.mode, now)
            .await?;
        if !abandoned.is_empty() {
            tracing::info!(runs = ?abandoned, "earlier replays killed before they finished are marked abandoned; this replay starts a new run");
        }
    }
    let config_hash = fnv1a(verdict_json);
    let last_decided = store
        .last_decided_hour_for(&profile.name, market.mode)
        .await?;
    let run = store
        .start_run(&profile.name, &config_hash, verdict_json, market.mode, now)
        .await?;
    tracing::info!(
        run_id = run.run_id,
        resumed = run.resumed,
        store = %store_path.display(),
        "run started"
    );
    let ran = run_started(
        RunContext {
            a,
            profile,
            store_path,
            market: &market,
            client: &client,
            run,
            last_decided,
            watch,
            stop: &stop,
        },
        &store,
        ensemble,
    )
    .await;
    if let Err(e) = &ran {
        // The store stays usable: a live run is resumed by the next start
        // (as after a kill), any other run ends as failed, with the error.
        let resumable = market.mode == RunMode::Live;
        let at = market.clock.now().timestamp();
        if let Err(record) = store
            .fail_run(run.run_id, at, &format!("{e:#}"), resumable)
            .await
        {
            tracing::warn!(error = %record, "the run's error could not be recorded");
        }
    }
    store.close().await;
    if let Some(sim) = market.sim {
        sim.stop().await;
    }
    ran.map(Some)
}

/// What a started run needs.
struct RunContext<'a> {
    a: &'a RunArgs,
    profile: &'a trader_config::Profile,
    store_path: &'a std::path::Path,
    market: &'a Market,
    client: &'a AlpacaClient,
    run: trader_store::RunStart,
    last_decided: Option<i64>,
    watch: Option<(trader_config::AlertSettings, Duration, u64)>,
    stop: &'a Stop,
}

/// The run after its row exists: engine, reconcile, the poll loop, the
/// summary. A replay's bars stay out of the store's bar history.
async fn run_started(
    cx: RunContext<'_>,
    store: &Store,
    ensemble: Ensemble,
) -> anyhow::Result<Summary> {
    let RunContext {
        a,
        profile,
        store_path,
        market,
        client,
        run,
        last_decided,
        watch,
        stop,
    } = cx;
    let now = market.clock.now().timestamp();
    let records = match market.mode {
        RunMode::Live => store.clone(),
        RunMode::Replay | RunMode::Backtest => store.records_only(),
    };
    let mut engine = Engine::new(
        client.clone(),
        records,
        ensemble,
        EngineSetup::for_profile(profile, run.run_id, market.mode),
    )
    .await?;
    let mut outcome = LiveOutcome::default();
    let start_account = if let Some(account) = stop
        .unless(async {
            engine.reconcile().await?;
            anyhow::Ok(client.account().await.ok())
        })
        .await
    {
        account?
    } else {
        outcome.stopped = true;
        None
    };
    let window = hours_to_trade(ResumePoint {
        replay: market.replay,
        now,
        last_decided,
        newest_stored: engine.newest_common_bar(),
        history_hours: profile.history_hours,
    });
    if !outcome.stopped {
        let mut poller = Poller::new(client.clone(), profile.symbols.clone(), window.first_fetch);
        if let Some((clock, start)) = &market.replay_clock {
            // Loading took real time; the replay starts now.
            clock.restart_at(DateTime::from_timestamp(*start, 0).unwrap_or_default());
        }
        let interval = Duration::from_secs(u64::from(profile.poll_interval_secs));
        let port = if a.no_metrics {
            None
        } else {
            a.metrics_port.or(profile.metrics_port)
        };
        let metrics =
            start_metrics(port, profile.top_n, market.clock.real_duration(interval)).await?;
        if let Some((alerts, every, predicted)) = watch {
            trader_monitor::spawn_alerts(alerts, every, predicted, metrics.clone());
        }
        outcome = run_live(
            &mut engine,
            &mut poller,
            market.clock.as_ref(),
            interval,
            window,
            stop,
            |report| {
                if let Some(m) = &metrics
                    && let Ok(mut m) = m.lock()
                {
                    m.update(report.stats, report.last_bar_age_secs, report.failed);
                }
            },
        )
        .await?;
    }
    summarize(
        &engine,
        client,
        market,
        SummaryInputs {
            profile: &profile.name,
            store_path,
            run,
            window,
            start_account,
            outcome,
        },
    )
    .await
}

struct SummaryInputs<'a> {
    profile: &'a str,
    store_path: &'a std::path::Path,
    run: trader_store::RunStart,
    window: TradeWindow,
    start_account: Option<trader_core::AccountState>,
    outcome: LiveOutcome,
}

/// How long the summary waits for the broker's account after a stop.
const SUMMARY_ACCOUNT_WAIT: Duration = Duration::from_millis(500);

/// Finishes the run in the store and sums it up from the store's counts.
async fn summarize(
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
        engine
            .store()
            .unsettled_orders(inputs.run.run_id)
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
    let counts = engine.store().run_counts(inputs.run.run_id).await?;
    let stats = engine.stats().clone();
    let mut latencies = stats.latencies_us.clone();
    latencies.sort_unstable();
    let mut to_order = stats.bar_to_order_us.clone();
    to_order.sort_unstable();
    let equity_start = inputs.start_account.map_or(0.0, |a| a.equity);
    let equity_end = end_account.map_or(equity_start, |a| a.equity);
    Ok(Summary {
        profile: inputs.profile.to_owned(),
        mode: market.mode.as_str(),
        store: inputs.store_path.to_path_buf(),
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
        poll_errors: inputs.outcome.poll_errors,
        equity_start,
        equity_end,
        return_pct: if equity_start > 0.0 {
            (equity_end / equity_start - 1.0) * 100.0
        } else {
            0.0
        },
        decision_latency_us_p50: trader_core::nearest_rank(&latencies, 0.5).unwrap_or(0),
        decision_latency_us_p99: trader_core::nearest_rank(&latencies, 0.99).unwrap_or(0),
        bar_to_order_us_p50: trader_core::nearest_rank(&to_order, 0.5).unwrap_or(0),
        bar_to_order_us_p99: trader_core::nearest_rank(&to_order, 0.99).unwrap_or(0),
        peak_rss_bytes: trader_budget::own_memory().peak,
    })
}

fn render(s: &Summary) -> String {
    let mut out = format!(
        "trader run: profile {} ({}), run {}{}, store {}\n",
        s.profile,
        s.mode,
        s.run_id,
        if s.resumed { " (resumed)" } else { "" },
        s.store.display()
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
    out += &format!(
        "  bar->order   p50 {} us, p99 {} us (from the poll that brought the bar)\n",
        s.bar_to_order_us_p50, s.bar_to_order_us_p99
    );
    out += &format!("  peak RSS     {:.1} MB\n", s.peak_rss_bytes as f64 / 1e6);
    if !s.poll_errors.is_empty() {
        out += &format!("  poll errors  {:?}\n", s.poll_errors);
    }
    out
}

//! `trader run`'s session after the budget gate: connect the market
//! ([`crate::market`]), open the store, start (or resume) the run, the
//! engine's reconcile and live loop with `/metrics` and the resource
//! alerts beside it ([`crate::started`]), then finish (or fail) the run and
//! sum it up ([`crate::summary`]). The caller holds the profile's
//! lock, builds the runtime and passes the [`Stop`] its signals trigger.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use trader_config::{AlertSettings, Profile};
use trader_core::StoreLocation;
use trader_engine::Stop;
use trader_store::{RunMode, Store};

use crate::market::{client_for, connect};
use crate::started::{RunContext, run_started};
use crate::summary::Summary;

/// The settings of one `trader run`, as its flags give them.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Without Alpaca keys: the recorded set the embedded simulator replays.
    pub data: PathBuf,
    /// Simulated seconds per real second (replay, or a standalone simulator).
    pub speed: Option<f64>,
    /// Replay start and end, epoch seconds (default: the replay's own).
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// Allow Alpaca's live (real-money) host.
    pub allow_live: bool,
    /// Port of `/metrics` and `/healthz` on 127.0.0.1 (0: any free port);
    /// None: no endpoint.
    pub metrics_port: Option<u16>,
    /// Time between resource checks; default: the alerts' own interval.
    pub alert_interval: Option<Duration>,
    /// Timeout of every request to the broker.
    pub timeout: Duration,
    /// The client's quota against Alpaca or a standalone simulator
    /// (None: Alpaca's, 180 requests a minute). Above Alpaca's 200 a
    /// minute only for a simulator that allows it (`trader sim
    /// --rate-limit`); the embedded replay has no quota.
    pub requests_per_minute: Option<NonZeroU32>,
}

/// What the budget gate admitted, for the run's record and its alerts.
#[derive(Debug, Clone, Copy)]
pub struct RunSetup<'a> {
    pub profile: &'a Profile,
    pub store: &'a StoreLocation,
    /// The budget verdict as JSON, recorded with the run (its hash names
    /// the configuration).
    pub verdict_json: &'a str,
    /// The host's resource alerts, if it has any.
    pub alerts: Option<AlertSettings>,
    /// The trader's predicted RSS (the budget's terms), for its own alert.
    pub predicted_rss: u64,
    /// The host file the gate read (`--host`; None: CONFIG_DIR/host.toml)
    /// and the config folder: a reload's budget is checked against them.
    pub host: Option<&'a Path>,
    pub config_dir: &'a Path,
    /// Pulled on SIGHUP: look at the ensemble directory now.
    pub reload_trigger: Option<&'a Arc<Notify>>,
}

/// How a run follows its ensemble directory: the selection it started
/// with, how long that load took, where its budget comes from, and what
/// wakes it.
pub(crate) struct Reload {
    pub(crate) stamp: trader_ensemble::SelectionStamp,
    pub(crate) load_ms: u64,
    pub(crate) host: Option<PathBuf>,
    pub(crate) config_dir: PathBuf,
    pub(crate) trigger: Arc<Notify>,
}

/// The resource alerts of a run: settings, interval, predicted RSS.
pub(crate) type Watch = (AlertSettings, Duration, u64);

/// FNV-1a of the budget verdict: which configuration a run used.
#[must_use]
pub fn fnv1a(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// The whole run: `Ok(None)` when `stop` came before the market was
/// connected (nothing was started). A run that fails after its row exists
/// is recorded as failed (a live one stays resumable) before the error
/// returns.
pub async fn trade(
    request: &RunRequest,
    setup: RunSetup<'_>,
    stop: Stop,
) -> anyhow::Result<Option<Summary>> {
    let RunSetup {
        profile,
        store: store_location,
        verdict_json,
        alerts,
        predicted_rss,
        host,
        config_dir,
        reload_trigger,
    } = setup;
    let watch = alerts.map(|alerts| {
        let every = request
            .alert_interval
            .unwrap_or(Duration::from_secs(u64::from(
                alerts.check_interval_secs.get(),
            )));
        (alerts, every.max(Duration::from_secs(1)), predicted_rss)
    });
    let Some(market) = stop.unless(connect(request, profile)).await else {
        return Ok(None);
    };
    let market = market?;
    let client = client_for(
        &market,
        request.timeout.max(Duration::from_millis(1)),
        request.requests_per_minute,
    )?;
    let store = Store::open(store_location, Some(profile.history_hours)).await?;
    // Bars are shared by the store's profiles: none prunes below this one's history.
    store
        .keep_history_for(&profile.name, profile.history_hours)
        .await?;
    let loading = Instant::now();
    let (ensemble, stamp) = trader_engine::load_ensemble(profile)?;
    let load_ms = u64::try_from(loading.elapsed().as_millis()).unwrap_or(u64::MAX);
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
        store = %store_location,
        "run started"
    );
    let ran = run_started(
        RunContext {
            request,
            profile,
            store_location,
            market: &market,
            client: &client,
            run,
            last_decided,
            watch,
            stop: &stop,
            reload: Reload {
                stamp,
                load_ms,
                host: host.map(Path::to_path_buf),
                config_dir: config_dir.to_path_buf(),
                trigger: reload_trigger.map_or_else(|| Arc::new(Notify::new()), Arc::clone),
            },
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

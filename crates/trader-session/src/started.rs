//! A `trader run` after its row exists in the store: the engine over the
//! market's client, reconcile, the live loop
//! ([`trader_engine::run_live`] on the profile's [`PollSchedule`]) with
//! `/metrics`, the resource alerts and the data alarms
//! ([`trader_monitor::DataAlarms`]: stale data, clock skew) beside it, then
//! the summary ([`crate::summary`]). A replay's bars stay out of the store's
//! bar history.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;
use trader_alpaca::AlpacaClient;
use trader_config::Profile;
use trader_core::{Broker, StoreLocation};
use trader_engine::{
    Engine, EngineSetup, LiveOutcome, PollReport, PollSchedule, Poller, Reloader, ResumePoint,
    Stop, hours_to_trade,
};
use trader_ensemble::Ensemble;
use trader_monitor::{DataAlarms, Metrics};
use trader_store::{RunMode, RunStart, Store};

use crate::market::Market;
use crate::run::{Reload, RunRequest, Watch};
use crate::summary::{Summary, SummaryInputs, summarize};
use crate::swap_check::BudgetSwapCheck;

/// What a started run needs.
pub(crate) struct RunContext<'a> {
    pub(crate) request: &'a RunRequest,
    pub(crate) profile: &'a Profile,
    pub(crate) store_location: &'a StoreLocation,
    pub(crate) market: &'a Market,
    pub(crate) client: &'a AlpacaClient,
    pub(crate) run: RunStart,
    pub(crate) last_decided: Option<i64>,
    pub(crate) watch: Option<Watch>,
    pub(crate) stop: &'a Stop,
    pub(crate) reload: Reload,
}

/// The run after its row exists: engine, reconcile, the poll loop, the
/// summary.
pub(crate) async fn run_started(
    cx: RunContext<'_>,
    store: &Store,
    ensemble: Ensemble,
) -> anyhow::Result<Summary> {
    let RunContext {
        request,
        profile,
        store_location,
        market,
        client,
        run,
        last_decided,
        watch,
        stop,
        reload,
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
    follow_directory(&mut engine, profile, reload, now).await?;
    let mut outcome = LiveOutcome::default();
    // The trading client's requests during the loop and its broker ms.
    let mut loop_requests = None;
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
        let metrics = start_metrics(
            request.metrics_port,
            profile.top_n,
            market.clock.real_duration(interval),
        )
        .await?;
        if let Some((alerts, every, predicted)) = watch {
            trader_monitor::spawn_alerts(alerts, every, predicted, metrics.clone());
        }
        let schedule = PollSchedule::for_profile(profile);
        let mut alarms = DataAlarms::new(profile.stale_after_hours);
        let requests_before = client.stats().requests;
        let started_ms = market.clock.now().timestamp_millis();
        outcome = trader_engine::run_live(
            &mut engine,
            &mut poller,
            market.clock.as_ref(),
            (schedule, interval),
            window,
            stop,
            |report| observe(report, market, &mut alarms, metrics.as_ref()),
        )
        .await?;
        loop_requests = Some((
            client.stats().requests - requests_before,
            market.clock.now().timestamp_millis() - started_ms,
        ));
    }
    summarize(
        &engine,
        client,
        market,
        SummaryInputs {
            profile: &profile.name,
            store_location,
            run,
            window,
            start_account,
            outcome,
            schedule: profile.poll_schedule,
            loop_requests,
        },
    )
    .await
}

/// Records the ensemble the run starts (or restarts) on and, with
/// `[ensemble] reload = "on-change"`, makes the engine follow its directory
/// with the budget's check of every swap.
async fn follow_directory(
    engine: &mut Engine<AlpacaClient, Store>,
    profile: &Profile,
    reload: Reload,
    now: i64,
) -> anyhow::Result<()> {
    engine
        .record_start_version(now, reload.load_ms, Some(trader_budget::own_memory().rss))
        .await?;
    if let Some(reloader) = Reloader::new(
        profile.ensemble_dir.clone(),
        (trader_engine::load_options(profile), profile.reload),
        Arc::new(BudgetSwapCheck {
            profile: profile.clone(),
            host: reload.host,
            config_dir: reload.config_dir,
        }),
        (reload.stamp, now),
        reload.trigger,
    ) {
        engine.follow(reloader);
    }
    Ok(())
}

/// After each poll: the metrics, and the data alarms (logged once per
/// crossing whether or not metrics are on).
fn observe(
    report: &PollReport<'_>,
    market: &Market,
    alarms: &mut DataAlarms,
    metrics: Option<&Arc<Mutex<Metrics>>>,
) {
    let mut crossings = Vec::new();
    if report.failed.is_none() {
        crossings.extend(alarms.check_stale(report.newest_hour, report.now_ms.div_euclid(1000)));
    }
    if let Some(following) = &market.following {
        crossings.extend(alarms.check_skew(following.skew_ms()));
    }
    for c in &crossings {
        c.log();
    }
    if let Some(m) = metrics
        && let Ok(mut m) = m.lock()
    {
        m.update(report.stats, report.last_bar_age_secs, report.failed);
        for c in &crossings {
            m.alarm(c);
        }
    }
}

/// `/metrics` and `/healthz` on 127.0.0.1:`port`, healthy while a poll
/// succeeded within three poll intervals (real time, at least 5 s).
pub async fn start_metrics(
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

//! The live loop: every poll interval of the clock's time, the closed hours
//! since the last poll go to the engine (history before the first hour to
//! decide, decisions from it on) until the window's end or a stop.
//!
//! A stop is answered at once in every state: a wait between polls ends at
//! once; a poll or an hour in progress gets [`STOP_GRACE`] to finish (it
//! normally takes milliseconds) and is otherwise dropped where it stands,
//! which the run's records survive as they survive a kill.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use trader_core::{Broker, Clock, HOUR_SECS, MarketData};
use trader_store::Recorder;

use crate::{Engine, EngineError, EngineStats, Poller, TradeWindow};

/// How long a poll or an hour's work in progress may finish after a stop.
pub const STOP_GRACE: Duration = Duration::from_millis(750);

/// Asks a run to stop (SIGINT/SIGTERM in the CLI; a test's own call).
#[derive(Debug, Clone)]
pub struct StopHandle(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

/// What a run watches for a stop.
#[derive(Debug, Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

/// A stop request and the flag it sets.
#[must_use]
pub fn stop_pair() -> (StopHandle, Stop) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (StopHandle(std::sync::Arc::new(tx)), Stop(rx))
}

impl StopHandle {
    /// Requests the stop (again: no effect).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// Whether a stop was requested.
    #[must_use]
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is requested (never, if every handle is gone
    /// without one).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// `work`, unless a stop is requested first (then None, and `work` is
    /// dropped at its current await).
    pub async fn unless<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.wait() => None,
            v = work => Some(v),
        }
    }
}

/// How the loop ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOutcome {
    /// Polls that failed, by error kind.
    pub poll_errors: BTreeMap<String, u64>,
    /// A stop was requested.
    pub stopped: bool,
    /// The stop cut a poll or an hour short (past [`STOP_GRACE`]).
    pub interrupted: bool,
}

/// What the loop reports after each poll (for metrics).
#[derive(Debug)]
pub struct PollReport<'a> {
    pub stats: &'a EngineStats,
    /// Seconds from the close of the newest hour held to the poll.
    pub last_bar_age_secs: Option<i64>,
    /// The error kind of a failed poll.
    pub failed: Option<&'static str>,
}

/// Runs the live loop of `engine` over `window` (see the module doc),
/// polling `poller` every `interval` of `clock` time (waiting
/// `clock.real_duration(interval)` in real time), calling `observe` after
/// each poll.
///
/// # Errors
/// Only what stops the engine (the store); broker and market problems are
/// counted and the next poll asks again.
pub async fn run_live<B, R, M>(
    engine: &mut Engine<B, R>,
    poller: &mut Poller<M>,
    clock: &dyn Clock,
    interval: Duration,
    window: TradeWindow,
    stop: &Stop,
    mut observe: impl FnMut(&PollReport<'_>),
) -> Result<LiveOutcome, EngineError>
where
    B: Broker,
    R: Recorder,
    M: MarketData,
{
    let mut outcome = LiveOutcome::default();
    let mut poll_errors: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let now = clock.now().timestamp();
        // The work of one poll, dropped at the end of this block.
        let step = {
            let work = poll_once(engine, poller, now, window, &mut poll_errors);
            tokio::pin!(work);
            let done = tokio::select! {
                biased;
                r = &mut work => Some(r),
                () = stop.wait() => None,
            };
            if let Some(r) = done {
                r
            } else {
                outcome.stopped = true;
                if let Ok(r) = tokio::time::timeout(STOP_GRACE, &mut work).await {
                    r
                } else {
                    tracing::info!(
                        "stopped in the middle of a poll or an hour; its records are as after a kill, and a live run resumes from them"
                    );
                    outcome.interrupted = true;
                    break;
                }
            }
        };
        let failed = step?;
        observe(&PollReport {
            stats: engine.stats(),
            last_bar_age_secs: engine.newest_common_bar().map(|t| now - (t + HOUR_SECS)),
            failed,
        });
        if outcome.stopped || now >= window.until {
            break;
        }
        let wait = clock.real_duration(interval);
        if stop.unless(tokio::time::sleep(wait)).await.is_none() {
            outcome.stopped = true;
            break;
        }
    }
    outcome.poll_errors = poll_errors;
    Ok(outcome)
}

/// One poll at `now`: every closed hour to the engine. Returns the error
/// kind of a failed poll (counted in `poll_errors`).
async fn poll_once<B, R, M>(
    engine: &mut Engine<B, R>,
    poller: &mut Poller<M>,
    now: i64,
    window: TradeWindow,
    poll_errors: &mut BTreeMap<String, u64>,
) -> Result<Option<&'static str>, EngineError>
where
    B: Broker,
    R: Recorder,
    M: MarketData,
{
    match poller.poll(now).await {
        Ok(hours) => {
            // Hours closing after the end (the clock runs on while the last
            // poll works) are not traded.
            for hour in hours
                .into_iter()
                .filter(|h| h.t + HOUR_SECS <= window.until)
            {
                if hour.t < window.decide_from {
                    engine.add_history(&hour.bars, now).await?;
                } else {
                    engine
                        .on_hour(hour.t, &hour.bars, hour.complete, now)
                        .await?;
                }
            }
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "poll failed; asking again at the next poll");
            *poll_errors.entry(e.kind.as_str().to_owned()).or_insert(0) += 1;
            Ok(Some(e.kind.as_str()))
        }
    }
}

//! The live loop: at each poll of its [`PollSchedule`] (on the clock's
//! time), the closed hours since the last poll go to the engine (history
//! before the first hour to decide, decisions from it on) until the
//! window's end or a stop. It measures, on the same clock, how long after
//! each close the hour was seen and its orders answered.
//!
//! A stop is answered at once in every state: a wait between polls ends at
//! once; a poll or an hour in progress gets [`STOP_GRACE`] to finish (it
//! normally takes milliseconds) and is otherwise dropped where it stands,
//! which the run's records survive as they survive a kill.

use std::collections::BTreeMap;
use std::time::Duration;

use trader_core::{Broker, Clock, HOUR_SECS, MarketData};
use trader_store::Recorder;

use crate::schedule::{PollSchedule, PollState};
use crate::stop::Stop;
use crate::{Engine, EngineError, EngineStats, Poller, TradeWindow};

/// How long a poll or an hour's work in progress may finish after a stop.
pub const STOP_GRACE: Duration = Duration::from_millis(750);

/// How the loop ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOutcome {
    /// Polls that failed, by error kind.
    pub poll_errors: BTreeMap<String, u64>,
    /// A stop was requested.
    pub stopped: bool,
    /// The stop cut a poll or an hour short (past [`STOP_GRACE`]).
    pub interrupted: bool,
    /// Polls made (each asks for bars only when an hour can have closed).
    pub polls: u64,
    /// Per hour decided when it was the newest closed one (not caught up
    /// after downtime, nor found closed by the first poll): clock
    /// milliseconds from its close to the poll that brought its bars.
    pub close_to_seen_ms: Vec<u64>,
    /// The same hours, those that sent orders: clock milliseconds from the
    /// close to the last of its orders answered.
    pub close_to_order_ms: Vec<u64>,
}

/// What the loop reports after each poll (for metrics).
#[derive(Debug)]
pub struct PollReport<'a> {
    pub stats: &'a EngineStats,
    /// The clock's time of the poll, milliseconds.
    pub now_ms: i64,
    /// Open time of the newest complete hour held (all symbols), epoch
    /// seconds.
    pub newest_hour: Option<i64>,
    /// Seconds from the close of the newest hour held to the poll.
    pub last_bar_age_secs: Option<i64>,
    /// The error kind of a failed poll.
    pub failed: Option<&'static str>,
}

/// Runs the live loop of `engine` over `window` (see the module doc),
/// polling `poller` as `schedule` says with `interval` between polls at
/// most (clock time; waits are `clock.real_duration` of it), calling
/// `observe` after each poll.
///
/// # Errors
/// Only what stops the engine (the store); broker and market problems are
/// counted and the next poll asks again.
pub async fn run_live<B, R, M>(
    engine: &mut Engine<B, R>,
    poller: &mut Poller<M>,
    clock: &dyn Clock,
    (schedule, interval): (PollSchedule, Duration),
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
    let mut misses = 0;
    loop {
        let now_ms = clock.now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        outcome.polls += 1;
        // The work of one poll, dropped at the end of this block.
        let step = {
            let cx = PollContext {
                clock,
                now_ms,
                first_poll: outcome.polls == 1,
                window,
                poll_errors: &mut poll_errors,
                close_to_seen_ms: &mut outcome.close_to_seen_ms,
                close_to_order_ms: &mut outcome.close_to_order_ms,
            };
            let work = poll_once(engine, poller, cx);
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
        if !outcome.stopped {
            // Between hours: a loaded ensemble goes in, a changed directory
            // starts a load.
            engine.after_poll(now).await?;
        }
        let newest_hour = engine.newest_common_bar();
        observe(&PollReport {
            stats: engine.stats(),
            now_ms,
            newest_hour,
            last_bar_age_secs: newest_hour.map(|t| now - (t + HOUR_SECS)),
            failed,
        });
        if outcome.stopped || now >= window.until {
            break;
        }
        if schedule.is_due(now_ms, poller.next_hour()) {
            misses += 1;
        } else {
            misses = 0;
        }
        let after_ms = clock.now().timestamp_millis();
        let next_ms = schedule.next_poll_ms(
            PollState {
                now_ms: after_ms,
                next_hour: poller.next_hour(),
                misses,
            },
            interval,
        );
        let wait = clock.real_duration(Duration::from_millis(
            u64::try_from(next_ms - after_ms).unwrap_or(0),
        ));
        // A clock whose waits pass at once (a test's) gets no timer: a
        // zero sleep still costs a timer tick.
        let waited = if wait.is_zero() {
            tokio::task::yield_now().await;
            !stop.requested()
        } else {
            wait_between_polls(engine, clock, wait, stop).await?
        };
        if !waited {
            outcome.stopped = true;
            break;
        }
    }
    outcome.poll_errors = poll_errors;
    Ok(outcome)
}

/// Waits `wait` (real time) unless stopped (false); a pull of the
/// engine's reload trigger (its directory's watch, SIGHUP) meanwhile looks
/// at the directory at once, so a load can finish before the next hour.
async fn wait_between_polls<B, R>(
    engine: &mut Engine<B, R>,
    clock: &dyn Clock,
    wait: Duration,
    stop: &Stop,
) -> Result<bool, EngineError>
where
    B: Broker,
    R: Recorder,
{
    let trigger = engine.reload_trigger();
    let sleep = tokio::time::sleep(wait);
    tokio::pin!(sleep);
    loop {
        let pulled = async {
            match &trigger {
                Some(t) => t.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = stop.wait() => return Ok(false),
            () = &mut sleep => return Ok(true),
            () = pulled => {
                engine.between_hours(clock.now().timestamp()).await?;
            }
        }
    }
}

/// What one poll reads and where it counts.
struct PollContext<'a> {
    clock: &'a dyn Clock,
    /// The poll's time, clock milliseconds.
    now_ms: i64,
    /// The loop's first poll: what it finds closed before the loop began,
    /// so its delays are not the schedule's.
    first_poll: bool,
    window: TradeWindow,
    poll_errors: &'a mut BTreeMap<String, u64>,
    close_to_seen_ms: &'a mut Vec<u64>,
    close_to_order_ms: &'a mut Vec<u64>,
}

/// One poll: every closed hour to the engine. Returns the error kind of a
/// failed poll (counted in `poll_errors`).
async fn poll_once<B, R, M>(
    engine: &mut Engine<B, R>,
    poller: &mut Poller<M>,
    cx: PollContext<'_>,
) -> Result<Option<&'static str>, EngineError>
where
    B: Broker,
    R: Recorder,
    M: MarketData,
{
    let now = cx.now_ms.div_euclid(1000);
    match poller.poll(now).await {
        Ok(hours) => {
            // The newest hour closed at this poll: the one a live trader
            // waits for (older ones are caught up after downtime).
            let newest_closed = now.div_euclid(HOUR_SECS) * HOUR_SECS - HOUR_SECS;
            // Hours closing after the end (the clock runs on while the last
            // poll works) are not traded.
            for hour in hours
                .into_iter()
                .filter(|h| h.t + HOUR_SECS <= cx.window.until)
            {
                if hour.t < cx.window.decide_from {
                    engine.add_history(&hour.bars, now).await?;
                    continue;
                }
                let sent = engine.stats().orders_sent + engine.stats().orders_adopted;
                engine
                    .on_hour(hour.t, &hour.bars, hour.complete, now)
                    .await?;
                if hour.t == newest_closed && !cx.first_poll {
                    let close_ms = (hour.t + HOUR_SECS) * 1000;
                    let since = |ms: i64| u64::try_from(ms - close_ms).unwrap_or(0);
                    cx.close_to_seen_ms.push(since(cx.now_ms));
                    if engine.stats().orders_sent + engine.stats().orders_adopted > sent {
                        cx.close_to_order_ms
                            .push(since(cx.clock.now().timestamp_millis()));
                    }
                }
            }
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "poll failed; asking again at the next poll");
            *cx.poll_errors
                .entry(e.kind.as_str().to_owned())
                .or_insert(0) += 1;
            Ok(Some(e.kind.as_str()))
        }
    }
}

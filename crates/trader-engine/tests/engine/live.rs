//! The live loop in process: the simulator's paper broker (which also serves
//! the recorded bars closed by its clock), the demo ensemble's real model
//! files (models/demo), the in-memory recorder or a real SQLite store, and a clock on
//! which every wait passes at once: no wall-clock sleep decides anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use crate::common::{H, SteppingClock, repo, symbols};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use trader_core::{
    AccountState, Bar, Broker, Clock, MarketError, Order, OrderRequest, Placement, Position, Symbol,
};
use trader_engine::{
    Engine, LiveOutcome, PollSchedule, Poller, ResumePoint, TradeWindow, hours_to_trade, run_live,
    stop_pair,
};
use trader_ensemble::Ensemble;
use trader_sim::PaperBroker;
use trader_store::{MemoryRecorder, Recorder, RunMode, Store};

/// 2018-03-05T00:00Z: four days into the slice, past the 72 h of history.
const FROM: i64 = 1_520_208_000;
const HOURS: i64 = 120;
const HISTORY: u32 = 72;

/// The slice's bars.
fn slice() -> BTreeMap<Symbol, Vec<Bar>> {
    common::recorded("tests/fixtures/slice", |_| true)
}

fn ensemble() -> Ensemble {
    common::ensemble(&repo().join("models/demo"), 5)
}

async fn engine<B: Broker, R: Recorder>(broker: B, records: R, run_id: i64) -> Engine<B, R> {
    common::lean_engine(broker, records, ensemble(), HISTORY, run_id).await
}

/// A paper account over the slice and its clock, ten minutes after the
/// close of the first hour to decide.
fn market() -> (Arc<PaperBroker>, Arc<SteppingClock>) {
    market_at(FROM + H + 600)
}

/// A paper account over the slice and its clock at `start`.
fn market_at(start: i64) -> (Arc<PaperBroker>, Arc<SteppingClock>) {
    let clock = SteppingClock::at(start);
    let broker = Arc::new(PaperBroker::new(slice(), 100_000.0, clock.clone()));
    (broker, clock)
}

fn first_window() -> TradeWindow {
    hours_to_trade(ResumePoint {
        replay: Some((FROM, FROM + HOURS * H)),
        now: FROM + H + 600,
        last_decided: None,
        newest_stored: None,
        history_hours: HISTORY,
    })
}

async fn positions(broker: &PaperBroker) -> Vec<(String, f64)> {
    broker
        .positions()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.symbol.as_str().to_owned(), p.qty))
        .collect()
}

/// The whole window in one go, in memory: (decided hours, outcome, the
/// account's positions at the end, every order id).
async fn twin() -> (Vec<i64>, LiveOutcome, Vec<(String, f64)>, Vec<String>) {
    twin_on(
        FROM + H + 600,
        (PollSchedule::Fixed, Duration::from_hours(1)),
    )
    .await
}

/// [`twin`] with its clock starting at `start`, polling on `schedule`.
async fn twin_on(
    start: i64,
    schedule: (PollSchedule, Duration),
) -> (Vec<i64>, LiveOutcome, Vec<(String, f64)>, Vec<String>) {
    let (broker, clock) = market_at(start);
    let mut e = engine(broker.clone(), MemoryRecorder::new(), 1).await;
    let window = first_window();
    let mut poller = Poller::new(broker.clone(), symbols(), window.first_fetch);
    let (_handle, stop) = stop_pair();
    let outcome = run_live(
        &mut e,
        &mut poller,
        clock.as_ref(),
        schedule,
        window,
        &stop,
        |_| {},
    )
    .await
    .unwrap();
    let hours = e
        .store()
        .decisions_of_run(1)
        .await
        .unwrap()
        .iter()
        .map(|d| d.bar_t)
        .collect();
    (
        hours,
        outcome,
        positions(&broker).await,
        order_ids(&broker).await,
    )
}

/// The ids of every order the account received in the window, in order.
async fn order_ids(broker: &PaperBroker) -> Vec<String> {
    let mut ids = Vec::new();
    for h in FROM / H..FROM / H + HOURS {
        for s in symbols() {
            let id = trader_engine::client_order_id("lean", h * H, &s);
            if broker.order_by_client_id(&id).await.unwrap().is_some() {
                ids.push(id);
            }
        }
    }
    ids
}

#[tokio::test]
async fn the_live_loop_decides_each_closed_hour_once_in_order_and_ends_at_its_window() {
    let (hours, outcome, _, ids) = twin().await;
    assert_eq!(
        hours,
        (0..HOURS).map(|k| FROM + k * H).collect::<Vec<_>>(),
        "every hour of the window, once, in order"
    );
    assert_eq!(
        (&outcome.poll_errors, outcome.stopped, outcome.interrupted),
        (&LiveOutcome::default().poll_errors, false, false),
        "no poll error, no stop"
    );
    // Polled hourly at ten past: each hour seen ten minutes after its close.
    assert_eq!(outcome.close_to_seen_ms.len(), hours.len() - 1);
    assert!(outcome.close_to_seen_ms.iter().all(|ms| *ms == 600_000));
    assert!(!ids.is_empty(), "the demo ensemble trades in these hours");
}

/// The aligned schedule polls at each close plus the bar delay: every hour
/// is seen, and its orders answered, one clock second after its close, at a
/// poll interval of one minute as of two, with no more polls than the fixed
/// schedule at that interval; it decides and trades exactly as an hourly
/// fixed schedule that happens to poll one second after each close.
#[tokio::test]
async fn the_aligned_schedule_reacts_a_bar_delay_after_each_close_with_no_more_polls() {
    let (fixed_hours, _, fixed_positions, fixed_ids) =
        twin_on(FROM + H + 1, (PollSchedule::Fixed, Duration::from_hours(1))).await;
    let aligned = PollSchedule::Aligned {
        bar_delay: Duration::from_secs(1),
    };
    for interval in [Duration::from_mins(1), Duration::from_mins(2)] {
        let (hours, outcome, positions, ids) = twin_on(FROM + H + 600, (aligned, interval)).await;
        assert_eq!(hours, fixed_hours, "{interval:?}");
        assert_eq!(positions, fixed_positions, "{interval:?}");
        assert_eq!(ids, fixed_ids, "{interval:?}");
        // Every hour after the first poll's, one second after its close.
        assert_eq!(outcome.close_to_seen_ms.len(), hours.len() - 1);
        assert!(
            outcome.close_to_seen_ms.iter().all(|ms| *ms == 1_000),
            "{:?}",
            outcome.close_to_seen_ms
        );
        assert!(!outcome.close_to_order_ms.is_empty());
        assert!(outcome.close_to_order_ms.iter().all(|ms| *ms == 1_000));
        let fixed_polls = u64::try_from(HOURS * H).unwrap() / interval.as_secs();
        assert!(
            outcome.polls <= fixed_polls + u64::try_from(HOURS).unwrap(),
            "{} polls, fixed {fixed_polls}",
            outcome.polls
        );
    }
}

#[tokio::test]
async fn a_run_stopped_and_resumed_on_its_store_decides_no_hour_twice_and_ends_like_its_twin() {
    let (twin_hours, _, twin_positions, twin_ids) = twin().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lean.sqlite");
    let (broker, clock) = market();
    // Life 1: stopped after 40 hours, between two polls.
    let store = Store::open(&crate::common::store_at(&db).await, Some(HISTORY))
        .await
        .unwrap();
    let run = store
        .start_run("lean", "h", "{}", RunMode::Live, FROM)
        .await
        .unwrap();
    {
        let mut e = engine(broker.clone(), store.clone(), run.run_id).await;
        let window = first_window();
        let mut poller = Poller::new(broker.clone(), symbols(), window.first_fetch);
        let (handle, stop) = stop_pair();
        let outcome = run_live(
            &mut e,
            &mut poller,
            clock.as_ref(),
            (PollSchedule::Fixed, Duration::from_hours(1)),
            window,
            &stop,
            |report| {
                if report.stats.decisions + report.stats.skipped >= 40 {
                    handle.stop();
                }
            },
        )
        .await
        .unwrap();
        assert!(outcome.stopped && !outcome.interrupted, "{outcome:?}");
        assert_eq!(e.stats().decisions + e.stats().skipped, 40);
    }
    // Life 2: a new engine on the same store and account resumes the run.
    let again = store
        .start_run("lean", "h", "{}", RunMode::Live, clock.now().timestamp())
        .await
        .unwrap();
    assert!(again.resumed && again.run_id == run.run_id);
    let mut e = engine(broker.clone(), store.clone(), run.run_id).await;
    let window = TradeWindow {
        until: FROM + HOURS * H,
        ..hours_to_trade(ResumePoint {
            replay: None,
            now: clock.now().timestamp(),
            last_decided: store
                .last_decided_hour_for("lean", RunMode::Live)
                .await
                .unwrap(),
            newest_stored: e.newest_common_bar(),
            history_hours: HISTORY,
        })
    };
    assert_eq!(
        window.decide_from,
        FROM + 40 * H,
        "the hour after the last decided"
    );
    let mut poller = Poller::new(broker.clone(), symbols(), window.first_fetch);
    let (_handle, stop) = stop_pair();
    let outcome = run_live(
        &mut e,
        &mut poller,
        clock.as_ref(),
        (PollSchedule::Fixed, Duration::from_hours(1)),
        window,
        &stop,
        |_| {},
    )
    .await
    .unwrap();
    assert!(!outcome.stopped);
    assert_eq!(e.stats().already_decided, 0, "no hour handed over twice");
    let hours: Vec<i64> = store
        .decisions_of_run(run.run_id)
        .await
        .unwrap()
        .iter()
        .map(|d| d.bar_t)
        .collect();
    assert_eq!(hours, twin_hours);
    assert_eq!(positions(&broker).await, twin_positions);
    assert!(!twin_ids.is_empty());
    assert_eq!(
        order_ids(&broker).await,
        twin_ids,
        "the same orders, none twice"
    );
    store.close().await;
}

/// A broker whose account never answers (a hung connection).
struct Hung(Arc<PaperBroker>);

impl Broker for Hung {
    async fn account(&self) -> Result<AccountState, MarketError> {
        std::future::pending().await
    }
    async fn positions(&self) -> Result<Vec<Position>, MarketError> {
        self.0.positions().await
    }
    async fn open_orders(&self) -> Result<Vec<Order>, MarketError> {
        self.0.open_orders().await
    }
    async fn order_by_client_id(&self, id: &str) -> Result<Option<Order>, MarketError> {
        self.0.order_by_client_id(id).await
    }
    async fn place(&self, order: &OrderRequest) -> Result<Placement, MarketError> {
        self.0.place(order).await
    }
}

#[tokio::test]
async fn a_stop_while_the_broker_hangs_cuts_the_hour_short_and_records_no_decision() {
    let (broker, clock) = market();
    let mut e = engine(Hung(broker.clone()), MemoryRecorder::new(), 1).await;
    let window = first_window();
    let mut poller = Poller::new(broker.clone(), symbols(), window.first_fetch);
    let (handle, stop) = stop_pair();
    // The first hour waits on the account forever; the stop comes meanwhile.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.stop();
    });
    let outcome = run_live(
        &mut e,
        &mut poller,
        clock.as_ref(),
        (PollSchedule::Fixed, Duration::from_hours(1)),
        window,
        &stop,
        |_| {},
    )
    .await
    .unwrap();
    assert!(outcome.stopped && outcome.interrupted, "{outcome:?}");
    assert!(
        !e.store().decided(1, FROM).await.unwrap(),
        "dropped before its decision"
    );
    assert_eq!(e.stats().decisions, 0);
}

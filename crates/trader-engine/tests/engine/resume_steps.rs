//! A live run dropped at every step of an hour and restarted ends like its
//! twin that was never dropped.
//!
//! The steps are the calls the engine makes to its store (a real SQLite file)
//! and its broker (the simulator's in-process paper account) while it works
//! on one closed hour: bars stored, earlier orders looked up and their fills
//! recorded, the hour's decision checked and written with its planned
//! orders, the account read, the equity snapshot, each order sent and its
//! answer recorded. They are counted on an undisturbed run first, so a step
//! added to the engine is covered without editing this test.
//!
//! At step k the call either never happens or happens and its answer is
//! lost, and the engine is dropped right there, as a killed process leaves
//! it (or, for a store call, the call fails and the engine stops on the
//! error). Then a restart as `trader run` does it: the store file opened
//! again, the run resumed, a fresh engine on the same account, reconcile and
//! settle, the hours from `hours_to_trade`, the live loop to the end. The
//! end state must equal the twin's: decisions (one per hour, none twice),
//! the orders in the store and at the broker (ids, statuses, broker ids: an
//! order accepted twice would shift the broker's numbering), fills, equity
//! snapshots, positions and cash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use crate::common::{
    Fault, Faulty, H, SteppingClock, Tripwire, When, repo, stored_orders, symbols,
};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trader_core::{AccountState, Bar, Broker, Clock, ErrorKind, Order, Position, Symbol};
use trader_engine::{
    Engine, EngineStats, PollSchedule, Poller, ResumePoint, TradeWindow, hours_to_trade, run_live,
    stop_pair,
};
use trader_ensemble::Ensemble;
use trader_sim::PaperBroker;
use trader_store::{DecisionRow, Recorder, RunMode, Store};

/// 2018-03-05T00:00Z: four days into the slice, past the history.
const FROM: i64 = 1_520_208_000;
const HOURS: i64 = 4;
const END: i64 = FROM + HOURS * H;
/// What the demo members need (6 lags of 60-hour features), and one more.
const HISTORY: u32 = 66;
const PROFILE: &str = "lean";

fn slice() -> BTreeMap<Symbol, Vec<Bar>> {
    common::recorded("tests/fixtures/slice", |t| t < END + 2 * H)
}

/// The demo ensemble's best five members, from their model files.
fn ensemble() -> Ensemble {
    common::ensemble(&repo().join("models/demo"), 5)
}

async fn engine<B: Broker, R: Recorder>(broker: B, records: R, run_id: i64) -> Engine<B, R> {
    common::lean_engine(broker, records, ensemble(), HISTORY, run_id).await
}

/// One account over the slice, its clock ten minutes after the close of the
/// first hour to decide, and a store file of its own.
struct World {
    _dir: tempfile::TempDir,
    db: PathBuf,
    broker: Arc<PaperBroker>,
    clock: Arc<SteppingClock>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = SteppingClock::at(FROM + H + 600);
    World {
        db: dir.path().join("lean.sqlite"),
        _dir: dir,
        broker: Arc::new(PaperBroker::new(slice(), 100_000.0, clock.clone())),
        clock,
    }
}

/// How the first life ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The live loop reached the end of the window.
    Finished,
    /// The engine stopped on a store error.
    Failed,
    /// Dropped at a hanging call, as a kill leaves it.
    Dropped,
}

/// The first life: a new live run over the window, every store and broker
/// call through `trip`.
async fn first_life(w: &World, trip: &Arc<Tripwire>) -> Ended {
    let store = Store::open(&crate::common::store_at(&w.db).await, Some(HISTORY))
        .await
        .unwrap();
    let now = w.clock.now().timestamp();
    let run = store
        .start_run(PROFILE, "h", "{}", RunMode::Live, now)
        .await
        .unwrap();
    assert!(!run.resumed);
    let mut e = engine(
        Faulty::new(w.broker.clone(), trip.clone()),
        Faulty::new(store.clone(), trip.clone()),
        run.run_id,
    )
    .await;
    let window = TradeWindow {
        until: END,
        ..hours_to_trade(ResumePoint {
            replay: None,
            now,
            last_decided: None,
            newest_stored: None,
            history_hours: HISTORY,
        })
    };
    assert_eq!(
        (window.decide_from, window.first_fetch),
        (FROM, FROM - i64::from(HISTORY) * H)
    );
    let mut poller = Poller::new(w.broker.clone(), symbols(), window.first_fetch);
    let (_handle, stop) = stop_pair();
    let live = run_live(
        &mut e,
        &mut poller,
        w.clock.as_ref(),
        (PollSchedule::Fixed, Duration::from_hours(1)),
        window,
        &stop,
        |_| trip.mark(),
    );
    let ended = tokio::select! {
        r = live => if r.is_ok() { Ended::Finished } else { Ended::Failed },
        () = trip.tripped() => Ended::Dropped,
    };
    // Everything of the first life goes, without a clean close.
    drop(e);
    drop(store);
    ended
}

/// A restart as `trader run` does it (`run_cmd.rs::run_started`: the run
/// resumed, a new engine, reconcile, the hours from `hours_to_trade`, the
/// live loop), then the rest of the window; returns the new engine's counts
/// and whether the restart came within the hour it had last decided (the
/// loop then hands that hour over again: it settles the orders the drop
/// left unsent, and decides nothing).
async fn restart(w: &World) -> (EngineStats, bool) {
    let store = Store::open(&crate::common::store_at(&w.db).await, Some(HISTORY))
        .await
        .unwrap();
    let now = w.clock.now().timestamp();
    let again = store
        .start_run(PROFILE, "h", "{}", RunMode::Live, now)
        .await
        .unwrap();
    assert!(again.resumed, "the unfinished live run is resumed");
    let mut e = engine(w.broker.clone(), store.clone(), again.run_id).await;
    e.reconcile().await.unwrap();
    let last_decided = store
        .last_decided_hour_for(PROFILE, RunMode::Live)
        .await
        .unwrap();
    let window = TradeWindow {
        until: END,
        ..hours_to_trade(ResumePoint {
            replay: None,
            now,
            last_decided,
            newest_stored: e.newest_common_bar(),
            history_hours: HISTORY,
        })
    };
    let mut poller = Poller::new(w.broker.clone(), symbols(), window.first_fetch);
    let (_handle, stop) = stop_pair();
    let outcome = run_live(
        &mut e,
        &mut poller,
        w.clock.as_ref(),
        (PollSchedule::Fixed, Duration::from_hours(1)),
        window,
        &stop,
        |_| {},
    )
    .await
    .unwrap();
    assert!(
        !outcome.stopped && outcome.poll_errors.is_empty(),
        "{outcome:?}"
    );
    let stats = e.stats().clone();
    drop(e);
    store.close().await;
    (stats, Some(window.decide_from) == last_decided)
}

/// What a run leaves behind.
#[derive(Debug, PartialEq)]
struct EndState {
    decisions: Vec<DecisionRow>,
    /// (client_order_id, status, broker id) of every order in the store.
    stored_orders: Vec<(String, String, String)>,
    /// Every order the account received, by hour and symbol.
    broker_orders: Vec<Order>,
    /// (qty, price, fee) of every fill, sorted.
    fills: Vec<(u64, u64, u64)>,
    /// (hour, cash, equity) of every snapshot.
    equity: Vec<(i64, f64, f64)>,
    positions: Vec<Position>,
    account: AccountState,
}

async fn end_state(w: &World) -> EndState {
    let store = Store::open(&crate::common::store_at(&w.db).await, Some(HISTORY))
        .await
        .unwrap();
    let mut broker_orders = Vec::new();
    for h in (FROM / H - 1)..=(END / H) {
        for s in symbols() {
            let id = trader_engine::client_order_id(PROFILE, h * H, &s);
            if let Some(o) = w.broker.order_by_client_id(&id).await.unwrap() {
                broker_orders.push(o);
            }
        }
    }
    let mut fills: Vec<(u64, u64, u64)> = store
        .fills_of_run(1)
        .await
        .unwrap()
        .iter()
        .map(|f| (f.qty.to_bits(), f.price.to_bits(), f.fee.to_bits()))
        .collect();
    fills.sort_unstable();
    let state = EndState {
        decisions: store.decisions_of_run(1).await.unwrap(),
        stored_orders: stored_orders(&w.db),
        broker_orders,
        fills,
        equity: store.equity_curve(1).await.unwrap(),
        positions: w.broker.positions().await.unwrap(),
        account: w.broker.account().await.unwrap(),
    };
    store.close().await;
    state
}

/// The undisturbed twin: its end state and every call it made.
async fn twin() -> (EndState, Vec<common::Step>) {
    let w = world();
    let trip = Tripwire::new();
    assert_eq!(first_life(&w, &trip).await, Ended::Finished);
    (end_state(&w).await, trip.log())
}

/// The faults tried at a step: the call lost or its answer lost, the engine
/// dropped there; for a store call also a write that fails (nothing
/// written), on which the engine stops with the error.
fn faults_for(label: &str) -> Vec<Fault> {
    let mut faults = vec![Fault::Hang(When::Before), Fault::Hang(When::After)];
    let broker_call = [
        "account",
        "positions",
        "open_orders",
        "order_by_client_id",
        "place",
    ]
    .contains(&label.split(' ').next().unwrap_or_default());
    if !broker_call {
        faults.push(Fault::Fail(When::Before, ErrorKind::Server));
    }
    faults
}

/// One case: the first life dropped (or failed) at `step` with `fault`, the
/// restart, the end state against the twin's. Returns how many orders the
/// drop left at the broker unconfirmed (all adopted by the restart).
async fn drop_and_restart(step: &common::Step, fault: Fault, twin_state: &EndState) -> u64 {
    let w = world();
    let trip = Tripwire::at(step.index, fault);
    let ended = first_life(&w, &trip).await;
    let what = format!("{fault:?} at step {} ({})", step.index, step.label);
    let seen = trip.log();
    assert_eq!(
        seen.get(step.index).map(|s| s.label.as_str()),
        Some(step.label.as_str()),
        "{what}: the first life is the twin up to the fault"
    );
    assert_eq!(
        seen.len(),
        step.index + 1,
        "{what}: nothing after the fault"
    );
    assert_eq!(
        ended,
        match fault {
            Fault::Hang(_) => Ended::Dropped,
            Fault::Fail(..) => Ended::Failed,
        },
        "{what}"
    );
    // What the drop left: orders the broker has that the store does not
    // know as sent (their answer was lost).
    let mut at_broker_unconfirmed = 0;
    for (cid, status, _) in stored_orders(&w.db) {
        if (status == "planned" || status == "unknown")
            && w.broker.order_by_client_id(&cid).await.unwrap().is_some()
        {
            at_broker_unconfirmed += 1;
        }
    }
    let (stats, same_hour) = restart(&w).await;
    assert_eq!(
        stats.already_decided,
        u64::from(same_hour),
        "{what}: only the hour last decided is handed over again, and only when it is the newest closed"
    );
    assert_eq!(
        stats.decisions + stats.skipped + stats.already_decided,
        stats.hours,
        "{what}"
    );
    assert_eq!(
        stats.orders_adopted, at_broker_unconfirmed,
        "{what}: the restart adopts exactly the orders whose answer was lost"
    );
    let state = end_state(&w).await;
    assert_eq!(
        &state,
        twin_state,
        "{what}: ends like the twin ({})",
        w.db.display()
    );
    at_broker_unconfirmed
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_dropped_at_every_step_of_an_hour_and_restarted_ends_like_its_twin() {
    let started = Instant::now();
    let (twin_state, log) = twin().await;

    // The twin decided every hour once and traded.
    assert_eq!(
        twin_state
            .decisions
            .iter()
            .map(|d| d.bar_t)
            .collect::<Vec<_>>(),
        (0..HOURS).map(|k| FROM + k * H).collect::<Vec<_>>()
    );
    assert!(
        twin_state
            .decisions
            .iter()
            .all(|d| d.skipped_reason.is_none())
    );
    assert!(
        !twin_state.fills.is_empty(),
        "orders of earlier hours filled"
    );

    // The hour to disturb: of the hours after the first (whose poll also
    // stores the history) and before the last, the one with the most steps.
    let mut per_poll: BTreeMap<usize, Vec<&common::Step>> = BTreeMap::new();
    for s in &log {
        per_poll.entry(s.poll).or_default().push(s);
    }
    let (&poll, steps) = per_poll
        .iter()
        .filter(|(p, _)| (1..HOURS as usize - 1).contains(*p))
        .max_by_key(|(p, s)| (s.len(), std::cmp::Reverse(**p)))
        .unwrap();
    let labels: Vec<&str> = steps.iter().map(|s| s.label.as_str()).collect();
    eprintln!("hour {} has {} steps: {labels:#?}", poll, steps.len());
    // The hour settles earlier orders, decides and sends: every kind of step.
    for kind in [
        "insert_bars",
        "unsettled_orders",
        "order_by_client_id",
        "record_fill",
        "decided",
        "account",
        "positions",
        "record_decision",
        "record_equity",
        "place",
        "update_order",
    ] {
        assert!(
            labels.iter().any(|l| l.starts_with(kind)),
            "hour {poll} has a step {kind}: {labels:?}"
        );
    }

    // Each case on its own store file and account, as many at once as
    // there are cores.
    let twin_state = Arc::new(twin_state);
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let permits = Arc::new(tokio::sync::Semaphore::new(cores));
    let mut cases = tokio::task::JoinSet::new();
    for step in steps {
        for fault in faults_for(&step.label) {
            let (step, twin_state, permits) =
                ((*step).clone(), twin_state.clone(), permits.clone());
            cases.spawn(async move {
                let _permit = permits.acquire_owned().await.unwrap();
                drop_and_restart(&step, fault, &twin_state).await
            });
        }
    }
    let mut runs = 0;
    let mut adoptions = 0;
    while let Some(case) = cases.join_next().await {
        adoptions += case.unwrap();
        runs += 1;
    }
    eprintln!(
        "{runs} drops and restarts over {} steps in {:?}",
        steps.len(),
        started.elapsed()
    );
    assert!(
        adoptions > 0,
        "some drops left an order at the broker unconfirmed"
    );
}

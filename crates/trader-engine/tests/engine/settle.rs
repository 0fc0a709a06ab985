//! Orders the engine could not confirm are settled by the next start, and
//! every reason to skip an hour comes from a real situation and lands in
//! the store.
//!
//! In process: a real SQLite store file, the simulator's paper account over
//! the recorded slice (it fills an order at the next bar's open), the demo
//! ensemble's model files, a clock on which every wait passes at once, and
//! [`common::Faulty`] where a call has to fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use crate::common::{
    Fault, Faulty, H, SteppingClock, Tripwire, When, repo, stored_orders, symbols,
};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trader_core::{
    Bar, Broker, Clock, ErrorKind, OrderAmount, OrderRequest, OrderStatus, Side, Symbol,
    format_time,
};
use trader_engine::{
    Engine, EngineStats, PollSchedule, Poller, ResumePoint, TradeWindow, hours_to_trade, run_live,
    stop_pair,
};
use trader_sim::PaperBroker;
use trader_store::{DecisionRow, Recorder, RunMode, Store};

/// 2018-03-05T00:00Z: four days into the slice, past the 72 h of history.
const FROM: i64 = 1_520_208_000;
const HISTORY: u32 = 72;
const PROFILE: &str = "lean";

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn id(t: i64, s: &str) -> String {
    trader_engine::client_order_id(PROFILE, t, &sym(s))
}

/// The slice's bars up to a few hours after the window.
fn slice() -> BTreeMap<Symbol, Vec<Bar>> {
    common::recorded("tests/fixtures/slice", |t| t < FROM + 12 * H)
}

async fn engine<B: Broker, R: Recorder>(broker: B, records: R, run_id: i64) -> Engine<B, R> {
    common::lean_engine(
        broker,
        records,
        common::ensemble(&repo().join("models/demo"), 5),
        HISTORY,
        run_id,
    )
    .await
}

/// A paper account over `bars` with `cash`, its clock ten minutes after the
/// close of the first hour to decide, and a store file of its own.
struct World {
    _dir: tempfile::TempDir,
    db: PathBuf,
    broker: Arc<PaperBroker>,
    clock: Arc<SteppingClock>,
}

fn world(bars: BTreeMap<Symbol, Vec<Bar>>, cash: f64) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = SteppingClock::at(FROM + H + 600);
    World {
        db: dir.path().join("lean.sqlite"),
        _dir: dir,
        broker: Arc::new(PaperBroker::new(bars, cash, clock.clone())),
        clock,
    }
}

impl World {
    /// One life of the live run (started, or resumed as `trader run` does:
    /// reconcile, then the hours from `hours_to_trade`) up to the close of
    /// hour `until - H`, its broker calls through `trip`. Returns its
    /// counts and what reconcile found.
    async fn life(&self, trip: &Arc<Tripwire>, until: i64) -> (EngineStats, Vec<String>) {
        let store = Store::open(&crate::common::store_at(&self.db).await, Some(HISTORY))
            .await
            .unwrap();
        let now = self.clock.now().timestamp();
        let run = store
            .start_run(PROFILE, "h", "{}", RunMode::Live, now)
            .await
            .unwrap();
        assert_eq!(run.run_id, 1);
        let mut e = engine(
            Faulty::new(self.broker.clone(), trip.clone()),
            store.clone(),
            run.run_id,
        )
        .await;
        let differences = e.reconcile().await.unwrap();
        let window = TradeWindow {
            until,
            ..hours_to_trade(ResumePoint {
                replay: None,
                now,
                last_decided: store
                    .last_decided_hour_for(PROFILE, RunMode::Live)
                    .await
                    .unwrap(),
                newest_stored: e.newest_common_bar(),
                history_hours: HISTORY,
            })
        };
        let mut poller = Poller::new(self.broker.clone(), symbols(), window.first_fetch);
        let (_handle, stop) = stop_pair();
        let outcome = run_live(
            &mut e,
            &mut poller,
            self.clock.as_ref(),
            (PollSchedule::Fixed, Duration::from_hours(1)),
            window,
            &stop,
            |_| trip.mark(),
        )
        .await
        .unwrap();
        assert!(!outcome.stopped && outcome.poll_errors.is_empty());
        let stats = e.stats().clone();
        drop(e);
        store.close().await;
        (stats, differences)
    }

    async fn decisions(&self) -> Vec<DecisionRow> {
        let store = Store::open(&crate::common::store_at(&self.db).await, Some(HISTORY))
            .await
            .unwrap();
        let d = store.decisions_of_run(1).await.unwrap();
        store.close().await;
        d
    }

    /// (status, broker id) of an order in the store.
    fn stored(&self, client_order_id: &str) -> Option<(String, String)> {
        stored_orders(&self.db)
            .into_iter()
            .find(|(c, ..)| c == client_order_id)
            .map(|(_, s, b)| (s, b))
    }
}

/// Hour FROM's two buys (BTC and LTC, sent in that order), as the demo
/// ensemble decides them on a fresh account.
const FIRST_ORDERS: [&str; 2] = ["BTC/USD", "LTC/USD"];

#[tokio::test]
async fn orders_whose_answer_was_lost_are_unknown_and_the_next_start_adopts_or_sends_them_once() {
    let w = world(slice(), 100_000.0);
    let trip = Tripwire::new();
    // The first order reaches the broker and its answer is lost; the second
    // is lost on the way.
    trip.on("place", Fault::Fail(When::After, ErrorKind::Timeout));
    trip.on("place", Fault::Fail(When::Before, ErrorKind::Connection));
    let (stats, _) = w.life(&trip, FROM + H).await;
    assert_eq!((stats.decisions, stats.orders_failed), (1, 2));
    let [btc, ltc] = FIRST_ORDERS.map(|s| id(FROM, s));
    let placed: Vec<String> = trip
        .log()
        .into_iter()
        .filter(|s| s.label.starts_with("place "))
        .map(|s| s.label)
        .collect();
    assert_eq!(placed, [format!("place {btc}"), format!("place {ltc}")]);
    assert_eq!(w.stored(&btc), Some(("unknown".into(), String::new())));
    assert_eq!(w.stored(&ltc), Some(("unknown".into(), String::new())));
    let at_broker = w.broker.order_by_client_id(&btc).await.unwrap().unwrap();
    assert_eq!(at_broker.status, OrderStatus::Open);
    assert!(w.broker.order_by_client_id(&ltc).await.unwrap().is_none());

    // The next start, within the same hour: hour FROM is handed over again,
    // settles both (one adopted, one sent) and is not decided again.
    let (stats, differences) = w.life(&Tripwire::new(), FROM + H).await;
    assert!(differences.is_empty(), "{differences:?}");
    assert_eq!(
        (
            stats.already_decided,
            stats.decisions,
            stats.orders_sent,
            stats.orders_adopted,
            stats.orders_failed
        ),
        (1, 0, 2, 1, 0)
    );
    let ltc_at_broker = w.broker.order_by_client_id(&ltc).await.unwrap().unwrap();
    assert_eq!(
        w.stored(&btc),
        Some(("open".into(), at_broker.id.clone())),
        "adopted with the broker's id"
    );
    assert_eq!(
        w.stored(&ltc),
        Some(("open".into(), ltc_at_broker.id.clone()))
    );
    assert_ne!(at_broker.id, ltc_at_broker.id);
    assert_eq!(w.broker.open_orders().await.unwrap().len(), 2, "each once");

    // The hour after: both filled at its open, each fill recorded once.
    let (stats, _) = w.life(&Tripwire::new(), FROM + 2 * H).await;
    assert_eq!(stats.decisions, 1);
    for (cid, s) in [(&btc, "BTC/USD"), (&ltc, "LTC/USD")] {
        let o = w.broker.order_by_client_id(cid).await.unwrap().unwrap();
        assert_eq!(o.status, OrderStatus::Filled);
        let open = slice()[&sym(s)]
            .iter()
            .find(|b| b.t == FROM + 2 * H)
            .unwrap()
            .open;
        assert_eq!(o.filled_avg_price, Some(open));
        assert_eq!(w.stored(cid), Some(("filled".into(), o.id.clone())));
    }
    let store = Store::open(&crate::common::store_at(&w.db).await, Some(HISTORY))
        .await
        .unwrap();
    let counts = store.run_counts(1).await.unwrap();
    assert_eq!((counts.filled, counts.fills), (2, 2));
    store.close().await;
}

#[tokio::test]
async fn an_order_at_the_broker_that_the_store_thinks_unsent_is_adopted_not_sent_again() {
    let w = world(slice(), 100_000.0);
    let trip = Tripwire::new();
    // Killed right after the first order reached the broker: the store
    // still has both as planned.
    trip.on("place", Fault::Hang(When::After));
    {
        let store = Store::open(&crate::common::store_at(&w.db).await, Some(HISTORY))
            .await
            .unwrap();
        let run = store
            .start_run(PROFILE, "h", "{}", RunMode::Live, FROM + H + 600)
            .await
            .unwrap();
        let mut e = engine(
            Faulty::new(w.broker.clone(), trip.clone()),
            store.clone(),
            run.run_id,
        )
        .await;
        let mut poller = Poller::new(w.broker.clone(), symbols(), FROM - i64::from(HISTORY) * H);
        let (_handle, stop) = stop_pair();
        let window = TradeWindow {
            decide_from: FROM,
            until: FROM + H,
            first_fetch: FROM - i64::from(HISTORY) * H,
        };
        tokio::select! {
            _ = run_live(&mut e, &mut poller, w.clock.as_ref(), (PollSchedule::Fixed, Duration::from_hours(1)), window, &stop, |_| {}) => panic!("the hang ends the life"),
            () = trip.tripped() => {}
        }
    }
    let [btc, ltc] = FIRST_ORDERS.map(|s| id(FROM, s));
    assert_eq!(w.stored(&btc), Some(("planned".into(), String::new())));
    assert_eq!(w.stored(&ltc), Some(("planned".into(), String::new())));
    let at_broker = w.broker.order_by_client_id(&btc).await.unwrap().unwrap();
    assert!(w.broker.order_by_client_id(&ltc).await.unwrap().is_none());

    // An order placed outside this trader meanwhile: reconcile names it.
    w.broker
        .place(&OrderRequest {
            client_order_id: "manual-1".into(),
            symbol: sym("ETH/USD"),
            side: Side::Buy,
            amount: OrderAmount::Notional(100.0),
        })
        .await
        .unwrap();

    let (stats, differences) = w.life(&Tripwire::new(), FROM + H).await;
    assert_eq!(
        differences,
        ["open order manual-1 (buy ETH/USD) is not in the store"]
    );
    assert_eq!(
        (stats.orders_sent, stats.orders_adopted, stats.decisions),
        (2, 1, 0)
    );
    assert_eq!(w.stored(&btc), Some(("open".into(), at_broker.id.clone())));
    let ltc_at_broker = w.broker.order_by_client_id(&ltc).await.unwrap().unwrap();
    assert_eq!(w.stored(&ltc), Some(("open".into(), ltc_at_broker.id)));
    assert_eq!(
        w.broker.order_by_client_id(&btc).await.unwrap().unwrap(),
        at_broker,
        "the same order, not a second one"
    );
    assert_eq!(w.broker.open_orders().await.unwrap().len(), 3);
}

#[tokio::test]
async fn orders_the_broker_refused_stay_rejected_and_are_never_sent_again() {
    let w = world(slice(), 100_000.0);
    // Before the trader starts, an order placed outside it commits all the
    // cash: the account still shows it, the broker refuses every buy.
    w.broker
        .place(&OrderRequest {
            client_order_id: "manual-all-in".into(),
            symbol: sym("ETH/USD"),
            side: Side::Buy,
            amount: OrderAmount::Notional(100_000.0),
        })
        .await
        .unwrap();
    let trip = Tripwire::new();
    let (stats, differences) = w.life(&trip, FROM + H).await;
    assert_eq!(
        differences,
        ["open order manual-all-in (buy ETH/USD) is not in the store"]
    );
    assert_eq!(
        (stats.decisions, stats.orders_sent, stats.orders_failed),
        (1, 0, 2)
    );
    let [btc, ltc] = FIRST_ORDERS.map(|s| id(FROM, s));
    for cid in [&btc, &ltc] {
        assert_eq!(w.stored(cid), Some(("rejected".into(), String::new())));
        assert!(w.broker.order_by_client_id(cid).await.unwrap().is_none());
    }

    // The next start and the hours after: the refused orders are final.
    let trip = Tripwire::new();
    let (stats, _) = w.life(&trip, FROM + 3 * H).await;
    assert_eq!(stats.already_decided, 1);
    let labels: Vec<String> = trip.log().into_iter().map(|s| s.label).collect();
    for cid in [&btc, &ltc] {
        assert!(
            !labels.iter().any(|l| l.ends_with(cid.as_str())),
            "{cid} neither sent again nor looked up: {labels:?}"
        );
        assert_eq!(w.stored(cid), Some(("rejected".into(), String::new())));
        assert!(w.broker.order_by_client_id(cid).await.unwrap().is_none());
    }
    let store = Store::open(&crate::common::store_at(&w.db).await, Some(HISTORY))
        .await
        .unwrap();
    assert!(
        store
            .unsettled_orders(1)
            .await
            .unwrap()
            .iter()
            .all(|o| o.bar_t != Some(FROM))
    );
    store.close().await;
}

/// The decisions of a fresh run over `hours` hours from FROM on `w`, with
/// the broker calls through `trip`.
async fn decide(w: &World, trip: &Arc<Tripwire>, hours: i64) -> Vec<DecisionRow> {
    let (stats, _) = w.life(trip, FROM + hours * H).await;
    let decisions = w.decisions().await;
    assert_eq!(
        decisions.iter().map(|d| d.bar_t).collect::<Vec<_>>(),
        (0..hours).map(|k| FROM + k * H).collect::<Vec<_>>(),
        "every hour has its row, skipped or not"
    );
    let skipped = decisions
        .iter()
        .filter(|d| d.skipped_reason.is_some())
        .count();
    assert_eq!(stats.skipped, skipped as u64);
    decisions
}

/// The client order ids of the hours the store holds orders for.
fn hours_with_orders(w: &World) -> Vec<String> {
    stored_orders(&w.db).into_iter().map(|(c, ..)| c).collect()
}

#[tokio::test]
async fn a_missing_bar_skips_its_hour_and_the_gap_skips_the_hours_that_need_it() {
    // ETH/USD has no bar at FROM + H: the poll hands that hour over
    // incomplete once FROM + 2H is complete.
    let mut bars = slice();
    bars.get_mut(&sym("ETH/USD"))
        .unwrap()
        .retain(|b| b.t != FROM + H);
    let w = world(bars, 100_000.0);
    let d = decide(&w, &Tripwire::new(), 3).await;
    assert_eq!(d[0].skipped_reason, None);
    assert_eq!(
        d[1].skipped_reason.as_deref(),
        Some("no bar for ETH/USD this hour")
    );
    assert_eq!(
        d[2].skipped_reason,
        Some(format!(
            "state unavailable: gap in the history: no bar between {} and {}",
            format_time(FROM),
            format_time(FROM + 2 * H)
        ))
    );
    for skipped in &d[1..] {
        assert_eq!(
            (skipped.aggregate.as_str(), skipped.target_weights.as_str()),
            ("[]", "{}")
        );
    }
    let stamp = |t: i64| format_time(t).replace(['-', ':'], "")[..13].to_owned();
    let ids = hours_with_orders(&w);
    assert!(ids.iter().any(|c| c.contains(&stamp(FROM))), "{ids:?}");
    assert!(
        !ids.iter()
            .any(|c| c.contains(&stamp(FROM + H)) || c.contains(&stamp(FROM + 2 * H))),
        "no order for a skipped hour: {ids:?}"
    );
}

#[tokio::test]
async fn a_short_history_skips_the_hour_naming_what_is_held() {
    // The market starts four hours before the first hour to decide.
    let bars = common::recorded("tests/fixtures/slice", |t| {
        (FROM - 3 * H..FROM + 4 * H).contains(&t)
    });
    let w = world(bars, 100_000.0);
    let d = decide(&w, &Tripwire::new(), 1).await;
    let reason = d[0].skipped_reason.clone().unwrap();
    let need: usize = reason
        .strip_prefix("state unavailable: ")
        .and_then(|r| r.strip_suffix(" hours of history are needed, only 4 are held"))
        .unwrap_or_else(|| panic!("{reason}"))
        .parse()
        .unwrap();
    assert!(need > 4, "{reason}");
    assert!(hours_with_orders(&w).is_empty());
}

#[tokio::test]
async fn an_unreadable_account_or_positions_skips_the_hour_and_the_next_trades() {
    for (call, kind, reason) in [
        (
            "account",
            ErrorKind::Timeout,
            "account unreadable: account: injected fault (timeout)",
        ),
        (
            "positions",
            ErrorKind::Server,
            "positions unreadable: positions: injected fault (server)",
        ),
    ] {
        let w = world(slice(), 100_000.0);
        let trip = Tripwire::new();
        if call == "positions" {
            // The start's reconcile reads them first and goes on without.
            trip.on(call, Fault::Fail(When::Before, kind));
        }
        trip.on(call, Fault::Fail(When::Before, kind));
        let d = decide(&w, &trip, 2).await;
        assert_eq!(d[0].skipped_reason.as_deref(), Some(reason));
        assert_eq!(d[1].skipped_reason, None, "the next hour reads it again");
        let ids = hours_with_orders(&w);
        assert!(
            !ids.is_empty() && ids.iter().all(|c| c.contains("0100Z")),
            "{ids:?}"
        );
    }
}

#[tokio::test]
async fn an_account_without_equity_skips_every_hour() {
    let w = world(slice(), 0.0);
    let d = decide(&w, &Tripwire::new(), 2).await;
    for row in &d {
        assert_eq!(
            row.skipped_reason.as_deref(),
            Some("equity 0 is not positive")
        );
    }
    assert!(hours_with_orders(&w).is_empty());
}

#[tokio::test]
async fn a_valid_but_absurd_bar_fails_inference_and_skips_the_hour() {
    // BTC/USD's bar at FROM passes every check (finite, positive, high
    // above open and close), but its range overflows the f32 state.
    let mut bars = slice();
    let bar = bars
        .get_mut(&sym("BTC/USD"))
        .unwrap()
        .iter_mut()
        .find(|b| b.t == FROM)
        .unwrap();
    bar.high = 1e45;
    bar.validate(chrono::DateTime::from_timestamp(FROM + H, 0).unwrap())
        .unwrap();
    let w = world(bars, 100_000.0);
    let d = decide(&w, &Tripwire::new(), 1).await;
    let reason = d[0].skipped_reason.clone().unwrap();
    assert!(
        reason.starts_with("inference failed: ") && reason.contains("non-finite value (inf)"),
        "{reason}"
    );
    assert!(hours_with_orders(&w).is_empty());
}

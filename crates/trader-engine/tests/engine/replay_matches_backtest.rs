//! A backtest decides exactly what a replay decides, in process.
//!
//! The sandboxed lean profile of the CLI's tests (the fixture ensemble,
//! orders from 10 USD) over the week 2018-09-01 .. 2018-09-07 of the shipped
//! data, twice:
//! - as `trader backtest` runs it: [`run_backtest`] over the simulator's
//!   in-process paper broker, records in memory, with the whole state through
//!   the ensemble (`--forward plain`) and with the batched first layer (the
//!   default);
//! - as `trader run` replays it without keys: the simulator on loopback
//!   (`trader_sim::serve`, as `EmbeddedReplay` starts it, its clock ten
//!   minutes into the hour after the first), the real Alpaca client, the
//!   engine's reconcile and [`run_live`] at the profile's poll interval,
//!   records in a SQLite store's `records_only`.
//!
//! The replay's clock is a stepping clock (every wait between polls passes
//! at once, moving the clock by the interval): no wall-clock pacing decides
//! anything, so every hour's orders reach the simulator within that hour,
//! as at any speed that leaves each hour time enough.
//!
//! The plain backtest's decision rows (hour, aggregate, target weights,
//! skip reason) equal the replay's exactly; the batched one's target
//! weights are within 1e-6 of them; the two accounts end with the same
//! orders and positions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use crate::common;

use crate::common::{H, SteppingClock, repo};

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use trader_alpaca::{AlpacaClient, ClientSettings};
use trader_config::{AlpacaEndpoints, AlpacaKeys, Profile, Secret};
use trader_core::{Bar, Broker, ManualClock, PAPER_STARTING_CASH, Symbol};
use trader_engine::{
    BacktestSpan, Engine, EngineSetup, PollSchedule, Poller, ResumePoint, common_hours,
    hours_to_trade, load_ensemble, run_backtest, run_live, stop_pair,
};
use trader_sim::{FaultConfig, PaperBroker, SimConfig, SimKeys, serve};
use trader_store::{DecisionRow, MemoryRecorder, Recorder, RunMode, Store};

/// 2018-09-01T00:00Z: the first hour decided.
const FROM: i64 = 1_535_760_000;
/// A week of hours: the replay ends at 2018-09-08T00:00Z, the backtest's
/// last hour is 2018-09-07T23:00Z.
const HOURS: i64 = 168;
/// The replay polls once an hour, ten minutes after each close: where in
/// the hour a replay's decision falls decides nothing (orders fill at the
/// next hour's open, prices are the last closed ones), and the profile's
/// 30 polls an hour would each cost a turn of tokio's millisecond timer.
const POLL: Duration = Duration::from_hours(1);

/// The shipped lean profile as the CLI's test sandbox rewrites it: the
/// fixture ensemble (`models/fixture-small`), orders from 10 USD.
fn lean() -> Profile {
    let mut p = Profile::load("lean", &repo().join("configs")).unwrap();
    p.ensemble_dir = repo().join("models/fixture-small");
    p.trading.min_trade_notional = 10.0;
    p
}

/// The shipped data around the week: the history before it, a day after.
fn bars(profile: &Profile) -> BTreeMap<Symbol, Vec<Bar>> {
    let history = i64::from(profile.history_hours) * H;
    let span = FROM - history - 24 * H..FROM + (HOURS + 24) * H;
    common::recorded("data/coinbase_2017_2018", |t| span.contains(&t))
}

/// One order as the account holds it: id, side, fill hour and price
/// (exact), filled quantity.
type Fill = (String, String, Option<i64>, Option<f64>, f64);

/// What a run left: its decision rows, the orders its account received
/// (hour by hour, in the profile's symbol order) and the account's
/// positions (symbol, qty).
struct Ran {
    decisions: Vec<DecisionRow>,
    orders: Vec<Fill>,
    positions: Vec<(String, f64)>,
    /// Projected hours decided ahead (backtests only).
    decided_ahead: u64,
}

/// The orders `broker` holds for run `run_id` of `mode`.
async fn orders(broker: &impl Broker, profile: &Profile, mode: RunMode, run_id: i64) -> Vec<Fill> {
    let prefix = trader_engine::order_id_prefix(&profile.name, mode, run_id);
    let mut orders = Vec::new();
    for t in (FROM..FROM + HOURS * H).step_by(H as usize) {
        for s in &profile.symbols {
            let id = trader_engine::client_order_id(&prefix, t, s);
            if let Some(o) = broker.order_by_client_id(&id).await.unwrap() {
                orders.push((
                    id,
                    format!("{:?}", o.side),
                    o.filled_at,
                    o.filled_avg_price,
                    o.filled_qty,
                ));
            }
        }
    }
    orders
}

async fn positions(broker: &impl Broker) -> Vec<(String, f64)> {
    broker
        .positions()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.symbol.as_str().to_owned(), p.qty))
        .collect()
}

/// `trader backtest --from 2018-09-01T00:00Z --to 2018-09-07T23:00Z`:
/// `block_hours` None is `--forward plain`, Some(256) the default;
/// `whole` turns off preparing each hour from the one before (every hour
/// through the whole forward pass).
async fn backtest(
    profile: &Profile,
    bars: &BTreeMap<Symbol, Vec<Bar>>,
    block_hours: Option<usize>,
    whole: bool,
) -> Ran {
    backtest_deciding(profile, bars, block_hours, whole, None).await
}

/// [`backtest`], deciding `hours_ahead` projected hours together (None:
/// the engine's default).
async fn backtest_deciding(
    profile: &Profile,
    bars: &BTreeMap<Symbol, Vec<Bar>>,
    block_hours: Option<usize>,
    whole: bool,
    hours_ahead: Option<usize>,
) -> Ran {
    let hours = common_hours(bars);
    let decided: Vec<i64> = hours
        .iter()
        .copied()
        .filter(|t| (FROM..FROM + HOURS * H).contains(t))
        .collect();
    assert_eq!(i64::try_from(decided.len()).unwrap(), HOURS);
    let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(FROM, 0).unwrap()));
    let broker = PaperBroker::new(bars.clone(), PAPER_STARTING_CASH, clock.clone());
    let mut engine = Engine::new(
        broker,
        MemoryRecorder::new(),
        load_ensemble(profile).unwrap().0,
        EngineSetup::for_profile(profile, 1, RunMode::Backtest),
    )
    .await
    .unwrap();
    engine.set_prepare_ahead(!whole);
    if let Some(hours) = hours_ahead {
        engine.set_hours_ahead(hours);
    }
    run_backtest(
        &mut engine,
        &clock,
        BacktestSpan {
            bars,
            hours: &hours,
            decided: &decided,
            block_hours,
            history_hours: profile.history_hours,
        },
        || {},
    )
    .await
    .unwrap();
    let splits = &engine.stats().splits;
    let prepared = splits.iter().filter(|s| s.prepared).count();
    match (block_hours, whole) {
        // Plain, prepared: every hour but the first was prepared ahead.
        (None, false) => assert_eq!(prepared, splits.len() - 1, "{splits:?}"),
        // Whole, or batched (the projection decides every hour).
        _ => assert_eq!(prepared, 0, "{splits:?}"),
    }
    Ran {
        decisions: engine.store().decisions_of_run(1).await.unwrap(),
        orders: orders(engine.broker(), profile, RunMode::Backtest, 1).await,
        positions: positions(engine.broker()).await,
        decided_ahead: engine.stats().decided_ahead,
    }
}

/// `trader run --from 2018-09-01T00:00Z --until 2018-09-08T00:00Z` without
/// keys, on a stepping clock.
async fn replay(profile: &Profile, bars: &BTreeMap<Symbol, Vec<Bar>>) -> Ran {
    let (key, secret) = ("PKEMBEDDED", "embedded-replay-test");
    // As `EmbeddedReplay::start`: ten minutes into the hour after the first.
    let start = FROM + H + 600;
    let clock = SteppingClock::at(start);
    let sim = serve(
        SimConfig {
            bars: bars.clone(),
            accounts: vec![SimKeys {
                key_id: key.to_owned(),
                secret_key: secret.to_owned(),
            }],
            starting_cash: PAPER_STARTING_CASH,
            clock: clock.clone(),
            rate_limit_per_minute: 1_000_000,
            faults: FaultConfig::default(),
        },
        0,
    )
    .await
    .unwrap();
    // As `client_for` a replay: no quota, the default timeout of `trader run`.
    let client = AlpacaClient::new(
        &AlpacaEndpoints {
            trading_url: sim.base_url(),
            data_url: sim.base_url(),
        },
        &AlpacaKeys {
            key_id: Secret::new(key.to_owned()),
            secret_key: Secret::new(secret.to_owned()),
        },
        ClientSettings {
            requests_per_minute: NonZeroU32::new(1_000_000).unwrap(),
            burst: NonZeroU32::new(1_000).unwrap(),
            ..ClientSettings::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &crate::common::store_at(&dir.path().join("replay.sqlite")).await,
        Some(profile.history_hours),
    )
    .await
    .unwrap();
    let run = store
        .start_run(&profile.name, "h", "{}", RunMode::Replay, start)
        .await
        .unwrap();
    let mut engine = Engine::new(
        client.clone(),
        store.records_only(),
        load_ensemble(profile).unwrap().0,
        EngineSetup::for_profile(profile, run.run_id, RunMode::Replay),
    )
    .await
    .unwrap();
    engine.reconcile().await.unwrap();
    let window = hours_to_trade(ResumePoint {
        replay: Some((FROM, FROM + HOURS * H)),
        now: start,
        last_decided: None,
        newest_stored: engine.newest_common_bar(),
        history_hours: profile.history_hours,
    });
    let mut poller = Poller::new(client.clone(), profile.symbols.clone(), window.first_fetch);
    let (_handle, stop) = stop_pair();
    let outcome = run_live(
        &mut engine,
        &mut poller,
        clock.as_ref(),
        (PollSchedule::Fixed, POLL),
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
    let ran = Ran {
        decisions: store.decisions_of_run(run.run_id).await.unwrap(),
        orders: orders(&client, profile, RunMode::Replay, run.run_id).await,
        positions: positions(&client).await,
        decided_ahead: 0,
    };
    store.close().await;
    sim.stop().await;
    ran
}

/// (hour, target weights, skip reason) of each decision row: the
/// aggregate is left out, as in the CLI's comparison (the replay reads its
/// account through the wire's rounded decimals).
fn rows(ran: &Ran) -> Vec<(i64, &str, Option<&str>)> {
    ran.decisions
        .iter()
        .map(|d| {
            (
                d.bar_t,
                d.target_weights.as_str(),
                d.skipped_reason.as_deref(),
            )
        })
        .collect()
}

fn weights(s: &str) -> BTreeMap<String, f64> {
    serde_json::from_str(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_decides_exactly_what_a_replay_decides() {
    let profile = lean();
    let bars = bars(&profile);
    let (plain, batched, replayed) = tokio::join!(
        backtest(&profile, &bars, None, false),
        backtest(&profile, &bars, Some(256), false),
        replay(&profile, &bars),
    );

    // Every hour of the week, once, in order.
    let hours: Vec<i64> = (0..HOURS).map(|k| FROM + k * H).collect();
    assert_eq!(
        replayed
            .decisions
            .iter()
            .map(|d| d.bar_t)
            .collect::<Vec<_>>(),
        hours
    );
    // The same computation as `trader run`: the same rows, to the byte.
    assert_eq!(rows(&plain), rows(&replayed));
    // The batched first layer: within float rounding.
    assert_eq!(batched.decisions.len(), replayed.decisions.len());
    let mut traded = 0;
    for (b, r) in batched.decisions.iter().zip(&replayed.decisions) {
        assert_eq!(b.bar_t, r.bar_t);
        let (b, r) = (weights(&b.target_weights), weights(&r.target_weights));
        assert_eq!(b.keys().collect::<Vec<_>>(), r.keys().collect::<Vec<_>>());
        for (x, y) in b.values().zip(r.values()) {
            assert!((x - y).abs() <= 1e-6, "batched {b:?} vs replay {r:?}");
            traded += usize::from(*y > 0.0);
        }
    }
    assert!(
        traded > 0,
        "no hour with a positive target: the comparison is empty"
    );
    // And so the same orders, filled at the same hour's open; quantities
    // and positions within the rounding of the wire's decimals.
    assert!(!replayed.orders.is_empty(), "the replay placed no order");
    let exact = |o: &[Fill]| -> Vec<(String, String, Option<i64>, Option<f64>)> {
        o.iter()
            .map(|(id, side, at, price, _)| (id.clone(), side.clone(), *at, *price))
            .collect()
    };
    assert_eq!(
        exact(&plain.orders),
        exact(&replayed.orders),
        "the same orders"
    );
    for (p, r) in plain.orders.iter().zip(&replayed.orders) {
        assert!(
            (p.4 - r.4).abs() <= 1e-9 * p.4.abs().max(1.0),
            "{p:?} vs {r:?}"
        );
    }
    assert_eq!(
        plain.positions.iter().map(|p| &p.0).collect::<Vec<_>>(),
        replayed.positions.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    for (p, r) in plain.positions.iter().zip(&replayed.positions) {
        assert!((p.1 - r.1).abs() <= 1e-6, "{p:?} vs {r:?}");
    }
}

/// Each hour prepared from the one before (the feature cache and the first
/// layer's older lags computed after the previous hour) decides the same
/// bits as every hour computed whole: what makes a restarted run (whose
/// first hour is whole) decide exactly as an uninterrupted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_prepared_ahead_decides_the_same_bits_as_a_whole_one() {
    let profile = lean();
    let bars = bars(&profile);
    let (prepared, whole) = tokio::join!(
        backtest(&profile, &bars, None, false),
        backtest(&profile, &bars, None, true),
    );
    assert_eq!(prepared.decisions.len(), whole.decisions.len());
    assert!(
        prepared
            .decisions
            .iter()
            .any(|d| d.skipped_reason.is_none()),
        "no decided hour: the comparison is empty"
    );
    for (p, w) in prepared.decisions.iter().zip(&whole.decisions) {
        assert_eq!(
            (p.bar_t, &p.aggregate, &p.target_weights, &p.skipped_reason),
            (w.bar_t, &w.aggregate, &w.target_weights, &w.skipped_reason)
        );
    }
    let ids = |r: &Ran| r.orders.iter().map(|o| o.0.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&prepared), ids(&whole), "the same orders");
    assert!(
        !whole.orders.is_empty(),
        "no order: the comparison is empty"
    );
}

/// Projected hours decided together, each assuming nothing traded since the
/// first (and used only when that held, to the bit), decide exactly what
/// each hour decided alone does: the same records and orders. Trades happen
/// in the week, so some hours computed ahead were not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_decided_ahead_decide_the_same_bits_as_hours_decided_alone() {
    let profile = lean();
    let bars = bars(&profile);
    let (ahead, alone) = tokio::join!(
        backtest_deciding(&profile, &bars, Some(256), false, Some(8)),
        backtest_deciding(&profile, &bars, Some(256), false, Some(1)),
    );
    assert_eq!(alone.decided_ahead, 0);
    let decided = ahead
        .decisions
        .iter()
        .filter(|d| d.skipped_reason.is_none())
        .count() as u64;
    assert!(
        ahead.decided_ahead > decided / 2,
        "{} of {decided} hours decided ahead",
        ahead.decided_ahead
    );
    assert!(
        ahead.decided_ahead < decided,
        "every hour decided ahead: no trade invalidated an assumption"
    );
    assert_eq!(ahead.decisions.len(), alone.decisions.len());
    for (a, b) in ahead.decisions.iter().zip(&alone.decisions) {
        assert_eq!(
            (a.bar_t, &a.aggregate, &a.target_weights, &a.skipped_reason),
            (b.bar_t, &b.aggregate, &b.target_weights, &b.skipped_reason)
        );
    }
    assert!(
        !alone.orders.is_empty(),
        "no order: the comparison is empty"
    );
    assert_eq!(ahead.orders, alone.orders, "the same orders");
    assert_eq!(ahead.positions, alone.positions);
}

//! The all-faults twin, in process: the same policy trades the same hours
//! through the real Alpaca client against two simulators on loopback, one
//! clean and one injecting every fault at once (429, 500, slow answers past
//! the client's timeout, malformed JSON, dropped connections, orders
//! accepted whose answer is lost). The faulty run must end with the same
//! orders and positions as the clean one, or skip hours only by failing
//! closed, each with its reason; no client_order_id is accepted twice and no
//! hour is decided twice.
//!
//! Each simulator and its engine share one clock on which every wait between
//! polls passes at once; only the client's own timeouts and backoff (short,
//! on loopback) take real time. No wall-clock sleep decides anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use crate::common;

use crate::common::{H, SteppingClock, ensemble, symbols};

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use trader_alpaca::{AlpacaClient, ClientSettings, ClientStats};
use trader_config::{AlpacaEndpoints, AlpacaKeys, Secret};
use trader_core::{Bar, Broker, Symbol};
use trader_engine::{
    Engine, LiveOutcome, PollSchedule, Poller, ResumePoint, TradeWindow, hours_to_trade, run_live,
    stop_pair,
};
use trader_sim::{Fault, FaultConfig, SimConfig, SimHandle, SimKeys, serve};
use trader_store::Recorder as _;
use trader_store::{RunMode, Store};

/// 2018-09-01T00:59Z: where the simulators start (a minute before the hour).
const START: i64 = 1_535_763_540;
/// 2018-08-31T23:00Z: a first live start decides the newest closed hour.
const FIRST: i64 = 1_535_756_400;
/// Hours decided by each twin.
const HOURS: i64 = 24;
const HISTORY: u32 = 72;
/// The lean profile's poll interval.
const POLL: Duration = Duration::from_mins(2);
/// Every request gives up after this long; a slow answer takes longer.
const TIMEOUT: Duration = Duration::from_millis(200);
const SLOW: Duration = Duration::from_millis(400);

/// The shipped recorded bars around the traded hours.
fn recorded() -> BTreeMap<Symbol, Vec<Bar>> {
    let span = FIRST - i64::from(HISTORY + 24) * H..FIRST + (HOURS + 24) * H;
    common::recorded("data/coinbase_2017_2018", |t| span.contains(&t))
}

/// A one-member ensemble under `dir` that rebalances every hour: action of
/// symbol s = tanh(0.5 + 60 x its last log return) (one linear layer over
/// cash, three position weights and three log returns).
fn write_momentum_policy(dir: &Path) {
    use safetensors::tensor::{Dtype, TensorView};
    let member = dir.join("trial_0000");
    fs_err::create_dir_all(&member).unwrap();
    let inputs = 1 + 3 + 3;
    let weight: Vec<u8> = (0..3)
        .flat_map(|o| (0..inputs).map(move |i| if i == 4 + o { 60.0_f32 } else { 0.0 }))
        .flat_map(f32::to_le_bytes)
        .collect();
    let bias: Vec<u8> = [0.5_f32; 3].iter().flat_map(|b| b.to_le_bytes()).collect();
    let tensors = [
        (
            "net.0.weight",
            TensorView::new(Dtype::F32, vec![3, inputs], &weight).unwrap(),
        ),
        (
            "net.0.bias",
            TensorView::new(Dtype::F32, vec![3], &bias).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, &member.join("actor.safetensors")).unwrap();
    let params = serde_json::json!({
        "format": 1,
        "symbols": ["BTC/USD", "ETH/USD", "LTC/USD"],
        "lookback": 1,
        "features": ["log_return"],
        "layers": [{"in": inputs, "out": 3, "activation": "tanh"}],
        "normalize": null,
        "score": 1.0,
        "hparams": {}
    });
    fs_err::write(member.join("params.json"), params.to_string()).unwrap();
    let ensemble =
        serde_json::json!({"format": 1, "members": [{"dir": "trial_0000", "score": 1.0}]});
    fs_err::write(dir.join("ensemble_params.json"), ensemble.to_string()).unwrap();
}

/// Loopback settings: a short timeout, short backoff, no quota to wait for.
fn fast_settings() -> ClientSettings {
    ClientSettings {
        requests_per_minute: NonZeroU32::new(100_000).unwrap(),
        burst: NonZeroU32::new(1_000).unwrap(),
        timeout: TIMEOUT,
        max_retries: 12,
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(100),
        bars_page_limit: 10_000,
    }
}

/// What one twin left behind.
struct Twin {
    /// (hour, skipped reason) of every decision row of the run, by hour.
    decisions: Vec<(i64, Option<String>)>,
    outcome: LiveOutcome,
    already_decided: u64,
    /// client_order_id of every order the simulator accepted, in order.
    accepted: Vec<String>,
    /// Orders the run planned (its store's count), those still planned or
    /// unknown (never confirmed by the broker), and accepted ids the store
    /// does not know.
    planned: u64,
    unconfirmed: Vec<String>,
    not_planned: Vec<String>,
    faults: BTreeMap<Fault, u64>,
    client: ClientStats,
    /// The account once every order has filled: cash, (symbol, qty).
    cash: f64,
    positions: Vec<(String, f64)>,
}

/// A simulator with `faults` on `clock`, one account for `key`, and the
/// real client for it.
async fn start_sim(
    key: &str,
    faults: FaultConfig,
    clock: Arc<SteppingClock>,
) -> (SimHandle, AlpacaClient) {
    let secret = format!("s-{key}");
    let sim = serve(
        SimConfig {
            bars: recorded(),
            accounts: vec![SimKeys {
                key_id: key.to_owned(),
                secret_key: secret.clone(),
            }],
            starting_cash: 100_000.0,
            clock,
            rate_limit_per_minute: 1_000_000,
            faults,
        },
        0,
    )
    .await
    .unwrap();
    let client = AlpacaClient::new(
        &AlpacaEndpoints {
            trading_url: sim.base_url(),
            data_url: sim.base_url(),
        },
        &AlpacaKeys {
            key_id: Secret::new(key.to_owned()),
            secret_key: Secret::new(secret),
        },
        fast_settings(),
    )
    .unwrap();
    (sim, client)
}

/// The lean trader's engine over `client`, recording run `run_id` in `store`.
async fn lean_engine(
    client: &AlpacaClient,
    store: &Store,
    models: &Path,
    run_id: i64,
) -> Engine<AlpacaClient> {
    common::lean_engine(
        client.clone(),
        store.clone(),
        ensemble(models, 1),
        HISTORY,
        run_id,
    )
    .await
}

/// Cash and positions (symbol, qty) as the client reads them. The client
/// retries on its own; a read that still fails is asked again, a bounded
/// number of times.
async fn account(client: &AlpacaClient) -> (f64, Vec<(String, f64)>) {
    let mut cash = None;
    let mut positions = None;
    for _ in 0..20 {
        if cash.is_none() {
            cash = client.account().await.ok().map(|a| a.cash);
        }
        if positions.is_none() {
            positions = client.positions().await.ok();
        }
        if cash.is_some() && positions.is_some() {
            break;
        }
    }
    let positions = positions
        .expect("the positions stayed unreadable")
        .into_iter()
        .map(|p| (p.symbol.as_str().to_owned(), p.qty))
        .collect();
    (cash.expect("the account stayed unreadable"), positions)
}

/// A simulator with `faults` and the lean trader over it, on one stepping
/// clock: `HOURS` hours decided, then two more hours for the last orders
/// to fill, then the account as the client reads it.
async fn twin(key: &str, faults: FaultConfig, models: &Path, dir: &Path) -> Twin {
    let clock = SteppingClock::at(START);
    let (sim, client) = start_sim(key, faults, clock.clone()).await;
    let store = Store::open(
        &crate::common::store_at(&dir.join(format!("{key}.sqlite"))).await,
        Some(HISTORY),
    )
    .await
    .unwrap();
    let run = store
        .start_run("lean", "faults", "{}", RunMode::Live, START)
        .await
        .unwrap();
    let mut engine = lean_engine(&client, &store, models, run.run_id).await;
    // As `trader run` does before its first poll.
    engine.reconcile().await.unwrap();
    let window = TradeWindow {
        until: FIRST + HOURS * H,
        ..hours_to_trade(ResumePoint {
            replay: None,
            now: START,
            last_decided: None,
            newest_stored: engine.newest_common_bar(),
            history_hours: HISTORY,
        })
    };
    assert_eq!(window.decide_from, FIRST, "{key}: the newest closed hour");
    let mut poller = Poller::new(client.clone(), symbols(), window.first_fetch);
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
    clock.advance(2 * H);
    let (cash, positions) = account(&client).await;
    let stats = sim.stats();
    sim.stop().await;
    let mut not_planned = Vec::new();
    for id in &stats.orders_accepted {
        if !store.order_known(id).await.unwrap() {
            not_planned.push(id.clone());
        }
    }
    let twin = Twin {
        decisions: store
            .decisions_of_run(run.run_id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.bar_t, d.skipped_reason.clone()))
            .collect(),
        outcome,
        already_decided: engine.stats().already_decided,
        accepted: stats.orders_accepted,
        planned: store.run_counts(run.run_id).await.unwrap().orders,
        unconfirmed: store
            .unsettled_orders(run.run_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.status.needs_resend())
            .map(|o| o.client_order_id)
            .collect(),
        not_planned,
        faults: stats.faults,
        client: client.stats(),
        cash,
        positions,
    };
    store.close().await;
    twin
}

/// Every hour of the window decided (or skipped) once, in order.
fn assert_each_hour_once(name: &str, run: &Twin) {
    let hours: Vec<i64> = (0..HOURS).map(|k| FIRST + k * H).collect();
    assert_eq!(
        run.decisions.iter().map(|d| d.0).collect::<Vec<_>>(),
        hours,
        "{name}: each hour decided once"
    );
    assert_eq!(run.already_decided, 0, "{name}: an hour handed over twice");
    assert!(!run.outcome.stopped, "{name}: {:?}", run.outcome);
}

/// No client_order_id accepted twice, and every order the run planned
/// accepted once: none lost, none doubled, none left unconfirmed.
fn assert_orders_accepted_once(name: &str, run: &Twin) {
    let unique: BTreeSet<&String> = run.accepted.iter().collect();
    assert_eq!(
        unique.len(),
        run.accepted.len(),
        "{name}: an id accepted twice: {:?}",
        run.accepted
    );
    assert!(run.not_planned.is_empty(), "{name}: {:?}", run.not_planned);
    assert_eq!(
        run.planned,
        run.accepted.len() as u64,
        "{name}: planned orders vs orders accepted"
    );
    assert!(run.unconfirmed.is_empty(), "{name}: {:?}", run.unconfirmed);
}

/// Every kind of fault happened (and, the run having ended well, was
/// survived); a lost answer was adopted.
fn assert_every_fault_injected(run: &Twin) {
    for fault in [
        Fault::RateLimited,
        Fault::ServerError,
        Fault::Slow,
        Fault::Malformed,
        Fault::Dropped,
        Fault::LostOrderAnswer,
    ] {
        assert!(
            run.faults.get(&fault).copied().unwrap_or(0) > 0,
            "{fault:?} never injected: {:?}",
            run.faults
        );
    }
    assert!(run.client.adopted_orders > 0, "no lost answer was adopted");
}

/// The hours the faulty run skipped, with their reasons.
fn skipped(run: &Twin) -> Vec<(i64, &str)> {
    run.decisions
        .iter()
        .filter_map(|(t, reason)| reason.as_deref().map(|r| (*t, r)))
        .collect()
}

/// The same orders, positions and cash as the clean twin, or the hours
/// skipped by fail-closed, each with its reason, and the same orders
/// before the first of them.
fn assert_same_as_clean_or_failed_closed(faulty: &Twin, clean: &Twin) {
    let skipped = skipped(faulty);
    let Some(&(first, _)) = skipped.first() else {
        assert_eq!(faulty.accepted, clean.accepted, "the same orders");
        assert_eq!(faulty.positions, clean.positions, "the same positions");
        assert_eq!(faulty.cash.to_bits(), clean.cash.to_bits(), "the same cash");
        return;
    };
    assert!(
        skipped.iter().all(|(_, r)| r.contains("unreadable")),
        "{skipped:?}"
    );
    let before = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .filter(|id| {
                (FIRST..first)
                    .step_by(H as usize)
                    .any(|t| id.contains(&hour_tag(t)))
            })
            .cloned()
            .collect()
    };
    assert_eq!(before(&faulty.accepted), before(&clean.accepted));
}

/// The same policy against a simulator injecting every fault at once and
/// against a clean one, side by side on the same hours: the same orders and
/// positions, or the hours skipped by fail-closed, each with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_once_same_positions_as_a_clean_run() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("momentum");
    write_momentum_policy(&models);
    let faults = FaultConfig {
        rate_limited: 0.04,
        server_error: 0.05,
        slow: 0.03,
        slow_delay: SLOW,
        malformed: 0.05,
        dropped: 0.05,
        lost_order_answer: 0.3,
        seed: 11,
    };
    assert!(
        SLOW > TIMEOUT,
        "a slow answer must pass the client's timeout"
    );
    let (faulty, clean) = tokio::join!(
        twin("PKFAULT", faults, &models, tmp.path()),
        twin("PKCLEAN", FaultConfig::default(), &models, tmp.path()),
    );
    let wall = started.elapsed();

    assert_each_hour_once("faulty", &faulty);
    assert_each_hour_once("clean", &clean);
    assert_eq!(
        (
            &clean.outcome.poll_errors,
            clean.outcome.stopped,
            clean.outcome.interrupted
        ),
        (&LiveOutcome::default().poll_errors, false, false),
        "clean: no poll error"
    );
    assert!(skipped(&clean).is_empty(), "{:?}", skipped(&clean));
    assert!(clean.faults.is_empty(), "{:?}", clean.faults);
    // The policy rebalances every hour: enough orders to lose answers of.
    assert!(
        clean.accepted.len() >= 2 * HOURS as usize,
        "{} orders",
        clean.accepted.len()
    );
    assert_every_fault_injected(&faulty);
    assert_orders_accepted_once("faulty", &faulty);
    assert_orders_accepted_once("clean", &clean);
    assert_same_as_clean_or_failed_closed(&faulty, &clean);

    println!(
        "faulty run: {} hours, skipped {:?}, {} orders ({} adopted after a lost answer or 422), poll errors {:?}",
        faulty.decisions.len(),
        skipped(&faulty),
        faulty.accepted.len(),
        faulty.client.adopted_orders,
        faulty.outcome.poll_errors
    );
    println!(
        "faults injected (all survived): {:?}; client: {} requests, errors by kind {:?}",
        faulty.faults, faulty.client.requests, faulty.client.errors
    );
    println!(
        "clean run: {} orders, {} requests; both twins in {:.2} s of real time",
        clean.accepted.len(),
        clean.client.requests,
        wall.as_secs_f64()
    );
}

/// The hour part of a client_order_id (`-20180901T1000Z-`).
fn hour_tag(t: i64) -> String {
    format!(
        "-{}-",
        DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y%m%dT%H%MZ")
    )
}

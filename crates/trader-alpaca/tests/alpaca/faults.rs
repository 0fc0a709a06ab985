//! Every fault the simulator can inject, at once, over two days of hourly
//! polls and orders: no order placed twice, no bar lost or handed over
//! twice, the final positions equal a fault-free run's, and the counts of
//! each fault survived are printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{START, Sim, fast_settings, recorded, symbols};
use trader_alpaca::{AlpacaClient, ClientSettings};
use trader_core::{Broker, HOUR_SECS, OrderAmount, OrderRequest, Side};
use trader_engine::{ClosedHour, Poller};
use trader_sim::{Fault, FaultConfig};

const HOURS: i64 = 48;
const BACKFILL_HOURS: i64 = 24;
/// Every request gives up after this long; a slow answer takes longer.
/// Each slow answer costs the client a timeout, so both are short.
const TIMEOUT: Duration = Duration::from_millis(150);
const SLOW: Duration = Duration::from_millis(250);

/// The loopback settings with the shorter timeout.
fn loopback_settings() -> ClientSettings {
    ClientSettings {
        timeout: TIMEOUT,
        ..fast_settings()
    }
}

struct Run {
    hours: Vec<ClosedHour>,
    intended: Vec<String>,
    positions: Vec<(String, f64)>,
    failed_calls: u64,
}

/// Backfills a day, then for each of `HOURS` hours: poll, read the account
/// and positions, place one small buy. A call that fails after the
/// client's own retries is tried again, as the engine would at its next
/// poll; the same intent keeps its client_order_id.
async fn trade(sim: &Sim, client: &AlpacaClient) -> Run {
    let syms = symbols();
    let mut poller = Poller::new(
        client.clone(),
        syms.clone(),
        START - BACKFILL_HOURS * HOUR_SECS,
    );
    let mut run = Run {
        hours: Vec::new(),
        intended: Vec::new(),
        positions: Vec::new(),
        failed_calls: 0,
    };
    for h in 0..HOURS {
        let now = START + h * HOUR_SECS + 600;
        sim.set_now(now);
        loop {
            match poller.poll(now).await {
                Ok(hours) => {
                    run.hours.extend(hours);
                    break;
                }
                Err(_) => run.failed_calls += 1,
            }
        }
        while client.account().await.is_err() {
            run.failed_calls += 1;
        }
        while client.positions().await.is_err() {
            run.failed_calls += 1;
        }
        let order = OrderRequest {
            client_order_id: format!("faults-{now}"),
            symbol: syms[(h % 3) as usize].clone(),
            side: Side::Buy,
            amount: OrderAmount::Notional(250.0),
        };
        run.intended.push(order.client_order_id.clone());
        while client.place(&order).await.is_err() {
            run.failed_calls += 1;
        }
    }
    sim.set_now(START + (HOURS + 1) * HOUR_SECS);
    let positions = loop {
        if let Ok(p) = client.positions().await {
            break p;
        }
    };
    run.positions = positions
        .into_iter()
        .map(|p| (p.symbol.as_str().to_owned(), p.qty))
        .collect();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_once_no_double_order_no_lost_or_repeated_bar() {
    let faults = FaultConfig {
        rate_limited: 0.04,
        server_error: 0.06,
        slow: 0.04,
        slow_delay: SLOW,
        malformed: 0.06,
        dropped: 0.06,
        lost_order_answer: 0.3,
        seed: 7,
    };
    let faulty = Sim::start(faults, 100_000).await;
    let settings = loopback_settings();
    assert!(settings.timeout < SLOW, "slow must pass the timeout");
    let client = faulty.client(settings);
    let run = trade(&faulty, &client).await;

    // Bars: every recorded hour from the backfill start on, once, in order,
    // equal to the recorded bars.
    let recorded = recorded();
    let times: Vec<i64> = run.hours.iter().map(|h| h.t).collect();
    let expected: Vec<i64> = (-BACKFILL_HOURS..HOURS)
        .map(|h| START + h * HOUR_SECS - HOUR_SECS)
        .filter(|t| *t >= START - BACKFILL_HOURS * HOUR_SECS)
        .collect();
    assert_eq!(times, expected, "each closed hour handed over once");
    for hour in &run.hours {
        assert!(hour.complete, "hour {} incomplete", hour.t);
        for (symbol, bar) in &hour.bars {
            let want = recorded[symbol].iter().find(|b| b.t == hour.t).unwrap();
            assert_eq!(bar, want, "{symbol} at {}", hour.t);
        }
    }

    // Orders: exactly the intended ones, each accepted once.
    let stats = faulty.handle.stats();
    let accepted: BTreeSet<&String> = stats.orders_accepted.iter().collect();
    assert_eq!(
        accepted.len(),
        stats.orders_accepted.len(),
        "an id accepted twice"
    );
    assert_eq!(accepted, run.intended.iter().collect::<BTreeSet<_>>());

    // Every kind of fault happened and was survived.
    for fault in [
        Fault::RateLimited,
        Fault::ServerError,
        Fault::Slow,
        Fault::Malformed,
        Fault::Dropped,
        Fault::LostOrderAnswer,
    ] {
        assert!(
            stats.faults.get(&fault).copied().unwrap_or(0) > 0,
            "{fault:?} never injected"
        );
    }
    let client_stats = client.stats();
    assert!(
        client_stats.adopted_orders > 0,
        "no lost answer was adopted"
    );

    // Same positions as the same trading without faults.
    let clean = Sim::start(FaultConfig::default(), 100_000).await;
    let clean_run = trade(&clean, &clean.client(loopback_settings())).await;
    assert_eq!(clean_run.failed_calls, 0);
    assert_eq!(run.positions.len(), 3);
    assert_eq!(
        run.positions, clean_run.positions,
        "positions differ from a fault-free run"
    );

    println!("faults injected by the simulator (all survived):");
    for (fault, n) in &stats.faults {
        println!("  {:<18} {n}", fault.as_str());
    }
    println!(
        "client: {} requests, {} orders adopted after a lost answer or 422, errors by kind {:?}; \
         {} calls failed after the client's retries and were asked again",
        client_stats.requests, client_stats.adopted_orders, client_stats.errors, run.failed_calls
    );
    println!(
        "{} hours handed over once each, {} orders accepted once each",
        run.hours.len(),
        stats.orders_accepted.len()
    );
}

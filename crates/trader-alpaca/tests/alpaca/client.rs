//! The client against the simulator over loopback, no faults: paged bars of
//! three symbols, an order placed, filled and visible in positions, a
//! duplicate client_order_id adopted, and clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use crate::common;

use crate::common::{START, Sim, fast_settings, recorded, symbols};
use trader_alpaca::ClientSettings;
use trader_core::{
    Broker, ErrorKind, HOUR_SECS, MarketData, OrderAmount, OrderRequest, OrderStatus, Side,
};
use trader_sim::FaultConfig;

#[tokio::test]
async fn bars_of_three_symbols_across_pages() {
    let sim = Sim::start(FaultConfig::default(), 10_000).await;
    let client = sim.client(ClientSettings {
        bars_page_limit: 100,
        ..fast_settings()
    });
    let from = START - 10 * 24 * HOUR_SECS;
    let to = START - HOUR_SECS;
    let got = client.bars(&symbols(), from, to).await.unwrap();
    let want = recorded();
    assert_eq!(got.len(), 3);
    let mut total = 0;
    for (symbol, bars) in &want {
        let expected: Vec<_> = bars
            .iter()
            .filter(|b| (from..=to).contains(&b.t))
            .copied()
            .collect();
        assert_eq!(got[symbol], expected, "{symbol}");
        total += expected.len();
    }
    // 100 bars per page across all symbols: about 720 bars need 8 pages.
    let requests = sim.handle.stats().requests[common::KEY_ID].len();
    assert!(total > 700, "{total} bars");
    assert_eq!(requests, total.div_ceil(100), "one request per page");
    // Bars not yet closed at the simulated now are not served.
    let future = client
        .bars(&symbols(), START, START + 5 * HOUR_SECS)
        .await
        .unwrap();
    assert!(future.values().all(Vec::is_empty), "{future:?}");
}

fn buy(id: &str, usd: f64) -> OrderRequest {
    OrderRequest {
        client_order_id: id.to_owned(),
        symbol: "BTC/USD".parse().unwrap(),
        side: Side::Buy,
        amount: OrderAmount::Notional(usd),
    }
}

#[tokio::test]
async fn order_placed_filled_and_in_positions_and_duplicate_adopted() {
    let sim = Sim::start(FaultConfig::default(), 10_000).await;
    let client = sim.client(fast_settings());
    // Ten minutes into the hour: the order waits for the next bar's open.
    sim.set_now(START + 600);
    let before = client.account().await.unwrap();
    assert_eq!(before.cash, 100_000.0);
    assert!(client.positions().await.unwrap().is_empty());

    let placed = client.place(&buy("lean-h1-BTCUSD", 1_000.0)).await.unwrap();
    assert!(!placed.adopted);
    assert_eq!(placed.order.status, OrderStatus::Open);
    assert_eq!(placed.order.amount, OrderAmount::Notional(1_000.0));
    assert_eq!(client.open_orders().await.unwrap().len(), 1);

    // It fills at the next bar's open.
    sim.set_now(START + HOUR_SECS);
    let order = client
        .order_by_client_id("lean-h1-BTCUSD")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    assert_eq!(order.id, placed.order.id);
    let positions = client.positions().await.unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].symbol.as_str(), "BTC/USD");
    // The 25 bps crypto fee is taken from the asset received.
    let net = order.filled_qty * (1.0 - trader_sim::FEE_BPS / 10_000.0);
    assert!(
        (positions[0].qty - net).abs() < 1e-9,
        "{positions:?} {order:?}"
    );
    let one = client
        .position(&"BTC/USD".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.qty, positions[0].qty);
    assert!(
        client
            .position(&"ETH/USD".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(client.open_orders().await.unwrap().is_empty());
    let after = client.account().await.unwrap();
    assert!((after.cash - 99_000.0).abs() < 1e-6, "{after:?}");

    // The same client_order_id again: Alpaca answers 422, the client adopts.
    let again = client.place(&buy("lean-h1-BTCUSD", 1_000.0)).await.unwrap();
    assert!(again.adopted);
    assert_eq!(again.order.id, placed.order.id);
    assert_eq!(client.stats().adopted_orders, 1);
    assert_eq!(sim.handle.stats().orders_accepted, ["lean-h1-BTCUSD"]);
    assert_eq!(client.positions().await.unwrap()[0].qty, one.qty);
}

#[tokio::test]
async fn rejections_are_returned_not_retried_and_not_adopted() {
    let sim = Sim::start(FaultConfig::default(), 10_000).await;
    let client = sim.client(fast_settings());
    // More than the cash: 403, once.
    let e = client.place(&buy("too-big", 250_000.0)).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Rejected, Some(403)));
    assert!(e.to_string().contains("too-big"), "{e}");
    // An unknown asset: 422 and nothing to adopt, so the 422 is returned.
    let mut bad = buy("no-such-asset", 10.0);
    bad.symbol = "DOGE/USD".parse().unwrap();
    let e = client.place(&bad).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Rejected, Some(422)));
    assert!(e.detail.contains("DOGE/USD"), "{e}");
    // A non-positive amount never leaves the process.
    let e = client.place(&buy("zero", 0.0)).await.unwrap_err();
    assert!(e.detail.contains("notional 0"), "{e}");
    assert!(sim.handle.stats().orders_accepted.is_empty());
    let requests = sim.handle.stats().requests[common::KEY_ID].len();
    // 403: 1 request; 422: POST + lookup.
    assert_eq!(requests, 3);

    // Wrong keys: 401 on trading and data, at once, keys not in the error.
    let wrong = sim.client_with_keys(fast_settings(), "PKWRONG", "wrong-secret");
    let e = wrong.account().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    let e = wrong
        .bars(&symbols(), START - 5 * HOUR_SECS, START)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert!(!format!("{e} {e:?} {wrong:?}").contains("wrong-secret"));
}

#[tokio::test]
async fn simulator_binds_loopback() {
    let sim = Sim::start(FaultConfig::default(), 10_000).await;
    assert!(sim.handle.addr.ip().is_loopback(), "{}", sim.handle.addr);
}

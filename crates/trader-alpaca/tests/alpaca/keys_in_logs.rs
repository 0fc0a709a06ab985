//! Keys never appear in logs at any level: every log line of the process
//! (ours, apca's, reqwest's and hyper's through the `log` bridge) is
//! captured at TRACE while the client works through faults, rejections and
//! wrong keys, and searched for both keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{KEY_ID, SECRET, START, Sim, fast_settings, symbols};
use tracing_subscriber::util::SubscriberInitExt;
use trader_core::{Broker, HOUR_SECS, MarketData, OrderAmount, OrderRequest, Side};
use trader_sim::FaultConfig;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_the_logs() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish()
        .try_init()
        .unwrap();

    let sim = Sim::start(
        FaultConfig {
            rate_limited: 0.05,
            server_error: 0.1,
            slow: 0.0,
            slow_delay: Duration::ZERO,
            malformed: 0.1,
            dropped: 0.1,
            lost_order_answer: 0.5,
            seed: 3,
        },
        100_000,
    )
    .await;
    let client = sim.client(fast_settings());
    sim.set_now(START + 600);
    let mut seen = Vec::new();
    for i in 0..6 {
        let order = OrderRequest {
            client_order_id: format!("log-{i}"),
            symbol: "ETH/USD".parse().unwrap(),
            side: Side::Buy,
            amount: OrderAmount::Notional(100.0),
        };
        seen.push(format!("{:?}", client.place(&order).await));
        seen.push(format!("{:?}", client.account().await));
    }
    seen.push(format!(
        "{:?}",
        client.bars(&symbols(), START - 48 * HOUR_SECS, START).await
    ));
    let too_big = OrderRequest {
        client_order_id: "log-big".to_owned(),
        symbol: "ETH/USD".parse().unwrap(),
        side: Side::Buy,
        amount: OrderAmount::Notional(1e9),
    };
    seen.push(format!("{:?}", client.place(&too_big).await));
    let wrong = sim.client_with_keys(fast_settings(), "PKWRONGKEY", "wrong-secret-value");
    seen.push(format!("{:?}", wrong.account().await));
    seen.push(format!("{client:?} {wrong:?}"));
    for line in &seen {
        tracing::error!(outcome = %line, "test: every outcome and Debug output, logged");
    }

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture is real: it holds the retries and apca's request traces.
    assert!(text.contains("retrying"), "no retry logged");
    assert!(text.contains("/v2/orders"), "no request traced");
    assert!(text.lines().count() > 50, "{} lines", text.lines().count());
    for secret in [KEY_ID, SECRET, "PKWRONGKEY", "wrong-secret-value"] {
        assert!(!text.contains(secret), "{secret} appears in the logs");
    }
}

//! Requests per minute never exceed the configured limit: counted by the
//! simulator on tokio's paused clock, with four clones of one client
//! sending at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::time::Duration;

use crate::common::{KEY_ID, Sim, fast_settings};
use trader_alpaca::ClientSettings;
use trader_core::Broker;
use trader_sim::FaultConfig;

#[tokio::test(start_paused = true)]
async fn requests_per_minute_stay_under_the_limit() {
    const LIMIT: u32 = 120;
    // The simulator enforces the same quota: a single 429 would show the
    // client went over it.
    let sim = Sim::start(FaultConfig::default(), LIMIT).await;
    let client = sim.client(ClientSettings {
        requests_per_minute: NonZeroU32::new(LIMIT).unwrap(),
        burst: NonZeroU32::new(5).unwrap(),
        timeout: Duration::from_secs(30),
        ..fast_settings()
    });
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..75 {
                    c.account().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = sim.handle.stats();
    assert!(
        client.stats().errors.is_empty(),
        "{:?}",
        client.stats().errors
    );
    assert_eq!(stats.requests[KEY_ID].len(), 300);
    assert_eq!(stats.quota_rejections, 0);
    let busiest = stats.max_requests_in_window(KEY_ID, Duration::from_mins(1));
    assert!(
        busiest <= LIMIT as usize,
        "{busiest} requests in one minute"
    );
    // The limiter did the pacing: 300 requests at 2/s after a burst of 5.
    assert!(busiest >= 100, "only {busiest} in the busiest minute");
    assert!(elapsed >= Duration::from_secs(145), "{elapsed:?}");
}

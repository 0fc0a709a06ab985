//! Following the broker's clock (`GET /v2/clock`): a live run trades on the
//! broker's time, never this machine's nor an assumed speed. Two readings
//! about [`FIRST_GAP`] apart at start give the offset and, for a simulator,
//! its speed ([`FollowedClock`]); a background task reads it again at
//! growing real intervals (1, 2, 4 ... s, at most [`MOST_GAP`]) to refine
//! both, warning when the broker's time drifted from the prediction.
//! Each reading is placed at the middle of its request.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use trader_alpaca::AlpacaClient;
use trader_core::{FollowedClock, MarketError, format_time};

/// Real time between the two readings at start.
pub const FIRST_GAP: Duration = Duration::from_millis(250);

/// Most real time between two later readings.
pub const MOST_GAP: Duration = Duration::from_mins(1);

/// A drift of the broker's time from the prediction past this much (broker
/// ms, or [`DRIFT_REAL_MS`] of real time at a fast simulator's speed, where
/// a request's latency on a loaded machine, tens of ms, alone moves a
/// reading by minutes) is warned about.
const DRIFT_WARN_MS: i64 = 1_000;
const DRIFT_REAL_MS: f64 = 50.0;

/// A `--speed` this far from the derived one is warned about.
const SPEED_DISAGREES: f64 = 0.05;

/// The broker's clock, followed; the re-reading task ends with it.
#[derive(Debug)]
pub struct Following {
    pub clock: Arc<FollowedClock>,
    /// Broker time minus this machine's at the latest reading, ms.
    skew_ms: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Following {
    /// Broker time minus this machine's at the latest reading (ms), when
    /// the broker runs at real time; None for a fast simulator.
    #[must_use]
    pub fn skew_ms(&self) -> Option<i64> {
        ((self.clock.speed() - 1.0).abs() < f64::EPSILON)
            .then(|| self.skew_ms.load(Ordering::Relaxed))
    }
}

/// One reading of the broker's clock.
#[derive(Debug, Clone, Copy)]
struct Sample {
    broker_ms: i64,
    /// The middle of the request.
    at: Instant,
    /// Broker time minus this machine's at `at`, ms.
    skew_ms: i64,
}

async fn read(client: &AlpacaClient) -> Result<Sample, MarketError> {
    let sent = Instant::now();
    let broker_ms = client.broker_time_ms().await?;
    let back = Instant::now();
    let half = back.saturating_duration_since(sent) / 2;
    let machine_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        - i64::try_from(half.as_millis()).unwrap_or(0);
    Ok(Sample {
        broker_ms,
        at: sent + half,
        skew_ms: broker_ms - machine_ms,
    })
}

/// Follows the clock of the broker behind `client` (its own client: these
/// readings are not the trading client's requests). `asked` is a `--speed`
/// given anyway: warned about when it disagrees with the derived speed.
///
/// # Errors
/// The broker's clock cannot be read at start.
pub async fn follow(client: AlpacaClient, asked: Option<f64>) -> Result<Following, MarketError> {
    let first = read(&client).await?;
    let clock = Arc::new(FollowedClock::new(first.broker_ms, first.at));
    tokio::time::sleep(FIRST_GAP).await;
    let second = read(&client).await?;
    let reading = clock.observe(second.broker_ms, second.at);
    tracing::info!(
        broker_time = %format_time(second.broker_ms.div_euclid(1000)),
        speed = reading.speed,
        offset_s = second.skew_ms as f64 / 1000.0,
        "following the broker's clock (speed: its seconds per real second; offset: its time minus this machine's)"
    );
    if let Some(asked) = asked
        && (asked / reading.speed - 1.0).abs() > SPEED_DISAGREES
    {
        tracing::warn!(
            asked,
            derived = reading.speed,
            "--speed disagrees with the speed of the broker's clock; the broker's is followed"
        );
    }
    let skew_ms = Arc::new(AtomicI64::new(second.skew_ms));
    let task = tokio::spawn(reread(client, Arc::clone(&clock), Arc::clone(&skew_ms)));
    Ok(Following {
        clock,
        skew_ms,
        task,
    })
}

/// Reads the broker's clock again at 1, 2, 4 ... s (at most [`MOST_GAP`]).
async fn reread(client: AlpacaClient, clock: Arc<FollowedClock>, skew_ms: Arc<AtomicI64>) {
    let mut gap = Duration::from_secs(1);
    loop {
        tokio::time::sleep(gap).await;
        gap = (gap * 2).min(MOST_GAP);
        let sample = match read(&client).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "the broker's clock could not be read; following on");
                continue;
            }
        };
        let reading = clock.observe(sample.broker_ms, sample.at);
        skew_ms.store(sample.skew_ms, Ordering::Relaxed);
        let bound = DRIFT_WARN_MS.max((DRIFT_REAL_MS * reading.speed) as i64);
        if reading.drift_ms.abs() > bound {
            tracing::warn!(
                drift_ms = reading.drift_ms,
                speed = reading.speed,
                broker_time = %format_time(sample.broker_ms.div_euclid(1000)),
                "the broker's clock drifted from the one followed; following it again"
            );
        }
    }
}

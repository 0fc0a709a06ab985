//! The replay clock: simulated time runs `speed` times faster than real time
//! from a chosen start.

use std::time::Instant;

use chrono::{DateTime, Utc};
use trader_core::Clock;

/// Simulated now = `start` + real time elapsed x `speed`.
#[derive(Debug)]
pub struct ReplayClock {
    start: DateTime<Utc>,
    started: Instant,
    speed: f64,
}

impl ReplayClock {
    /// A clock at `start`, running `speed` simulated seconds per real second.
    #[must_use]
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        ReplayClock {
            start,
            started: Instant::now(),
            speed,
        }
    }
}

impl Clock for ReplayClock {
    fn now(&self) -> DateTime<Utc> {
        let ms = (self.started.elapsed().as_secs_f64() * self.speed * 1000.0) as i64;
        self.start + chrono::Duration::milliseconds(ms)
    }

    fn real_duration(&self, simulated: std::time::Duration) -> std::time::Duration {
        simulated.div_f64(self.speed.max(f64::MIN_POSITIVE))
    }
}

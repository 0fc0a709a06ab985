//! The replay clock: simulated time runs `speed` times faster than real time
//! from a chosen start.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use trader_core::Clock;

/// Simulated now = `start` + real time elapsed x `speed`.
#[derive(Debug)]
pub struct ReplayClock {
    /// The simulated start and the real instant it was (re)set.
    anchor: Mutex<(DateTime<Utc>, Instant)>,
    speed: f64,
}

impl ReplayClock {
    /// A clock at `start`, running `speed` simulated seconds per real second.
    #[must_use]
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        ReplayClock {
            anchor: Mutex::new((start, Instant::now())),
            speed,
        }
    }

    /// Sets the clock back to `start` as of now (a trader that took a while
    /// to load starts its replay when it is ready).
    pub fn restart_at(&self, start: DateTime<Utc>) {
        if let Ok(mut a) = self.anchor.lock() {
            *a = (start, Instant::now());
        }
    }
}

impl Clock for ReplayClock {
    fn now(&self) -> DateTime<Utc> {
        let Ok(a) = self.anchor.lock() else {
            return DateTime::default();
        };
        let ms = (a.1.elapsed().as_secs_f64() * self.speed * 1000.0) as i64;
        a.0 + chrono::Duration::milliseconds(ms)
    }

    fn real_duration(&self, simulated: std::time::Duration) -> std::time::Duration {
        simulated.div_f64(self.speed.max(f64::MIN_POSITIVE))
    }
}

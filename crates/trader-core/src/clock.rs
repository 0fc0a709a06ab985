//! The one injected source of time: the wall clock live, a manual clock in
//! tests, a replay clock in backtests and the simulator.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// How long to wait in real time for `simulated` to pass on this clock
    /// (a replay clock at 3600x waits one second for an hour).
    fn real_duration(&self, simulated: std::time::Duration) -> std::time::Duration {
        simulated
    }
}

/// The wall clock: the only reader of `Utc::now` in the project.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the live clock is the one place that reads it
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told (tests, replays).
#[derive(Debug, Default)]
pub struct ManualClock {
    epoch_seconds: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `now`.
    #[must_use]
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            epoch_seconds: AtomicI64::new(now.timestamp()),
        }
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        self.epoch_seconds.store(now.timestamp(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.epoch_seconds.load(Ordering::SeqCst), 0).unwrap_or_default()
    }
}

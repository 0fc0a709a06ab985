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

/// Below this much real time between two readings, the speed is not
/// derived from them (the answer's latency would dominate).
pub const MIN_SPEED_BASELINE: std::time::Duration = std::time::Duration::from_millis(100);

/// A derived speed this close to 1 is real time (a broker's clock runs at
/// one second per second; the difference is the readings' latency).
pub const REAL_TIME_TOLERANCE: f64 = 0.02;

/// The broker's clock, followed from its readings (`GET /v2/clock`): the
/// offset from the first reading, the speed (a simulator's may run 3600x)
/// from the real time between the first and the latest reading, neither
/// assumed. Between readings it runs on at the derived speed.
#[derive(Debug)]
pub struct FollowedClock {
    state: std::sync::Mutex<Followed>,
}

#[derive(Debug, Clone, Copy)]
struct Followed {
    /// The first reading: broker milliseconds and the real instant.
    first: (i64, std::time::Instant),
    /// The latest reading.
    latest: (i64, std::time::Instant),
    speed: f64,
}

/// What one reading told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Simulated seconds per real second, as derived so far.
    pub speed: f64,
    /// The broker's time minus this clock's prediction for it before the
    /// reading, milliseconds (0 for the first reading).
    pub drift_ms: i64,
}

impl FollowedClock {
    /// A clock at the broker's `broker_ms`, read at `at` (the middle of
    /// the request), running at real time until a second reading.
    #[must_use]
    pub fn new(broker_ms: i64, at: std::time::Instant) -> Self {
        FollowedClock {
            state: std::sync::Mutex::new(Followed {
                first: (broker_ms, at),
                latest: (broker_ms, at),
                speed: 1.0,
            }),
        }
    }

    /// Takes a new reading: the clock jumps to it, and the speed is derived
    /// again from the first reading (once [`MIN_SPEED_BASELINE`] of real
    /// time apart; within [`REAL_TIME_TOLERANCE`] of 1 it is 1).
    pub fn observe(&self, broker_ms: i64, at: std::time::Instant) -> Reading {
        let Ok(mut s) = self.state.lock() else {
            return Reading {
                speed: 1.0,
                drift_ms: 0,
            };
        };
        let predicted = s.at(at);
        let real = at.saturating_duration_since(s.first.1);
        if real >= MIN_SPEED_BASELINE {
            let raw = (broker_ms - s.first.0) as f64 / (real.as_secs_f64() * 1000.0);
            if raw.is_finite() && raw > 0.0 {
                s.speed = if (raw - 1.0).abs() <= REAL_TIME_TOLERANCE {
                    1.0
                } else {
                    raw
                };
            }
        }
        s.latest = (broker_ms, at);
        Reading {
            speed: s.speed,
            drift_ms: broker_ms - predicted,
        }
    }

    /// Simulated seconds per real second, as derived so far.
    #[must_use]
    pub fn speed(&self) -> f64 {
        self.state.lock().map_or(1.0, |s| s.speed)
    }
}

impl Followed {
    /// The broker's milliseconds predicted for the real instant `at`.
    fn at(&self, at: std::time::Instant) -> i64 {
        let real = at.saturating_duration_since(self.latest.1);
        self.latest.0 + (real.as_secs_f64() * self.speed * 1000.0) as i64
    }
}

impl Clock for FollowedClock {
    fn now(&self) -> DateTime<Utc> {
        let ms = self
            .state
            .lock()
            .map_or(0, |s| s.at(std::time::Instant::now()));
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    fn real_duration(&self, simulated: std::time::Duration) -> std::time::Duration {
        simulated.div_f64(self.speed().max(f64::MIN_POSITIVE))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_simulator_at_3600x_is_followed_from_two_readings_without_being_told() {
        let t0 = Instant::now();
        let start = 1_535_760_000_000; // 2018-09-01T00:00:00Z
        let c = FollowedClock::new(start, t0);
        assert!(
            (c.speed() - 1.0).abs() < f64::EPSILON,
            "real time until told"
        );
        // 250 ms of real time later the broker is 900 s further.
        let r = c.observe(start + 900_000, t0 + Duration::from_millis(250));
        assert!((r.speed - 3600.0).abs() < 1e-6, "{r:?}");
        assert_eq!(r.drift_ms, 900_000 - 250, "predicted at real time first");
        // An hour of its time passes in one real second.
        assert_eq!(
            c.real_duration(Duration::from_hours(1)),
            Duration::from_secs(1)
        );
        // A later reading that agrees leaves no drift.
        let r = c.observe(start + 3_600_000, t0 + Duration::from_secs(1));
        assert_eq!(r.drift_ms, 0);
    }

    #[test]
    fn a_real_broker_runs_at_one_second_per_second_despite_latency_and_its_offset_is_kept() {
        let t0 = Instant::now();
        // The broker is 7.5 s ahead of whatever this machine says.
        let c = FollowedClock::new(1_700_000_000_000, t0);
        // 300 ms later, read with 4 ms of asymmetric latency.
        let r = c.observe(1_700_000_000_304, t0 + Duration::from_millis(300));
        assert!((r.speed - 1.0).abs() < f64::EPSILON, "{r:?}");
        assert_eq!(r.drift_ms, 4);
        // Too close together to tell a speed: still real time.
        let c = FollowedClock::new(0, t0);
        let r = c.observe(5_000, t0 + Duration::from_millis(10));
        assert!((r.speed - 1.0).abs() < f64::EPSILON, "{r:?}");
    }
}

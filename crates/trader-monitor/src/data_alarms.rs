//! The alarms on the data a trader trades by, one owner of their rules:
//! stale data (the newest complete hour closed more than
//! `stale_after_hours` before the broker's now) and clock skew (the
//! broker's time and this machine's differ by more than [`SKEW_BOUND_MS`]
//! while the broker runs at real time). Each is reported once when it
//! starts holding ([`Crossing::raised`], with the reason) and once when it
//! clears; the caller logs the crossing ([`Crossing::log`]) and, with
//! metrics on, hands it to [`crate::Metrics::alarm`] (`/healthz` 503 with
//! the reason while any holds).
//!
//! Pure: the times are given, so the rules are tested without a clock.

use trader_core::{HOUR_SECS, format_time};

/// Most difference between the broker's clock and this machine's, ms.
pub const SKEW_BOUND_MS: i64 = 5_000;

/// Which alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    StaleData,
    ClockSkew,
}

impl AlarmKind {
    /// The `kind` label of the alert metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::StaleData => "stale_data",
            AlarmKind::ClockSkew => "clock_skew",
        }
    }
}

/// An alarm that started or stopped holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub kind: AlarmKind,
    /// Started holding (else cleared).
    pub raised: bool,
    /// What holds (raised) or what cleared it.
    pub reason: String,
}

impl Crossing {
    /// One WARN when raised, one INFO when cleared.
    pub fn log(&self) {
        if self.raised {
            tracing::warn!(kind = self.kind.as_str(), "{}", self.reason);
        } else {
            tracing::info!(kind = self.kind.as_str(), "alarm cleared: {}", self.reason);
        }
    }
}

/// The two alarms' rules and whether each holds.
#[derive(Debug, Clone)]
pub struct DataAlarms {
    stale_after_secs: i64,
    stale: bool,
    skewed: bool,
}

impl DataAlarms {
    /// Stale data past `stale_after_hours` (0: one hour).
    #[must_use]
    pub fn new(stale_after_hours: u32) -> Self {
        DataAlarms {
            stale_after_secs: i64::from(stale_after_hours.max(1)) * HOUR_SECS,
            stale: false,
            skewed: false,
        }
    }

    /// After a poll at the broker's `now` (epoch seconds): `newest` is the
    /// open time of the newest complete hour held (None: none at all).
    pub fn check_stale(&mut self, newest: Option<i64>, now: i64) -> Option<Crossing> {
        let age = newest.map(|t| now - (t + HOUR_SECS));
        let stale = age.is_none_or(|a| a > self.stale_after_secs);
        if stale == self.stale {
            return None;
        }
        self.stale = stale;
        let broker = format_time(now);
        let reason = match (stale, newest) {
            (true, Some(t)) => {
                let age = age.unwrap_or(0);
                format!(
                    "stale data: the newest complete hour {} closed {} h {} min before the broker's time {broker} (more than {} h)",
                    format_time(t),
                    age / HOUR_SECS,
                    age % HOUR_SECS / 60,
                    self.stale_after_secs / HOUR_SECS
                )
            }
            (true, None) => {
                format!("stale data: no complete hour held at broker time {broker}")
            }
            (false, t) => format!(
                "bars resumed: the newest complete hour is {} at broker time {broker}",
                t.map_or_else(String::new, format_time)
            ),
        };
        Some(Crossing {
            kind: AlarmKind::StaleData,
            raised: stale,
            reason,
        })
    }

    /// After a reading of the broker's clock: `skew_ms` is the broker's
    /// time minus this machine's, or None when the broker is not at real
    /// time (a fast simulator: no skew to speak of).
    pub fn check_skew(&mut self, skew_ms: Option<i64>) -> Option<Crossing> {
        let skewed = skew_ms.is_some_and(|s| s.abs() > SKEW_BOUND_MS);
        if skewed == self.skewed {
            return None;
        }
        self.skewed = skewed;
        let reason = match skew_ms {
            Some(s) if skewed => format!(
                "clock skew: the broker's clock is {:+.1} s from this machine's (bound {} s)",
                s as f64 / 1000.0,
                SKEW_BOUND_MS / 1000
            ),
            Some(s) => format!(
                "the broker's clock is {:+.1} s from this machine's",
                s as f64 / 1000.0
            ),
            None => "the broker's clock is not at real time".to_owned(),
        };
        Some(Crossing {
            kind: AlarmKind::ClockSkew,
            raised: skewed,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_535_760_000; // 2018-09-01T00:00:00Z

    #[test]
    fn stale_data_is_reported_once_when_it_starts_and_once_when_it_clears() {
        let mut a = DataAlarms::new(2);
        // Newest hour T closes at T+1h; two hours later it is not yet stale.
        assert_eq!(a.check_stale(Some(T), T + 3 * HOUR_SECS), None);
        let c = a.check_stale(Some(T), T + 3 * HOUR_SECS + 1).unwrap();
        assert!(c.raised && c.kind == AlarmKind::StaleData, "{c:?}");
        assert!(c.reason.contains("2018-09-01T00:00:00"), "{}", c.reason);
        assert!(c.reason.contains("2018-09-01T03:00:01"), "{}", c.reason);
        // Still stale: nothing new.
        assert_eq!(a.check_stale(Some(T), T + 9 * HOUR_SECS), None);
        let c = a
            .check_stale(Some(T + 8 * HOUR_SECS), T + 9 * HOUR_SECS + 5)
            .unwrap();
        assert!(!c.raised, "{c:?}");
        assert_eq!(
            a.check_stale(Some(T + 8 * HOUR_SECS), T + 9 * HOUR_SECS + 60),
            None
        );
        // No hour at all is stale.
        assert!(a.check_stale(None, T).is_some_and(|c| c.raised));
    }

    #[test]
    fn clock_skew_holds_beyond_the_bound_at_real_time_only() {
        let mut a = DataAlarms::new(2);
        assert_eq!(a.check_skew(Some(4_900)), None);
        let c = a.check_skew(Some(-7_300)).unwrap();
        assert!(c.raised && c.reason.contains("-7.3 s"), "{c:?}");
        assert_eq!(a.check_skew(Some(-9_000)), None);
        // A fast simulator: no skew to hold.
        assert!(a.check_skew(None).is_some_and(|c| !c.raised));
        assert_eq!(a.check_skew(None), None);
    }
}

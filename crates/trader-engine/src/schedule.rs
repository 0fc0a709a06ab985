//! When the live loop polls, on the clock it trades by (the broker's).
//!
//! - [`PollSchedule::Fixed`]: every `poll_interval`, wherever the hour's
//!   close falls (the old schedule, kept for comparison): a bar that closed
//!   on the hour waits up to a whole interval, half of one on average.
//! - [`PollSchedule::Aligned`]: the first poll of each hour at its close
//!   plus `bar_delay` (Alpaca publishes a bar right after its minute
//!   closes); while the hour's bars are missing, retries after a back-off
//!   that starts at [`RETRY_FIRST`] and doubles, capped by `poll_interval`;
//!   between hours one poll per `poll_interval` at most (the heartbeat: a
//!   poll with nothing due makes no data request, see the poller).
//!
//! Pure: the times are the clock's milliseconds, so a test can walk a whole
//! day of polls without a clock.

use std::time::Duration;

use trader_core::HOUR_SECS;

/// The first retry after a poll that found the due hour missing.
pub const RETRY_FIRST: Duration = Duration::from_secs(2);

/// How the live loop spaces its polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollSchedule {
    /// Every `poll_interval`.
    Fixed,
    /// At each close plus `bar_delay`, then retries; see the module doc.
    Aligned { bar_delay: Duration },
}

/// Where the loop stands after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollState {
    /// The clock's time of the poll that just ended, milliseconds.
    pub now_ms: i64,
    /// Open time of the next hour not yet handed over (epoch seconds; the
    /// poller's `next_hour`).
    pub next_hour: i64,
    /// Polls in a row that found that hour closed (past its delay) but its
    /// bars not all there.
    pub misses: u32,
}

impl PollSchedule {
    /// The schedule a profile asks for (`poll_schedule`, `bar_delay_secs`).
    #[must_use]
    pub fn for_profile(profile: &trader_config::Profile) -> Self {
        match profile.poll_schedule {
            trader_config::PollScheduleKind::Fixed => PollSchedule::Fixed,
            trader_config::PollScheduleKind::Aligned => PollSchedule::Aligned {
                bar_delay: Duration::from_secs(u64::from(profile.bar_delay_secs)),
            },
        }
    }

    /// The clock's time of the next poll, milliseconds, after the poll
    /// described by `state`; never earlier than `state.now_ms`.
    #[must_use]
    pub fn next_poll_ms(self, state: PollState, interval: Duration) -> i64 {
        let interval_ms = millis(interval).max(1);
        let heartbeat = state.now_ms.saturating_add(interval_ms);
        match self {
            PollSchedule::Fixed => heartbeat,
            PollSchedule::Aligned { .. } => {
                let close = (state.next_hour + HOUR_SECS) * 1000;
                let due = self.due_ms(state.next_hour);
                if state.now_ms < due {
                    // Before the next hour is due: the heartbeat if it comes
                    // before the close, else the due time (a heartbeat
                    // between the close and the delay would ask too early).
                    if heartbeat < close { heartbeat } else { due }
                } else {
                    // Due but missing: back off, at most an interval.
                    let backoff = millis(RETRY_FIRST)
                        .saturating_mul(1_i64 << state.misses.saturating_sub(1).min(20))
                        .min(interval_ms);
                    state.now_ms.saturating_add(backoff)
                }
            }
        }
    }

    /// Whether the poll described by `state` found its hour due but not
    /// (completely) there: the caller counts these in `misses`.
    #[must_use]
    pub fn is_due(self, now_ms: i64, next_hour: i64) -> bool {
        now_ms >= self.due_ms(next_hour)
    }

    /// When the hour opening at `next_hour` is due: its close, plus the bar
    /// delay on the aligned schedule (clock milliseconds).
    fn due_ms(self, next_hour: i64) -> i64 {
        let delay = match self {
            PollSchedule::Fixed => 0,
            PollSchedule::Aligned { bar_delay } => millis(bar_delay),
        };
        (next_hour + HOUR_SECS) * 1000 + delay
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_SECS * 1000;
    const MIN: Duration = Duration::from_mins(1);

    fn aligned() -> PollSchedule {
        PollSchedule::Aligned {
            bar_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn fixed_polls_every_interval_wherever_the_close_falls() {
        let s = PollState {
            now_ms: 10 * H + 17_000,
            next_hour: 10 * HOUR_SECS,
            misses: 0,
        };
        assert_eq!(PollSchedule::Fixed.next_poll_ms(s, MIN), 10 * H + 77_000);
    }

    #[test]
    fn aligned_polls_at_the_close_plus_the_delay_or_the_heartbeat_first() {
        // Hour 10 opens at 10 H and closes at 11 H: due at 11 H + 1 s.
        let mid = PollState {
            now_ms: 10 * H + 30 * 60_000,
            next_hour: 10 * HOUR_SECS,
            misses: 0,
        };
        // Half an hour before the close: the heartbeat comes first.
        assert_eq!(
            aligned().next_poll_ms(mid, MIN),
            10 * H + 31 * 60_000,
            "heartbeat"
        );
        let near = PollState {
            now_ms: 11 * H - 20_000,
            ..mid
        };
        assert_eq!(aligned().next_poll_ms(near, MIN), 11 * H + 1_000);
        // A heartbeat that would fall on the close itself waits the delay.
        let at_minus_a_minute = PollState {
            now_ms: 11 * H - 60_000,
            ..mid
        };
        assert_eq!(
            aligned().next_poll_ms(at_minus_a_minute, MIN),
            11 * H + 1_000
        );
        // A two-hour interval still wakes at the close.
        assert_eq!(
            aligned().next_poll_ms(mid, Duration::from_hours(2)),
            11 * H + 1_000
        );
    }

    #[test]
    fn a_missing_hour_is_retried_with_a_doubling_back_off_capped_by_the_interval() {
        let mut now = 11 * H + 1_000;
        let mut waits = Vec::new();
        for misses in 1..=7 {
            let s = PollState {
                now_ms: now,
                next_hour: 10 * HOUR_SECS,
                misses,
            };
            assert!(aligned().is_due(now, 10 * HOUR_SECS));
            let next = aligned().next_poll_ms(s, MIN);
            waits.push((next - now) / 1000);
            now = next;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn a_day_of_aligned_polls_is_no_more_than_a_day_of_fixed_ones_and_each_close_is_met() {
        // Every bar is there at its close: a poll finds it at once.
        for interval in [MIN, Duration::from_mins(2)] {
            let mut now = 0;
            let mut next_hour = -HOUR_SECS;
            let (mut polls, mut waited) = (0, Vec::new());
            while now < 24 * H {
                polls += 1;
                if aligned().is_due(now, next_hour) {
                    waited.push(now - (next_hour + HOUR_SECS) * 1000);
                    next_hour += HOUR_SECS;
                }
                now = aligned().next_poll_ms(
                    PollState {
                        now_ms: now,
                        next_hour,
                        misses: 0,
                    },
                    interval,
                );
            }
            let fixed = 24 * H / i64::try_from(interval.as_millis()).unwrap_or(1);
            assert!(polls <= fixed + 24, "{polls} polls vs {fixed} fixed");
            assert_eq!(waited.len(), 24);
            assert!(
                waited.iter().skip(1).all(|w| *w == 1_000),
                "each hour seen 1 s after its close: {waited:?}"
            );
        }
    }
}

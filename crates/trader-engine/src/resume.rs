//! Which hours a run decides: pure arithmetic over what the store says,
//! unit-tested here so that the live loop and the CLI need none of it.

use trader_core::HOUR_SECS;

/// The hours of one run of the live loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeWindow {
    /// The first hour to decide; hours before it are history for the window.
    pub decide_from: i64,
    /// The end: hours closing after it are not traded (a replay's end;
    /// `i64::MAX` live).
    pub until: i64,
    /// The first hour to fetch from the market.
    pub first_fetch: i64,
}

/// What the run starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// A replay's span (first hour decided, end); None live.
    pub replay: Option<(i64, i64)>,
    /// The clock's now, epoch seconds.
    pub now: i64,
    /// The newest hour any earlier run of the profile decided (live).
    pub last_decided: Option<i64>,
    /// The newest hour the window holds for every symbol (live).
    pub newest_stored: Option<i64>,
    pub history_hours: u32,
}

/// The hours to decide and to fetch. Live: the hour after the newest one
/// decided (never past the newest closed hour; on a first start the newest
/// closed hour), fetching after the newest stored bar but never after an
/// hour still to decide (a kill between storing a bar and deciding on it),
/// and never before the history the window needs. A replay: its span, with
/// its history fetched from the simulator.
#[must_use]
pub fn hours_to_trade(p: ResumePoint) -> TradeWindow {
    let newest_closed = p.now.div_euclid(HOUR_SECS) * HOUR_SECS - HOUR_SECS;
    let (decide_from, until) = match p.replay {
        Some((from, until)) => (from, until),
        None => (
            p.last_decided
                .map_or(newest_closed, |t| (t + HOUR_SECS).min(newest_closed)),
            i64::MAX,
        ),
    };
    let history_start = decide_from - i64::from(p.history_hours) * HOUR_SECS;
    let first_fetch = match p.replay {
        Some(_) => history_start,
        None => p.newest_stored.map_or(history_start, |t| {
            (t + HOUR_SECS).min(decide_from).max(history_start)
        }),
    };
    TradeWindow {
        decide_from,
        until,
        first_fetch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_SECS;
    /// 10 minutes into hour 1000: hour 999 is the newest closed.
    const NOW: i64 = 1000 * H + 600;

    fn live(last_decided: Option<i64>, newest_stored: Option<i64>) -> TradeWindow {
        hours_to_trade(ResumePoint {
            replay: None,
            now: NOW,
            last_decided,
            newest_stored,
            history_hours: 72,
        })
    }

    #[test]
    fn a_first_live_start_decides_the_newest_closed_hour_after_fetching_its_history() {
        let w = live(None, None);
        assert_eq!(w.decide_from, 999 * H);
        assert_eq!(w.until, i64::MAX);
        assert_eq!(w.first_fetch, (999 - 72) * H);
    }

    #[test]
    fn a_restart_decides_the_hour_after_the_last_decided_and_fetches_after_the_store() {
        // Down for 5 hours: every missed hour is decided, in order.
        let w = live(Some(994 * H), Some(994 * H));
        assert_eq!((w.decide_from, w.first_fetch), (995 * H, 995 * H));
        // Killed after storing hour 995's bars but before deciding it.
        let w = live(Some(994 * H), Some(995 * H));
        assert_eq!((w.decide_from, w.first_fetch), (995 * H, 995 * H));
        // Decided up to the newest closed hour: the next one, once closed.
        let w = live(Some(999 * H), Some(999 * H));
        assert_eq!(w.decide_from, 999 * H);
    }

    #[test]
    fn a_long_downtime_refetches_no_more_than_the_history_needs() {
        // The store's newest bar is older than the history the window needs.
        let w = live(Some(100 * H), Some(10 * H));
        assert_eq!(w.decide_from, 101 * H);
        assert_eq!(w.first_fetch, (101 - 72) * H);
        // Within it: the fetch continues after the newest stored bar.
        let w = live(Some(100 * H), Some(50 * H));
        assert_eq!(w.first_fetch, 51 * H);
    }

    #[test]
    fn a_replay_decides_its_span_and_fetches_its_history_from_the_simulator() {
        let w = hours_to_trade(ResumePoint {
            replay: Some((500 * H, 600 * H)),
            now: 501 * H + 600,
            last_decided: Some(800 * H),
            newest_stored: Some(900 * H),
            history_hours: 24,
        });
        assert_eq!(
            w,
            TradeWindow {
                decide_from: 500 * H,
                until: 600 * H,
                first_fetch: 476 * H
            }
        );
    }
}

//! Properties of the client's back-off (`ClientSettings::backoff`) and of
//! its request limiter (`RequestLimiter`), on tokio's paused clock:
//!
//! - back-off: exactly `max_retries` delays; before jitter they start at
//!   `min_backoff`, double, and stop at `max_backoff`; jitter adds less than
//!   one more such delay, so no wait exceeds twice `max_backoff`;
//! - limiter: never more than `per_minute` requests in any minute, however
//!   many tasks share it and however they space their requests; back-to-back
//!   requests go through as a burst (at most half the limit) and then one
//!   every minute / (`per_minute` - burst); a request after a quiet minute
//!   goes at once.
//!
//! `the_checks_catch_broken_schedules` shows that each check rejects a
//! schedule broken in its way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use proptest::prelude::*;
use tokio::time::Instant;
use trader_alpaca::{ClientSettings, RequestLimiter};

const MINUTE: Duration = Duration::from_mins(1);

/// How late a paused-clock sleep may end: tokio's timer rounds deadlines
/// up to its millisecond ticks, which need not line up with the test's
/// start.
const SLACK: Duration = Duration::from_millis(2);

fn settings(min_ms: u64, max_ms: u64, retries: usize) -> ClientSettings {
    ClientSettings {
        min_backoff: Duration::from_millis(min_ms),
        max_backoff: Duration::from_millis(max_ms),
        max_retries: retries,
        ..ClientSettings::default()
    }
}

/// The delays before jitter: `min_backoff` doubling, capped at `max_backoff`
/// (with `min_backoff <= max_backoff`).
fn unjittered(s: &ClientSettings) -> Vec<Duration> {
    let mut d = s.min_backoff;
    (0..s.max_retries)
        .map(|_| {
            let now = d.min(s.max_backoff);
            d = d.saturating_mul(2);
            now
        })
        .collect()
}

/// What `delays` break for `s`.
fn backoff_violations(s: &ClientSettings, delays: &[Duration]) -> Vec<String> {
    let mut v = Vec::new();
    if delays.len() != s.max_retries {
        v.push(format!(
            "{} delays for max_retries = {}",
            delays.len(),
            s.max_retries
        ));
    }
    for (i, (d, base)) in delays.iter().zip(unjittered(s)).enumerate() {
        // Jitter adds base * [0, 1) (computed in f32: allow a microsecond).
        if *d < base || *d > base * 2 + Duration::from_micros(1) {
            v.push(format!(
                "delay {i} = {d:?} outside [{base:?}, 2 x {base:?}]"
            ));
        }
        if *d > s.max_backoff * 2 + Duration::from_micros(1) {
            v.push(format!("delay {i} = {d:?} over 2 x max_backoff"));
        }
    }
    v
}

fn backoff_case() -> impl Strategy<Value = ClientSettings> {
    (1u64..=10_000, 0u64..=120_000, 0usize..=20)
        .prop_map(|(min_ms, extra_ms, retries)| settings(min_ms, min_ms + extra_ms, retries))
}

/// One task's requests: the pause before each (mostly none).
fn task() -> impl Strategy<Value = Vec<Duration>> {
    proptest::collection::vec(
        prop_oneof![
            6 => Just(Duration::ZERO),
            3 => (1u64..5_000).prop_map(Duration::from_millis),
            1 => (60_000u64..120_000).prop_map(Duration::from_millis),
        ],
        0..=80,
    )
}

/// A quota and up to four tasks sharing one limiter.
fn limiter_case() -> impl Strategy<Value = (u32, u32, Vec<Vec<Duration>>)> {
    (
        prop_oneof![1u32..=10, 11u32..=240],
        1u32..=20,
        proptest::collection::vec(task(), 1..=4),
    )
}

/// One request: when it wanted to go and when the limiter let it.
#[derive(Debug, Clone, Copy)]
struct Grant {
    asked: Duration,
    went: Duration,
}

/// Runs `tasks` against one limiter on a paused clock.
fn run_limiter(per_minute: u32, burst: u32, tasks: &[Vec<Duration>]) -> Vec<Grant> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let limiter = Arc::new(RequestLimiter::new(
            NonZeroU32::new(per_minute).unwrap(),
            NonZeroU32::new(burst).unwrap(),
        ));
        let grants = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let handles: Vec<_> = tasks
            .iter()
            .cloned()
            .map(|pauses| {
                let (limiter, grants) = (limiter.clone(), grants.clone());
                tokio::spawn(async move {
                    for pause in pauses {
                        tokio::time::sleep(pause).await;
                        let asked = start.elapsed();
                        limiter.ready().await;
                        let went = start.elapsed();
                        grants.lock().unwrap().push(Grant { asked, went });
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let mut grants = grants.lock().unwrap().clone();
        grants.sort_by_key(|g| g.went);
        grants
    })
}

/// The burst the limiter allows: at most half the limit, at least one.
fn effective_burst(per_minute: u32, burst: u32) -> u32 {
    burst.min((per_minute / 2).max(1))
}

/// The spacing after the burst: a minute / (limit - burst).
fn period(per_minute: u32, burst: u32) -> Duration {
    MINUTE / (per_minute - effective_burst(per_minute, burst)).max(1)
}

/// Any minute holding more than `per_minute` of `grants` (sorted by `went`).
fn crowded_minutes(per_minute: u32, grants: &[Grant]) -> Vec<String> {
    let l = per_minute as usize;
    grants
        .windows(l + 1)
        .filter(|w| w[l].went < w[0].went + MINUTE)
        .map(|w| {
            format!(
                "{} requests between {:?} and {:?}",
                l + 1,
                w[0].went,
                w[l].went
            )
        })
        .collect()
}

/// Grants of requests that waited although no request had gone in the
/// minute before they asked.
fn needless_waits(grants: &[Grant]) -> Vec<String> {
    let mut v = Vec::new();
    for g in grants {
        let quiet = grants
            .iter()
            .all(|o| o.went > g.asked || o.went + MINUTE <= g.asked);
        if quiet && g.went > g.asked {
            v.push(format!(
                "asked at {:?} after a quiet minute, went at {:?}",
                g.asked, g.went
            ));
        }
    }
    v
}

/// Back-to-back requests that did not go as the burst and then one per
/// period: request k is due at `period * (k + 1 - burst)`; it never goes
/// earlier, and at most `SLACK` after it is due (with a burst of one, after
/// one period since the request before it: GCRA then counts the period from
/// the late grant, so each tick of lateness carries over).
fn off_pace(per_minute: u32, burst: u32, grants: &[Grant]) -> Vec<String> {
    let b = effective_burst(per_minute, burst) as usize;
    let period = period(per_minute, burst);
    let mut v = Vec::new();
    let mut previous: Option<Duration> = None;
    for (k, g) in grants.iter().enumerate() {
        let due = period * (k + 1).saturating_sub(b) as u32;
        // With a burst of one there is no tolerance to absorb a late grant.
        let latest = match previous {
            Some(p) if b == 1 => p + period,
            _ => due,
        } + SLACK;
        if g.went < due || g.went > latest {
            v.push(format!(
                "request {k} went at {:?}, due at {due:?}, at the latest {latest:?} \
                 (burst {b}, period {period:?})",
                g.went
            ));
        }
        previous = Some(g.went);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn backoff_doubles_from_min_to_max_with_bounded_jitter(s in backoff_case()) {
        let delays: Vec<Duration> = s.backoff().build().collect();
        let v = backoff_violations(&s, &delays);
        prop_assert!(v.is_empty(), "{v:#?}\n{s:?}\n{delays:?}");
        // Jitter is on: some delay is longer than its unjittered value.
        let base = unjittered(&s);
        prop_assert!(s.max_retries == 0 || delays != base, "no jitter: {delays:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_minute_holds_more_requests_than_the_limit(
        (per_minute, burst, tasks) in limiter_case()
    ) {
        let grants = run_limiter(per_minute, burst, &tasks);
        prop_assert_eq!(grants.len(), tasks.iter().map(Vec::len).sum::<usize>());
        let v = crowded_minutes(per_minute, &grants);
        prop_assert!(v.is_empty(), "limit {per_minute}, burst {burst}: {v:#?}");
        let v = needless_waits(&grants);
        prop_assert!(v.is_empty(), "limit {per_minute}, burst {burst}: {v:#?}");
    }

    #[test]
    fn back_to_back_requests_go_as_a_burst_then_at_the_refill_rate(
        per_minute in prop_oneof![1u32..=10, 11u32..=240],
        burst in 1u32..=20,
        tasks in 1usize..=4,
        each in 1usize..=60,
    ) {
        let grants = run_limiter(per_minute, burst, &vec![vec![Duration::ZERO; each]; tasks]);
        let v = off_pace(per_minute, burst, &grants);
        prop_assert!(v.is_empty(), "{v:#?}");
        let v = crowded_minutes(per_minute, &grants);
        prop_assert!(v.is_empty(), "limit {per_minute}, burst {burst}: {v:#?}");
    }
}

/// Each check above rejects a schedule broken its way.
#[test]
fn the_checks_catch_broken_schedules() {
    let ms = Duration::from_millis;
    // Back-off: 100 ms doubling to 1 s, 5 retries: 100, 200, 400, 800, 1000.
    let s = settings(100, 1_000, 5);
    assert_eq!(
        unjittered(&s),
        [ms(100), ms(200), ms(400), ms(800), ms(1_000)]
    );
    assert!(backoff_violations(&s, &[ms(150), ms(250), ms(700), ms(900), ms(1_999)]).is_empty());
    for broken in [
        vec![ms(150), ms(250), ms(700), ms(900)],
        vec![ms(150), ms(250), ms(700), ms(900), ms(1_000), ms(1_000)],
        vec![ms(150), ms(150), ms(700), ms(900), ms(1_000)],
        vec![ms(150), ms(250), ms(700), ms(1_700), ms(1_000)],
        vec![ms(150), ms(250), ms(700), ms(900), ms(2_001)],
    ] {
        assert!(
            !backoff_violations(&s, &broken).is_empty(),
            "{broken:?} passed"
        );
    }
    // Limiter: 4 a minute, burst 2, so one every 30 s after the burst.
    let at = |asked: u64, went: u64| Grant {
        asked: Duration::from_secs(asked),
        went: Duration::from_secs(went),
    };
    let paced = [at(0, 0), at(0, 0), at(0, 30), at(0, 60), at(0, 90)];
    assert!(crowded_minutes(4, &paced).is_empty());
    assert!(off_pace(4, 2, &paced).is_empty());
    assert!(needless_waits(&paced).is_empty());
    let crowded = [at(0, 0), at(0, 0), at(0, 1), at(0, 2), at(0, 59)];
    assert!(!crowded_minutes(4, &crowded).is_empty());
    assert!(!off_pace(4, 2, &crowded).is_empty());
    let slow = [at(0, 0), at(0, 0), at(0, 31), at(0, 60), at(0, 90)];
    // A burst of one (at most 2 a minute: one every 60 s), a tick late
    // each time: on pace.
    let drifting: Vec<Grant> = [0, 60_001, 120_002, 180_003]
        .into_iter()
        .map(|t| Grant {
            asked: Duration::ZERO,
            went: ms(t),
        })
        .collect();
    assert!(off_pace(2, 1, &drifting).is_empty());
    assert!(!off_pace(4, 2, &drifting).is_empty());
    assert!(crowded_minutes(4, &slow).is_empty());
    assert!(!off_pace(4, 2, &slow).is_empty());
    let no_burst = [at(0, 0), at(0, 30), at(0, 60)];
    assert!(!off_pace(4, 2, &no_burst).is_empty());
    let kept_waiting = [at(0, 0), at(61, 62)];
    assert!(!needless_waits(&kept_waiting).is_empty());
    assert!(needless_waits(&[at(0, 0), at(59, 60)]).is_empty());
}

//! The governor's decisions on scripted readings and a manual clock.

#![allow(clippy::unwrap_used)]

use super::*;

const MB: u64 = 1_000_000;

fn settings() -> GovernorSettings {
    GovernorSettings {
        limit: 1_000 * MB,
        hard_limit: 1_200 * MB,
        max_workers: 4,
        min_workers: 2,
        predicted_worker: 200 * MB,
        margin_percent: 10,
        terminate_after_ms: 30_000,
        alerts: AlertLines {
            process_rss: Some(400 * MB),
            min_trials_per_hour: Some(35.0),
            window_ms: 3_600_000,
            vram_percent: Some(90.0),
        },
    }
}

fn reading(now_ms: i64, used_mb: u64, workers: &[(WorkerId, u64)]) -> Reading {
    Reading {
        now_ms,
        used: used_mb * MB,
        workers: workers.iter().map(|(id, mb)| (*id, mb * MB)).collect(),
        vram_percent: None,
    }
}

fn alerts(actions: &[Action]) -> Vec<(AlertKind, Option<WorkerId>, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Alert(a) => Some((a.kind, a.worker, a.raised)),
            _ => None,
        })
        .collect()
}

#[test]
fn admits_while_the_predicted_demand_fits_counting_what_running_workers_will_grow_to() {
    let mut g = Governor::new(settings(), 0);
    // 300 MB in use by others: room for 3 workers of 200 MB predicted.
    assert_eq!(
        g.admit(&reading(0, 300, &[])),
        Ok(Demand::Predicted { bytes: 200 * MB })
    );
    g.started(0, 0);
    // The first worker holds 50 MB so far; it still grows by 150.
    assert!(g.admit(&reading(10, 350, &[(0, 50)])).is_ok());
    g.started(1, 10);
    assert!(g.admit(&reading(20, 400, &[(0, 50), (1, 50)])).is_ok());
    g.started(2, 20);
    // 450 in use + growth 3 x 150 = 900; one more 200 does not fit.
    assert_eq!(
        g.admit(&reading(30, 450, &[(0, 50), (1, 50), (2, 50)])),
        Err(Refusal::Memory {
            need: 200 * MB,
            free: 100 * MB
        })
    );
    assert_eq!(g.stats().refused.get("memory"), Some(&1));
    assert_eq!(g.stats().max_concurrent_workers, 3);
}

#[test]
fn after_a_worker_finishes_its_measured_peak_with_margin_is_the_demand() {
    let mut g = Governor::new(settings(), 0);
    g.admit(&reading(0, 100, &[])).unwrap();
    g.started(0, 0);
    g.observe(&reading(1_000, 180, &[(0, 80)]));
    g.ended(0, 2_000, Some(100 * MB), true);
    assert_eq!(
        g.demand(),
        Demand::Measured {
            peak: 100 * MB,
            bytes: 110 * MB
        }
    );
    // 600 in use: 400 free, 3 workers of 110 fit, not a 4th.
    for id in 0..3 {
        let running: Vec<_> = (0..id).map(|i| (i, 0)).collect();
        assert!(g.admit(&reading(3_000, 600, &running)).is_ok(), "{id}");
        g.started(id, 3_000);
    }
    let three = [(0, 0), (1, 0), (2, 0)];
    assert_eq!(
        g.admit(&reading(3_000, 600, &three)),
        Err(Refusal::Memory {
            need: 110 * MB,
            free: 70 * MB
        })
    );
    // With 500 in use the 4th fits; a 5th is over --workers.
    assert!(g.admit(&reading(3_000, 500, &three)).is_ok());
    g.started(3, 3_000);
    assert_eq!(
        g.admit(&reading(3_000, 100, &[(0, 0), (1, 0), (2, 0), (3, 0)])),
        Err(Refusal::MaxWorkers)
    );
}

#[test]
fn over_the_hard_line_the_newest_is_paused_and_resumed_when_headroom_returns() {
    let mut g = Governor::new(settings(), 0);
    for (id, t) in [(0, 0), (1, 100), (2, 200)] {
        g.started(id, t);
    }
    let w = [(0, 200), (1, 200), (2, 200)];
    // Over the soft limit only: nothing paused, nothing admitted.
    assert!(g.observe(&reading(1_000, 1_100, &w)).is_empty());
    assert!(g.admit(&reading(1_000, 1_100, &w)).is_err());
    // Over the hard line: the newest (2) is paused, one per reading.
    let a = g.observe(&reading(2_000, 1_300, &w));
    assert_eq!(a, [Action::Pause(2)]);
    assert_eq!((g.active(), g.paused()), (2, 1));
    assert_eq!(g.admit(&reading(2_000, 1_300, &w)), Err(Refusal::Paused));
    // Still over: the next newest (1) is paused, which leaves 1 < min 2.
    let a = g.observe(&reading(3_000, 1_250, &w));
    assert_eq!(a[0], Action::Pause(1));
    assert_eq!(
        alerts(&a),
        [(AlertKind::BelowMinWorkers, None, true)],
        "the alert says so"
    );
    // Back under the limit with room for 1's growth: 1 (the oldest paused)
    // resumes, which makes 2 running: the min-workers alert clears.
    let a = g.observe(&reading(10_000, 700, &w));
    assert_eq!(a[0], Action::Resume(1));
    assert_eq!(alerts(&a), [(AlertKind::BelowMinWorkers, None, false)]);
    // One resume per reading: 2 at the next.
    assert_eq!(g.observe(&reading(11_000, 700, &w)), [Action::Resume(2)]);
    assert_eq!((g.stats().pauses, g.stats().resumes), (2, 2));
    // Paused time: 1 from 3 s to 10 s, 2 from 2 s to 11 s.
    assert_eq!(g.stats().paused_ms, 7_000 + 9_000);
}

#[test]
fn paused_and_still_over_the_hard_line_the_largest_paused_is_terminated_after_the_grace() {
    let mut g = Governor::new(
        GovernorSettings {
            alerts: AlertLines {
                process_rss: None,
                ..settings().alerts
            },
            ..settings()
        },
        0,
    );
    g.started(0, 0);
    g.started(1, 100);
    let w = [(0, 800), (1, 400)];
    assert_eq!(g.observe(&reading(1_000, 1_500, &w))[0], Action::Pause(1));
    assert_eq!(g.observe(&reading(2_000, 1_500, &w))[0], Action::Pause(0));
    // All paused, still over: nothing until 30 s after they all stood still.
    let terminated = |a: &[Action]| a.iter().any(|a| matches!(a, Action::Terminate(_)));
    assert!(!terminated(&g.observe(&reading(3_000, 1_500, &w))));
    assert!(!terminated(&g.observe(&reading(20_000, 1_500, &w))));
    let a = g.observe(&reading(33_000, 1_500, &w));
    assert!(a.contains(&Action::Terminate(0)), "the largest: {a:?}");
    assert_eq!(g.stats().terminations, 1);
    // Under the hard line now, yet over the limit: 1 cannot resume, and is
    // only terminated after another grace.
    let a = g.observe(&reading(34_000, 1_050, &[(1, 400)]));
    assert!(a.is_empty(), "{a:?}");
    assert!(
        g.observe(&reading(63_000, 1_050, &[(1, 400)]))
            .contains(&Action::Terminate(1))
    );
}

#[test]
fn a_worker_growing_past_process_rss_is_reported_once_and_cleared() {
    let mut g = Governor::new(settings(), 0);
    g.started(0, 0);
    g.started(1, 0);
    assert!(alerts(&g.observe(&reading(1_000, 500, &[(0, 300), (1, 100)]))).is_empty());
    let a = g.observe(&reading(2_000, 600, &[(0, 450), (1, 100)]));
    assert_eq!(alerts(&a), [(AlertKind::WorkerRss, Some(0), true)]);
    let a = g.observe(&reading(3_000, 650, &[(0, 500), (1, 100)]));
    assert!(alerts(&a).is_empty(), "once per crossing");
    let a = g.observe(&reading(4_000, 500, &[(0, 300), (1, 100)]));
    assert_eq!(alerts(&a), [(AlertKind::WorkerRss, Some(0), false)]);
    assert_eq!(g.stats().alerts.get("worker_rss"), Some(&1));
}

#[test]
fn too_few_trials_per_hour_over_the_window_is_reported() {
    let mut g = Governor::new(settings(), 0);
    // Inside the first hour: not judged yet.
    assert!(alerts(&g.observe(&reading(1_000, 100, &[]))).is_empty());
    // 20 trials in the first hour, then the hour is judged: 20 < 35.
    for i in 0..20 {
        g.started(i, i64::from(i) * 1_000);
        g.ended(i, i64::from(i) * 1_000 + 500, Some(100 * MB), true);
    }
    let a = g.observe(&reading(3_600_000, 100, &[]));
    assert_eq!(alerts(&a), [(AlertKind::TrialsPerHour, None, true)]);
    // 40 trials in the last hour: cleared.
    for i in 20..60 {
        let t = 3_600_000 + i64::from(i) * 10_000;
        g.started(i, t);
        g.ended(i, t + 1, None, true);
    }
    let a = g.observe(&reading(7_200_000, 100, &[]));
    assert_eq!(alerts(&a), [(AlertKind::TrialsPerHour, None, false)]);
}

#[test]
fn vram_over_its_line_is_reported() {
    let mut g = Governor::new(settings(), 0);
    let mut r = reading(0, 100, &[]);
    r.vram_percent = Some(93.0);
    assert_eq!(alerts(&g.observe(&r)), [(AlertKind::Vram, None, true)]);
    r.vram_percent = Some(80.0);
    assert_eq!(alerts(&g.observe(&r)), [(AlertKind::Vram, None, false)]);
}

#[test]
fn a_leaking_worker_does_not_set_the_measured_demand() {
    let mut g = Governor::new(settings(), 0);
    g.started(0, 0);
    g.observe(&reading(1_000, 700, &[(0, 600)]));
    g.ended(0, 2_000, Some(600 * MB), true);
    assert_eq!(g.demand(), Demand::Predicted { bytes: 200 * MB });
    g.started(1, 3_000);
    g.ended(1, 4_000, Some(150 * MB), true);
    assert_eq!(g.demand().bytes(), 165 * MB);
}

#[test]
fn a_worker_that_leaked_and_fell_back_does_not_set_the_demand_either() {
    let mut g = Governor::new(settings(), 0);
    g.started(0, 0);
    g.observe(&reading(1_000, 700, &[(0, 600)]));
    g.observe(&reading(2_000, 300, &[(0, 200)]));
    g.ended(0, 3_000, Some(600 * MB), true);
    assert_eq!(g.demand(), Demand::Predicted { bytes: 200 * MB });
}

#[test]
fn a_failed_or_terminated_worker_does_not_set_the_measured_demand() {
    let mut g = Governor::new(settings(), 0);
    g.started(0, 0);
    g.ended(0, 1_000, Some(900 * MB), false);
    assert_eq!(g.demand(), Demand::Predicted { bytes: 200 * MB });
    assert_eq!(g.stats().trials_finished, 0);
}

#[test]
fn a_worker_the_reading_misses_counts_whole_until_it_is_collected() {
    let mut g = Governor::new(settings(), 0);
    // Three workers at 180 MB of their 200 MB demand, 220 MB used by others:
    // 760 in use + 3 x 20 of growth = 820 of the 1,000 MB limit.
    for id in 0..3 {
        g.started(id, 0);
    }
    let _ = g.observe(&reading(10, 760, &[(0, 180), (1, 180), (2, 180)]));
    // Worker 2 is ending: its /proc entry has no memory any more, so the
    // reading has neither its RSS nor its bytes in `used`. It still counts
    // at its demand: 580 + 2 x 20 + 200 = 820, room for 180: a fourth
    // worker does not start in its slot (counting only its last 20 MB of
    // growth, 640, it would have).
    assert_eq!(
        g.admit(&reading(20, 580, &[(0, 180), (1, 180)])),
        Err(Refusal::Memory {
            need: 200 * MB,
            free: 180 * MB
        })
    );
    // Collected: its memory and its place are free again.
    g.ended(2, 30, Some(180 * MB), true);
    assert!(g.admit(&reading(40, 580, &[(0, 180), (1, 180)])).is_ok());
}

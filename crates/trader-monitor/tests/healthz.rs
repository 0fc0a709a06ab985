//! `/healthz` of the real endpoint while a data alarm holds: 503 with the
//! alarm's reason, 200 once it clears, and the alert metrics beside it; the
//! ensemble's swaps, refusals and version in `/metrics`.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use trader_core::HOUR_SECS;
use trader_engine::EngineStats;
use trader_monitor::{DataAlarms, Metrics, serve};

async fn get(addr: std::net::SocketAddr, path: &'static str) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        (status, out)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_turns_healthz_to_503_with_the_reason_and_back_to_200_when_bars_resume() {
    let m = Arc::new(Mutex::new(Metrics::new(3, 60)));
    let addr = serve(Arc::clone(&m), 0).await.unwrap();
    let t = 1_535_760_000; // 2018-09-01T00:00:00Z
    let mut alarms = DataAlarms::new(2);
    let poll = |newest: i64, now: i64, alarms: &mut DataAlarms| {
        let mut m = m.lock().unwrap();
        m.update(
            &EngineStats::default(),
            Some(now - newest - HOUR_SECS),
            None,
        );
        if let Some(c) = alarms.check_stale(Some(newest), now) {
            m.alarm(&c);
        }
    };
    poll(t, t + HOUR_SECS + 2, &mut alarms);
    assert_eq!(get(addr, "/healthz").await.0, 200);

    poll(t, t + 4 * HOUR_SECS, &mut alarms);
    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("stale data") && body.contains("2018-09-01T00:00:00"),
        "{body}"
    );
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("trader_alert_active{kind=\"stale_data\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trader_alerts_total{kind=\"stale_data\"} 1"),
        "{metrics}"
    );

    poll(t + 4 * HOUR_SECS, t + 5 * HOUR_SECS + 1, &mut alarms);
    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("trader_alert_active{kind=\"stale_data\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trader_alerts_total{kind=\"stale_data\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_refusals_and_the_version_in_use_reach_metrics() {
    let m = Arc::new(Mutex::new(Metrics::new(3, 60)));
    let addr = serve(Arc::clone(&m), 0).await.unwrap();
    let mut stats = EngineStats {
        ensemble_version: "aaaaaaaaaaaa".to_owned(),
        ..EngineStats::default()
    };
    m.lock().unwrap().update(&stats, None, None);
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("trader_ensemble_info{version=\"aaaaaaaaaaaa\"} 1")
            && metrics.contains("trader_ensemble_swaps_total 0"),
        "{metrics}"
    );
    // One swap, two budget refusals and one for history since.
    stats.swaps.push(trader_engine::SwapRecord {
        after_hour: Some(1_535_760_000),
        at: 1_535_763_700,
        from: "aaaaaaaaaaaa".to_owned(),
        to: "bbbbbbbbbbbb".to_owned(),
        members: vec!["trial_0001".to_owned()],
        load_ms: 12,
        rss_before: None,
        rss_after: None,
    });
    stats.ensemble_version = "bbbbbbbbbbbb".to_owned();
    stats.swaps_refused.insert("budget", 2);
    stats.swaps_refused.insert("history", 1);
    m.lock().unwrap().update(&stats, None, None);
    // Counted once, however often the same stats are seen.
    m.lock().unwrap().update(&stats, None, None);
    let (_, metrics) = get(addr, "/metrics").await;
    for line in [
        "trader_ensemble_swaps_total 1",
        "trader_ensemble_swaps_refused_total{reason=\"budget\"} 2",
        "trader_ensemble_swaps_refused_total{reason=\"history\"} 1",
        "trader_alerts_total{kind=\"ensemble_swap_refused\"} 3",
        "trader_ensemble_info{version=\"bbbbbbbbbbbb\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains("aaaaaaaaaaaa"),
        "the old version is gone: {metrics}"
    );
}

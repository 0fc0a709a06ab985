//! Stale data in a whole session: a standalone simulator whose recorded
//! bars have a four-hour hole, followed at 10800x (three hours a second;
//! the client's quota raised to match the simulator's) by `trader run`'s
//! session with `/healthz` on: 503 naming the stale data while the hole
//! lasts past `stale_after_hours` (2), 200 again once bars resume. The
//! environment is the process's: the test holds it alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use crate::common::{START, repo};

use std::time::{Duration, Instant};

use trader_config::Profile;
use trader_core::{Clock, HOUR_SECS, SystemClock};

fn healthz(port: u16) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some((out.get(9..12)?.parse().ok()?, out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_turns_healthz_to_503_and_back_when_bars_resume() {
    let env = common::env_alone().await;
    let profile = Profile::load("lean", &repo().join("configs")).unwrap();
    let mut bars = trader_recorded::read_recorded_symbols(
        &repo().join("data/coinbase_2017_2018"),
        &profile.symbols,
        SystemClock.now(),
    )
    .unwrap();
    // No bars for the hours opening 02:00 to 05:00: at 06:00 the newest
    // complete hour (01:00) closed 4 h before; bars resume at 07:00.
    let hole = START - 1800 + 2 * HOUR_SECS..START - 1800 + 6 * HOUR_SECS;
    for series in bars.values_mut() {
        series.retain(|b| !hole.contains(&b.t));
    }
    let (sim, _) = common::standalone_sim(bars, ("PKSTALE", "stale-secret"), 10_800.0).await;
    let url = sim.base_url();
    common::point_env_at(&env, &url, ("PKSTALE", "stale-secret"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let db = trader_core::StoreLocation::Sqlite(tmp.path().join("lean.sqlite"));
    let request = common::live_request(Some(port));
    let (handle, stop) = trader_engine::stop_pair();
    let run = tokio::spawn(async move {
        let setup = common::setup(&profile, &db);
        trader_session::run::trade(&request, setup, stop).await
    });
    // 503 with the reason, then 200: in 100 ms steps, 30 s at most.
    let (mut stale, mut resumed) = (None, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !run.is_finished() && !resumed {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = tokio::task::spawn_blocking(move || healthz(port))
            .await
            .unwrap();
        match got {
            Some((503, body)) if body.contains("stale data") => stale = Some(body),
            Some((200, _)) if stale.is_some() => resumed = true,
            _ => {}
        }
    }
    handle.stop();
    let summary = run.await.unwrap().unwrap().expect("a summary");
    sim.stop().await;
    let body = stale.expect("/healthz answered 503 for stale data");
    assert!(
        body.contains("2018-09-01T01:00:00"),
        "names the newest hour: {body}"
    );
    assert!(resumed, "/healthz 200 again once bars resumed; {summary:?}");
}

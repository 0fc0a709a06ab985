//! `trader run`'s session pointed at a standalone simulator by the
//! environment alone (keys, APCA_API_BASE_URL, APCA_API_DATA_URL; no
//! speed): it follows the simulator's clock, whatever its speed, and
//! decides hours. The environment is the process's: the test holds it
//! alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use crate::common::repo;

use std::path::Path;
use std::time::{Duration, Instant};

use trader_alpaca::{AlpacaClient, ClientSettings};
use trader_config::{AlpacaEndpoints, AlpacaKeys, Profile, Secret};
use trader_core::{Clock, SystemClock};
use trader_store::Store;

#[test]
fn a_standalone_simulator_at_any_speed_is_followed_without_being_told_its_speed() {
    let env = common::env_alone_blocking();
    let profile = Profile::load("lean", &repo().join("configs")).unwrap();
    let bars = trader_recorded::read_recorded_symbols(
        &repo().join("data/coinbase_2017_2018"),
        &profile.symbols,
        SystemClock.now(),
    )
    .unwrap();
    for speed in [3600.0, 900.0] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(follow_one(&env, &profile, bars.clone(), speed));
    }
}

async fn follow_one(
    env: &common::EnvAlone,
    profile: &Profile,
    bars: std::collections::BTreeMap<trader_core::Symbol, Vec<trader_core::Bar>>,
    speed: f64,
) {
    let (sim, sim_clock) = common::standalone_sim(bars, ("PKFOLLOW", "follow-secret"), speed).await;
    let url = sim.base_url();
    common::point_env_at(env, &url, ("PKFOLLOW", "follow-secret"));

    // The clock alone: its derived speed is the simulator's.
    let keys = AlpacaKeys {
        key_id: Secret::new("PKFOLLOW".to_owned()),
        secret_key: Secret::new("follow-secret".to_owned()),
    };
    let endpoints = AlpacaEndpoints::from_env().unwrap();
    let probe = AlpacaClient::new(&endpoints, &keys, ClientSettings::default()).unwrap();
    let following = trader_session::follow::follow(probe, None).await.unwrap();
    let derived = following.clock.speed();
    assert!(
        (derived / speed - 1.0).abs() < 0.05,
        "derived {derived} vs the simulator's {speed}"
    );
    let ahead = following.clock.now().timestamp_millis() - sim_clock.now().timestamp_millis();
    assert!(
        ahead.abs() < (speed * 20.0) as i64,
        "the followed clock is {ahead} ms from the simulator's at {speed}x"
    );
    assert_eq!(following.skew_ms(), None, "no skew at a simulator's speed");
    drop(following);

    // The session, told nothing: it decides hours.
    let tmp = tempfile::tempdir().unwrap();
    let db = trader_core::StoreLocation::Sqlite(tmp.path().join("lean.sqlite"));
    let request = common::live_request(None);
    let (handle, stop) = trader_engine::stop_pair();
    let run = {
        let (profile, db) = (profile.clone(), db.clone());
        tokio::spawn(async move {
            let setup = common::setup(&profile, &db);
            trader_session::run::trade(&request, setup, stop).await
        })
    };
    until_two_decided(&db, &run).await;
    handle.stop();
    let summary = run.await.unwrap().unwrap().expect("a summary");
    sim.stop().await;
    assert_eq!(summary.mode, "live");
    assert!(
        summary.decisions + summary.skipped >= 2,
        "at {speed}x: {summary:?}"
    );
    assert!(summary.bars_received > 0, "{summary:?}");
    assert!(summary.polls >= 2, "{summary:?}");
    assert_eq!(summary.poll_schedule, "aligned");
    eprintln!("{speed}x: {summary:?}");
}

/// Until two hours are decided in the store at `db` (the newest closed one
/// at start, then the next close), in 100 ms steps; a minute at most.
async fn until_two_decided<T>(db: &trader_core::StoreLocation, run: &tokio::task::JoinHandle<T>) {
    let deadline = Instant::now() + Duration::from_mins(1);
    let mut first = None;
    while Instant::now() < deadline && !run.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !db.sqlite_path().is_some_and(Path::exists) {
            continue;
        }
        let Ok(store) = Store::open(db, None).await else {
            continue;
        };
        let last = store
            .profile_status("lean")
            .await
            .ok()
            .and_then(|s| s.last_decision.map(|d| d.bar_t));
        store.close().await;
        if let Some(t) = last {
            let first = *first.get_or_insert(t);
            if t > first {
                break;
            }
        }
    }
}

//! The sessions in process: a backtest of the shipped `lean` profile on the
//! shipped slice gives the committed golden metrics (as
//! `trader backtest --json` must) and writes its four files; a one-day
//! embedded replay's summary matches what the store recorded, and
//! `trader status`'s view of that store names the same run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use crate::common;

use crate::common::repo;
use std::path::Path;
use std::time::Duration;

use trader_config::Profile;
use trader_session::{BacktestRequest, RunRequest};
use trader_store::{Recorder, Store};

fn lean() -> Profile {
    Profile::load("lean", &repo().join("configs")).unwrap()
}

/// Every field of `got` equals the golden file's (floats to 1e-9 relative,
/// as the CLI's golden test compares).
fn assert_matches_golden(got: &serde_json::Value, golden_file: &Path) {
    let golden: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(golden_file).unwrap()).unwrap();
    let (got, golden) = (got.as_object().unwrap(), golden.as_object().unwrap());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        golden.keys().collect::<Vec<_>>(),
        "the metrics' fields and their order"
    );
    for (k, want) in golden {
        let have = &got[k];
        let same = match (have.as_f64(), want.as_f64()) {
            (Some(x), Some(y)) if have.is_f64() || want.is_f64() => {
                (x - y).abs() <= 1e-9 * y.abs().max(1e-3)
            }
            _ => have == want,
        };
        assert!(same, "{k}: got {have}, golden {want}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn backtest_session_of_lean_on_the_slice_gives_the_golden_metrics_and_files() {
    let _env = common::env_shared().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let request = BacktestRequest {
        data: repo().join("tests/fixtures/slice"),
        from: None,
        to: None,
        block_hours: Some(256),
        store: None,
        out: Some(out.clone()),
        progress: false,
    };
    let metrics = trader_session::backtest::session(&lean(), &request)
        .await
        .unwrap();
    let golden = repo().join("tests/fixtures/golden/backtest-lean.json");
    assert_matches_golden(&serde_json::to_value(&metrics).unwrap(), &golden);
    // metrics.json holds the same metrics (read back through decimal text:
    // the same tolerance); the other three files are there.
    let written: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_matches_golden(&written, &golden);
    let decisions = fs_err::read_to_string(out.join("decisions.csv")).unwrap();
    assert_eq!(
        decisions.lines().count(),
        1 + metrics.hours,
        "a header and one row per decided hour"
    );
    assert!(out.join("equity.csv").is_file());
    let resources: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(out.join("resources.json")).unwrap()).unwrap();
    assert_eq!(resources["forward"], "batched");
    assert_eq!(resources["records"], "memory");
}

#[tokio::test(flavor = "current_thread")]
async fn backtest_session_names_an_empty_span() {
    let _env = common::env_shared().await;
    let request = BacktestRequest {
        data: repo().join("tests/fixtures/slice"),
        from: Some(0),
        to: Some(3600),
        block_hours: None,
        store: None,
        out: None,
        progress: false,
    };
    let err = trader_session::backtest::session(&lean(), &request)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("no hour with bars of every symbol"),
        "{err:#}"
    );
}

/// 2018-09-01T00:00:00Z.
const FROM: i64 = 1_535_760_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_day_replay_session_sums_up_what_the_store_recorded() {
    let _env = common::env_shared().await;
    if std::env::var_os("APCA_API_KEY_ID").is_some() {
        // With keys the session trades Alpaca, not the embedded replay.
        eprintln!("skipped: APCA_API_KEY_ID is set");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = trader_core::StoreLocation::Sqlite(tmp.path().join("lean.sqlite"));
    let profile = lean();
    let request = RunRequest {
        data: repo().join("data/coinbase_2017_2018"),
        // One day in well under a second of clock time.
        speed: Some(1_000_000.0),
        from: Some(FROM),
        until: Some(FROM + 86_400),
        allow_live: false,
        metrics_port: None,
        alert_interval: None,
        timeout: Duration::from_secs(10),
        requests_per_minute: None,
    };
    let setup = common::setup(&profile, &db);
    let (_handle, stop) = trader_engine::stop_pair();
    let summary = trader_session::run::trade(&request, setup, stop)
        .await
        .unwrap()
        .expect("no stop was requested");
    assert_eq!(summary.mode, "replay");
    assert_eq!(summary.profile, "lean");
    assert!(!summary.resumed);
    assert_eq!(summary.decisions + summary.skipped, 24, "{summary:?}");
    // The history before the first hour, then every replayed hour, 3 symbols.
    assert_eq!(
        summary.bars_received,
        (u64::from(profile.history_hours) + 24) * 3
    );
    assert!(summary.poll_errors.is_empty(), "{:?}", summary.poll_errors);
    assert_eq!(summary.equity_start, 100_000.0);

    // The store's rows, read back apart from the summary's counts.
    let store = Store::open(&db, None).await.unwrap();
    // Through the trait: the store's record methods are `Recorder`'s.
    let decisions = Recorder::decisions_of_run(&store, summary.run_id)
        .await
        .unwrap();
    assert_eq!(decisions.len(), 24);
    let skipped = decisions
        .iter()
        .filter(|d| d.skipped_reason.is_some())
        .count() as u64;
    assert_eq!(skipped, summary.skipped);
    let fills = Recorder::fills_of_run(&store, summary.run_id)
        .await
        .unwrap();
    assert_eq!(fills.len() as u64, summary.fills);
    let status = store.profile_status("lean").await.unwrap();
    store.close().await;
    let run = status.run.clone().expect("the replay's run");
    assert_eq!(run.id, summary.run_id);
    assert_eq!(run.mode, "replay");
    assert!(run.ended_at.is_some());
    assert_eq!(status.run_outcome.as_deref(), Some("finished"));
    assert_eq!(
        status.last_decision.as_ref().map(|d| d.bar_t),
        Some(FROM + 86_400 - 3600),
        "the last replayed hour"
    );

    // `trader status`'s view of the same store: the same run, no stored
    // bars (a replay leaves them alone), the JSON arrays it always printed.
    let view = trader_session::status::gather(&profile, &db).await.unwrap();
    assert_eq!(view.status, status);
    assert!(view.newest_bars.iter().all(|(_, t)| t.is_none()));
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["run"][0], summary.run_id);
    assert_eq!(json["run"][1], "replay");
    assert_eq!(json["last_decision"][0], FROM + 86_400 - 3600);
    let missing = trader_session::status::gather(
        &profile,
        &trader_core::StoreLocation::Sqlite(tmp.path().join("missing.sqlite")),
    )
    .await
    .unwrap_err();
    assert!(format!("{missing:#}").contains("has not run yet"));
}

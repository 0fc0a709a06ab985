//! Runs that are repeated, killed, failed or started twice on one store:
//! nothing lost, nothing twice, the store always usable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use trader_core::{Bar, StoreLocation, Symbol};
use trader_store::{
    DecisionRecord, PlannedOrder, ProfileLock, Recorder, RunMode, Store, StoreError, lock_path,
};

const T0: i64 = 1_530_000_000; // on the hour

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + 1000 * 3600, 0).unwrap()
}

fn bar(hour: i64) -> Bar {
    let c = 100.0 + hour as f64;
    Bar {
        t: T0 + hour * 3600,
        open: c,
        high: c + 1.0,
        low: c - 1.0,
        close: c,
        volume: 1.0,
    }
}

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn decision(t: i64) -> DecisionRecord {
    DecisionRecord {
        bar_t: t,
        member_actions: vec![vec![0.5]],
        aggregate: vec![0.5],
        target_weights: BTreeMap::from([("BTC/USD".to_owned(), 0.5)]),
        latency_us: 10,
        skipped_reason: None,
        ensemble_version: None,
    }
}

fn order(id: &str) -> PlannedOrder {
    PlannedOrder {
        client_order_id: id.to_owned(),
        symbol: sym("BTC/USD"),
        side: trader_core::Side::Buy,
        notional: Some(100.0),
        qty: None,
    }
}

async fn outcome(
    store: &Store,
    profile: &str,
    run: i64,
) -> (Option<i64>, Option<String>, Option<String>) {
    let status = store.profile_status(profile).await.unwrap();
    let newest = status.run.unwrap();
    assert_eq!(newest.id, run, "the newest run of the profile");
    (newest.ended_at, status.run_outcome, status.run_error)
}

#[tokio::test]
async fn a_records_only_handle_never_writes_reads_or_prunes_bars() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &crate::store_at(&dir.path().join("s.sqlite")).await,
        Some(24),
    )
    .await
    .unwrap();
    // Imported history of two symbols, far longer than 24 h.
    let imported: Vec<Bar> = (0..200).map(bar).collect();
    let plain = Store::open(store.location(), None).await.unwrap();
    plain
        .insert_bars(&sym("BTC/USD"), &imported, now())
        .await
        .unwrap();
    plain
        .insert_bars(&sym("XRP/USD"), &imported, now())
        .await
        .unwrap();
    plain.close().await;
    let replay = store.records_only();
    assert!(!replay.keeps_bars() && store.keeps_bars());
    // Newer bars through the replay's handle: checked, counted, not written.
    let newer: Vec<Bar> = (300..340).map(bar).collect();
    let r = replay
        .insert_bars(&sym("BTC/USD"), &newer, now())
        .await
        .unwrap();
    assert_eq!(r.inserted, 40);
    assert_eq!(r.pruned, 0);
    let counts = store.bar_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![(sym("BTC/USD"), 200), (sym("XRP/USD"), 200)],
        "nothing written, nothing pruned"
    );
    // A bad bar is still refused.
    let bad = Bar {
        volume: -1.0,
        ..bar(400)
    };
    assert!(matches!(
        replay.insert_bars(&sym("BTC/USD"), &[bad], now()).await,
        Err(StoreError::BadBar { .. })
    ));
    // Its engine starts from an empty window, not from the stored bars.
    let window = replay.load_window(&[sym("BTC/USD")], 24).await.unwrap();
    assert!(window.bars(&sym("BTC/USD")).is_empty());
    let window = store.load_window(&[sym("BTC/USD")], 24).await.unwrap();
    assert_eq!(window.bars(&sym("BTC/USD")).len(), 24);
}

#[tokio::test]
async fn killed_replays_are_abandoned_and_a_new_run_starts_with_earlier_records_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    // Replay 1 finishes, replay 2 is killed after deciding an hour.
    let r1 = store
        .start_run("lean", "h", "{}", RunMode::Replay, T0)
        .await
        .unwrap();
    store
        .record_decision(r1.run_id, &decision(T0), &[order("lean-r1-a")], T0)
        .await
        .unwrap();
    store.finish_run(r1.run_id, T0 + 10).await.unwrap();
    let r2 = store
        .start_run("lean", "h", "{}", RunMode::Replay, T0)
        .await
        .unwrap();
    assert!(!r2.resumed, "a replay never resumes");
    store
        .record_decision(r2.run_id, &decision(T0), &[order("lean-r2-a")], T0)
        .await
        .unwrap();
    // A live run of the profile and a replay of another profile are not touched.
    let live = store
        .start_run("lean", "h", "{}", RunMode::Live, T0)
        .await
        .unwrap();
    let other = store
        .start_run("full", "h", "{}", RunMode::Replay, T0)
        .await
        .unwrap();
    let abandoned = store
        .abandon_unfinished("lean", RunMode::Replay, T0 + 20)
        .await
        .unwrap();
    assert_eq!(abandoned, vec![r2.run_id]);
    let r3 = store
        .start_run("lean", "h", "{}", RunMode::Replay, T0 + 30)
        .await
        .unwrap();
    assert!(r3.run_id > r2.run_id && !r3.resumed);
    // The same hour decided again by the new run: its own records.
    store
        .record_decision(r3.run_id, &decision(T0), &[order("lean-r3-a")], T0)
        .await
        .unwrap();
    for run in [r1.run_id, r2.run_id, r3.run_id] {
        let counts = store.run_counts(run).await.unwrap();
        assert_eq!((counts.decisions, counts.orders), (1, 1), "run {run}");
    }
    store.finish_run(r3.run_id, T0 + 40).await.unwrap();
    let (ended, outcome_full, _) = outcome(&store, "full", other.run_id).await;
    assert_eq!((ended, outcome_full), (None, None), "full's replay runs on");
    let live_again = store
        .start_run("lean", "h", "{}", RunMode::Live, T0 + 50)
        .await
        .unwrap();
    assert!(live_again.resumed && live_again.run_id == live.run_id);
    // An order id twice in the store is still refused, and the store is usable after.
    let err = store
        .record_decision(r3.run_id, &decision(T0 + 3600), &[order("lean-r3-a")], T0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("writing a planned order"), "{err}");
    assert!(
        !store.decided(r3.run_id, T0 + 3600).await.unwrap(),
        "rolled back whole"
    );
    store
        .record_decision(r3.run_id, &decision(T0 + 3600), &[order("lean-r3-b")], T0)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_live_run_stays_resumable_and_a_failed_replay_ends_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let live = store
        .start_run("lean", "h", "{}", RunMode::Live, T0)
        .await
        .unwrap();
    store
        .fail_run(live.run_id, T0 + 5, "broker gone", true)
        .await
        .unwrap();
    assert_eq!(
        outcome(&store, "lean", live.run_id).await,
        (None, None, Some("broker gone".to_owned()))
    );
    let again = store
        .start_run("lean", "h", "{}", RunMode::Live, T0 + 10)
        .await
        .unwrap();
    assert!(again.resumed && again.run_id == live.run_id);
    assert_eq!(
        outcome(&store, "lean", live.run_id).await,
        (None, None, None),
        "a resumed run no longer shows the error that stopped it"
    );
    store.finish_run(live.run_id, T0 + 20).await.unwrap();
    let replay = store
        .start_run("lean", "h", "{}", RunMode::Replay, T0 + 30)
        .await
        .unwrap();
    store
        .fail_run(replay.run_id, T0 + 40, "disk full", false)
        .await
        .unwrap();
    assert_eq!(
        outcome(&store, "lean", replay.run_id).await,
        (
            Some(T0 + 40),
            Some("failed".to_owned()),
            Some("disk full".to_owned())
        )
    );
}

#[tokio::test]
async fn a_second_holder_of_a_profile_lock_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let first = ProfileLock::acquire_file(&db, "lean", "trader run", T0).unwrap();
    assert!(first.taken_over().is_none());
    let err = ProfileLock::acquire_file(&db, "lean", "trader run", T0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Locked { .. }), "{msg}");
    assert!(
        msg.contains("s.sqlite")
            && msg.contains(&format!("pid {}", std::process::id()))
            && msg.contains("trader run")
            && msg.contains("lean"),
        "{msg}"
    );
    // Another profile of the same store, or the same profile of another store: free.
    let full = ProfileLock::acquire_file(&db, "full", "trader run", T0).unwrap();
    let elsewhere =
        ProfileLock::acquire_file(&dir.path().join("t.sqlite"), "lean", "x", T0).unwrap();
    drop((full, elsewhere));
    // Released on drop: the next holder finds a clean lock.
    drop(first);
    let next = ProfileLock::acquire_file(&db, "lean", "trader run", T0).unwrap();
    assert!(next.taken_over().is_none(), "released cleanly");
}

#[tokio::test]
async fn a_lock_left_by_a_killed_holder_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    // What a holder killed with SIGKILL leaves: the file names it, but the
    // kernel released its lock with the process.
    let dead = "trader run (pid 999999 on host, since 2018-06-26T08:00:00+00:00)";
    fs_err::write(lock_path(&db, "lean"), dead).unwrap();
    let lock = ProfileLock::acquire_file(&db, "lean", "trader run", T0).unwrap();
    assert_eq!(lock.taken_over(), Some(dead));
    let now_held = fs_err::read_to_string(lock_path(&db, "lean")).unwrap();
    assert!(
        now_held.contains(&format!("pid {}", std::process::id())),
        "{now_held}"
    );
}

fn wal_len(db: &Path) -> u64 {
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    fs_err::metadata(wal).map_or(0, |m| m.len())
}

#[tokio::test]
async fn a_clean_close_leaves_everything_in_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    // The WAL file is SQLite's alone.
    let store = Store::open(&StoreLocation::Sqlite(db.clone()), None)
        .await
        .unwrap();
    let bars: Vec<Bar> = (0..500).map(bar).collect();
    store
        .insert_bars(&sym("BTC/USD"), &bars, now())
        .await
        .unwrap();
    let run = store
        .start_run("lean", "h", "{}", RunMode::Replay, T0)
        .await
        .unwrap();
    store.finish_run(run.run_id, T0).await.unwrap();
    assert!(
        wal_len(&db) > 0,
        "the writes are in the WAL before the close"
    );
    store.close().await;
    assert_eq!(wal_len(&db), 0, "checkpointed (TRUNCATE)");
    // The .sqlite alone, copied elsewhere, holds everything.
    let copy = dir.path().join("copy.sqlite");
    fs_err::copy(&db, &copy).unwrap();
    let copied = Store::open(&StoreLocation::Sqlite(copy), None)
        .await
        .unwrap();
    assert_eq!(
        copied.bar_counts().await.unwrap(),
        vec![(sym("BTC/USD"), 500)]
    );
    assert!(copied.profile_status("lean").await.unwrap().run.is_some());
}

#[tokio::test]
async fn two_writers_on_one_file_wait_for_each_other_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let a = Store::open(&crate::store_at(&db).await, None)
        .await
        .unwrap();
    let b = Store::open(&crate::store_at(&db).await, None)
        .await
        .unwrap();
    // Each batch reads then writes in one transaction: without taking the
    // write lock up front, one of two interleaved batches fails at once
    // with "database is locked".
    let write = |store: Store, symbol: &'static str| async move {
        for k in 0..20 {
            let bars: Vec<Bar> = (k * 50..(k + 1) * 50).map(bar).collect();
            store.insert_bars(&sym(symbol), &bars, now()).await?;
        }
        Ok::<_, StoreError>(())
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(write(a.clone(), "BTC/USD")),
        tokio::spawn(write(b.clone(), "ETH/USD"))
    );
    ra.unwrap().unwrap();
    rb.unwrap().unwrap();
    assert_eq!(
        a.bar_counts().await.unwrap(),
        vec![(sym("BTC/USD"), 1000), (sym("ETH/USD"), 1000)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_new_store_from_many_tasks_at_once_migrates_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.sqlite");
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { Store::open(&crate::store_at(&db).await, None).await })
        })
        .collect();
    for open in opens {
        let store = open.await.unwrap().unwrap();
        store.close().await;
    }
    let store = Store::open(&crate::store_at(&db).await, None)
        .await
        .unwrap();
    assert!(store.bar_counts().await.unwrap().is_empty());
}

#[test]
fn order_states_round_trip_their_column_text_and_say_what_is_left_to_do() {
    use trader_store::OrderState;
    for s in [
        "planned",
        "unknown",
        "open",
        "partially_filled",
        "filled",
        "canceled",
        "expired",
        "rejected",
        "held_by_broker",
    ] {
        assert_eq!(OrderState::parse(s).as_str(), s);
    }
    assert_eq!(
        OrderState::parse("held_by_broker"),
        OrderState::Other("held_by_broker".to_owned())
    );
    let resend: Vec<&str> = ["planned", "unknown", "open", "filled"]
        .into_iter()
        .filter(|s| OrderState::parse(s).needs_resend())
        .collect();
    assert_eq!(resend, ["planned", "unknown"]);
    let open: Vec<&str> = ["planned", "partially_filled", "filled", "rejected"]
        .into_iter()
        .filter(|s| OrderState::parse(s).is_unsettled())
        .collect();
    assert_eq!(open, ["planned", "partially_filled"]);
    assert_eq!(
        OrderState::from(&trader_core::OrderStatus::PartiallyFilled),
        OrderState::PartiallyFilled
    );
}

#[tokio::test]
async fn one_trader_per_store_and_profile_on_either_backend() {
    // The file lock beside a SQLite store; PostgreSQL's advisory lock with
    // TRADER_TEST_PG_URL.
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store_at(&dir.path().join("s.sqlite")).await;
    let first = ProfileLock::acquire(&store, "lean", "trader run", T0)
        .await
        .unwrap();
    let err = ProfileLock::acquire(&store, "lean", "trader run", T0)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Locked { .. }), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())) && msg.contains("lean"),
        "{msg}"
    );
    // Another profile of the same store is another lock.
    let full = ProfileLock::acquire(&store, "full", "trader run", T0)
        .await
        .unwrap();
    first.release().await;
    let next = ProfileLock::acquire(&store, "lean", "trader run", T0)
        .await
        .unwrap();
    assert_eq!(next.taken_over(), None, "released cleanly");
    // A holder that ends without releasing (killed): its lock ends with it,
    // however soon the server notices.
    drop(next);
    let started = std::time::Instant::now();
    let again = loop {
        match ProfileLock::acquire(&store, "lean", "trader run", T0).await {
            Ok(lock) => break lock,
            Err(StoreError::Locked { .. }) if started.elapsed().as_secs() < 10 => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    again.release().await;
    full.release().await;
}

#[tokio::test]
async fn a_connection_dropped_mid_hour_fails_that_write_whole_and_the_next_one_lands_once() {
    // PostgreSQL's: the server ends the store's connection between two
    // writes of an hour (a restart, a network cut). SQLite has no server.
    let dir = tempfile::tempdir().unwrap();
    let location = crate::store_at(&dir.path().join("s.sqlite")).await;
    let StoreLocation::Postgres(url) = &location else {
        eprintln!("not run: a SQLite store has no connection to drop");
        return;
    };
    let store = Store::open(&location, None).await.unwrap();
    let run = store
        .start_run("lean", "h", "{}", RunMode::Live, T0)
        .await
        .unwrap()
        .run_id;
    let admin = sqlx::PgPool::connect(url.expose()).await.unwrap();
    let cut = "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
               WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let ended: i64 = sqlx::query_scalar(cut).fetch_one(&admin).await.unwrap();
    assert!(ended >= 1, "no store connection to end");
    // The hour's decision and its orders: refused with the store named, or
    // written on a new connection; never half.
    let first = store
        .record_decision(run, &decision(T0), &[order("lean-a"), order("lean-b")], T0)
        .await;
    eprintln!("the first write after the cut: {first:?}");
    if let Err(e) = &first {
        assert!(matches!(e, StoreError::Query { .. }), "{e:?}");
        assert!(e.to_string().contains(&location.to_string()), "{e}");
        assert!(!store.decided(run, T0).await.unwrap(), "half written");
        // The engine's next attempt (the restart's) lands once.
        store
            .record_decision(run, &decision(T0), &[order("lean-a"), order("lean-b")], T0)
            .await
            .unwrap();
    }
    assert!(store.decided(run, T0).await.unwrap());
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(orders, 2);
    let again = store
        .record_decision(run, &decision(T0), &[order("lean-a")], T0)
        .await;
    assert!(again.is_err(), "an hour decided twice");
    admin.close().await;
}

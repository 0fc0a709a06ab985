//! Ensemble versions and adoptions on real SQLite files (and the memory
//! recorder): recorded once per version, read back in order, named by each
//! decision, shown by the profile's status; a bad adoption writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use trader_core::StoreLocation;
use trader_store::{
    DecisionRecord, EnsembleAdoption, MemoryRecorder, Recorder, RunMode, Store, StoreError,
    VersionMember,
};

const T0: i64 = 1_530_000_000; // on the hour

fn members(names: &[&str]) -> Vec<VersionMember> {
    names
        .iter()
        .zip(0..)
        .map(|(n, rank)| VersionMember {
            name: (*n).to_owned(),
            rank,
            score: 1.5 - f64::from(rank) * 0.25,
        })
        .collect()
}

fn first(version: &str, names: &[&str]) -> EnsembleAdoption {
    EnsembleAdoption {
        version: version.to_owned(),
        members: members(names),
        previous: None,
        adopted_at: T0 - 60,
        after_hour: None,
        load_ms: 812,
        rss_before: None,
        rss_after: Some(512 << 20),
    }
}

fn swap(version: &str, names: &[&str], previous: &str, after_hour: i64) -> EnsembleAdoption {
    EnsembleAdoption {
        version: version.to_owned(),
        members: members(names),
        previous: Some(previous.to_owned()),
        adopted_at: after_hour + 3600 + 30,
        after_hour: Some(after_hour),
        load_ms: 95,
        rss_before: Some(512 << 20),
        rss_after: Some(530 << 20),
    }
}

fn decision(t: i64, version: Option<&str>) -> DecisionRecord {
    DecisionRecord {
        bar_t: t,
        member_actions: vec![vec![0.5]],
        aggregate: vec![0.5],
        target_weights: BTreeMap::from([("BTC/USD".to_owned(), 0.5)]),
        latency_us: 10,
        skipped_reason: None,
        ensemble_version: version.map(str::to_owned),
    }
}

async fn live_run(store: &Store, profile: &str) -> i64 {
    store
        .start_run(profile, "hash", "{}", RunMode::Live, T0)
        .await
        .unwrap()
        .run_id
}

async fn count(store: &Store, table: &str) -> i64 {
    // A second connection to the same store, as `sqlite3` or `psql` would read it.
    let pool = crate::raw_pool(store.location()).await;
    let n = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn two_adoptions_of_a_run_come_back_in_order_with_their_members() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let run = live_run(&store, "lean").await;
    let a = first("3f9a1c0b7d2e", &["trial_0003", "trial_0001", "trial_0007"]);
    let b = swap(
        "9c4e00aa1b2f",
        &["trial_0011", "trial_0003"],
        "3f9a1c0b7d2e",
        T0 + 5 * 3600,
    );
    store.record_adoption(run, &a).await.unwrap();
    store.record_adoption(run, &b).await.unwrap();
    let other = live_run(&store, "other").await;
    assert_eq!(
        store.adoptions_of_run(run).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(store.adoptions_of_run(other).await.unwrap().is_empty());

    // Read back after a reopen: nothing was only in memory.
    let location = store.location().clone();
    store.close().await;
    let store = Store::open(&location, None).await.unwrap();
    assert_eq!(store.adoptions_of_run(run).await.unwrap(), vec![a, b]);
}

#[tokio::test]
async fn a_version_adopted_again_after_a_restart_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let run = live_run(&store, "lean").await;
    let a = first("3f9a1c0b7d2e", &["trial_0003", "trial_0001"]);
    store.record_adoption(run, &a).await.unwrap();
    // Restarted: the live run resumes and adopts the same version again.
    let location = store.location().clone();
    store.close().await;
    let store = Store::open(&location, None).await.unwrap();
    let resumed = store
        .start_run("lean", "hash", "{}", RunMode::Live, T0 + 7200)
        .await
        .unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.run_id, run);
    let again = EnsembleAdoption {
        adopted_at: T0 + 7200,
        after_hour: Some(T0),
        previous: Some(a.version.clone()),
        ..a.clone()
    };
    store.record_adoption(run, &again).await.unwrap();

    assert_eq!(count(&store, "ensemble_versions").await, 1);
    assert_eq!(count(&store, "ensemble_adoptions").await, 2);
    assert_eq!(
        store.adoptions_of_run(run).await.unwrap(),
        vec![a.clone(), again]
    );
    let status = store.profile_status("lean").await.unwrap();
    let current = status.ensemble.unwrap();
    assert_eq!(current.adoptions_in_run, 2);
    assert_eq!(current.adopted_at, T0 + 7200);
}

#[tokio::test]
async fn a_decision_names_its_ensemble_version_in_sqlite_and_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let memory = MemoryRecorder::new();
    let run = live_run(&store, "lean").await;
    let decisions = [
        decision(T0, Some("3f9a1c0b7d2e")),
        decision(T0 + 3600, Some("9c4e00aa1b2f")),
        decision(T0 + 7200, None),
    ];
    for d in &decisions {
        store.record_decision(run, d, &[], T0).await.unwrap();
        memory.record_decision(run, d, &[], T0).await.unwrap();
    }
    let want = vec![
        Some("3f9a1c0b7d2e".to_owned()),
        Some("9c4e00aa1b2f".to_owned()),
        None,
    ];
    let sqlite = store.decisions_of_run(run).await.unwrap();
    let versions = |rows: &[trader_store::DecisionRow]| {
        rows.iter()
            .map(|d| d.ensemble_version.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&sqlite), want);
    assert_eq!(sqlite, memory.decisions_of_run(run).await.unwrap());
    // The other columns keep their text.
    assert_eq!(sqlite[0].aggregate, "[0.5]");
    assert_eq!(sqlite[0].target_weights, r#"{"BTC/USD":0.5}"#);
    // The status's newest decision names its version (None here).
    let last = store
        .profile_status("lean")
        .await
        .unwrap()
        .last_decision
        .unwrap();
    assert_eq!((last.bar_t, last.ensemble_version), (T0 + 7200, None));
    store
        .record_decision(run, &decision(T0 + 10_800, Some("9c4e00aa1b2f")), &[], T0)
        .await
        .unwrap();
    let last = store
        .profile_status("lean")
        .await
        .unwrap()
        .last_decision
        .unwrap();
    assert_eq!(last.ensemble_version.as_deref(), Some("9c4e00aa1b2f"));
    let json = serde_json::to_value(&last).unwrap();
    assert_eq!(json[0], T0 + 10_800, "bar_t keeps its place: {json}");
    assert_eq!(json[3], "9c4e00aa1b2f", "the version comes last: {json}");
}

#[tokio::test]
async fn the_memory_recorder_keeps_adoptions_like_sqlite() {
    let memory = MemoryRecorder::new();
    let a = first("3f9a1c0b7d2e", &["trial_0003", "trial_0001"]);
    let b = swap("9c4e00aa1b2f", &["trial_0011"], "3f9a1c0b7d2e", T0);
    memory.record_adoption(1, &a).await.unwrap();
    memory.record_adoption(1, &b).await.unwrap();
    memory.record_adoption(2, &a).await.unwrap();
    assert_eq!(
        memory.adoptions_of_run(1).await.unwrap(),
        vec![a.clone(), b]
    );
    assert_eq!(memory.adoptions_of_run(2).await.unwrap(), vec![a.clone()]);
    let other_members = EnsembleAdoption {
        members: members(&["trial_0099"]),
        ..a
    };
    assert!(matches!(
        memory.record_adoption(3, &other_members).await,
        Err(StoreError::BadAdoption { .. })
    ));
    assert!(memory.adoptions_of_run(3).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_status_shows_the_newest_adoption_of_the_newest_run_that_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    assert!(
        store
            .profile_status("lean")
            .await
            .unwrap()
            .ensemble
            .is_none()
    );
    let run = live_run(&store, "lean").await;
    assert!(
        store
            .profile_status("lean")
            .await
            .unwrap()
            .ensemble
            .is_none()
    );
    let a = first("3f9a1c0b7d2e", &["trial_0003", "trial_0001"]);
    let b = swap(
        "9c4e00aa1b2f",
        &["trial_0011", "trial_0003"],
        "3f9a1c0b7d2e",
        T0,
    );
    store.record_adoption(run, &a).await.unwrap();
    store.record_adoption(run, &b).await.unwrap();
    // Another profile's adoption is not this one's.
    let other = live_run(&store, "other").await;
    store
        .record_adoption(other, &first("000000000000", &["x"]))
        .await
        .unwrap();

    let current = store
        .profile_status("lean")
        .await
        .unwrap()
        .ensemble
        .unwrap();
    assert_eq!(current.run_id, run);
    assert_eq!(current.version, b.version);
    assert_eq!(current.members, b.members);
    assert_eq!(current.adopted_at, b.adopted_at);
    assert_eq!(current.adoptions_in_run, 2);

    // A newer run with no adoption yet: the status still shows the last
    // known one, naming its run.
    store.finish_run(run, T0 + 9000).await.unwrap();
    let newer = live_run(&store, "lean").await;
    assert_ne!(newer, run);
    let status = store.profile_status("lean").await.unwrap();
    assert_eq!(status.run.as_ref().unwrap().id, newer);
    assert_eq!(status.ensemble.as_ref().unwrap().run_id, run);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["ensemble"]["version"], "9c4e00aa1b2f", "{json}");
    assert_eq!(
        json["ensemble"]["members"][0]["name"], "trial_0011",
        "{json}"
    );
    assert_eq!(json["ensemble"]["adoptions_in_run"], 2, "{json}");
}

#[tokio::test]
async fn a_bad_adoption_is_refused_and_nothing_already_stored_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let run = live_run(&store, "lean").await;
    let a = first("3f9a1c0b7d2e", &["trial_0003", "trial_0001"]);
    store.record_adoption(run, &a).await.unwrap();
    store
        .record_decision(run, &decision(T0, Some("3f9a1c0b7d2e")), &[], T0)
        .await
        .unwrap();

    // An unknown run: the foreign key (on in every store) refuses it, and
    // the new version it named is rolled back with it.
    let unknown = first("deadbeef0000", &["trial_0042"]);
    let err = store
        .record_adoption(run + 100, &unknown)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
    // A known version with other members, an empty version, no members, a
    // score JSON cannot hold.
    let bad = [
        EnsembleAdoption {
            members: members(&["trial_0099"]),
            ..a.clone()
        },
        EnsembleAdoption {
            version: " ".to_owned(),
            ..a.clone()
        },
        EnsembleAdoption {
            version: "aaaaaaaaaaaa".to_owned(),
            members: Vec::new(),
            ..a.clone()
        },
        EnsembleAdoption {
            version: "bbbbbbbbbbbb".to_owned(),
            members: vec![VersionMember {
                name: "trial_0001".to_owned(),
                rank: 0,
                score: f64::NAN,
            }],
            ..a.clone()
        },
    ];
    for b in &bad {
        let err = store.record_adoption(run, b).await.unwrap_err();
        assert!(matches!(err, StoreError::BadAdoption { .. }), "{err:?}");
        assert!(err.to_string().contains("not recorded"), "{err}");
    }

    // Nothing of the refused ones, everything of before, and still usable.
    assert_eq!(count(&store, "ensemble_versions").await, 1);
    assert_eq!(count(&store, "ensemble_adoptions").await, 1);
    assert_eq!(store.adoptions_of_run(run).await.unwrap(), vec![a.clone()]);
    let b = swap("9c4e00aa1b2f", &["trial_0011"], &a.version, T0);
    store.record_adoption(run, &b).await.unwrap();
    assert_eq!(store.adoptions_of_run(run).await.unwrap(), vec![a, b]);
    assert_eq!(store.decisions_of_run(run).await.unwrap().len(), 1);
}

/// Writes the migrations before 0003 into `dir`, as a store made by the
/// previous version was migrated.
fn migrations_before_versions(dir: &Path) {
    fs_err::create_dir_all(dir).unwrap();
    for (name, text) in [
        (
            "0001_history_and_run_records.sql",
            include_str!("../../../../migrations/sqlite/0001_history_and_run_records.sql"),
        ),
        (
            "0002_run_outcomes.sql",
            include_str!("../../../../migrations/sqlite/0002_run_outcomes.sql"),
        ),
    ] {
        fs_err::write(dir.join(name), text).unwrap();
    }
}

#[tokio::test]
async fn a_store_made_before_versions_migrates_and_its_decisions_have_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    let old = dir.path().join("old_migrations");
    migrations_before_versions(&old);
    // The previous version's store: its migrations, a run and a decision.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO runs (id, profile, config_hash, budget_verdict, mode, started_at) \
         VALUES (1, 'lean', 'hash', '{}', 'live', ?)",
    )
    .bind(T0)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO decisions (run_id, bar_t, member_actions, aggregate, target_weights, \
         latency_us) VALUES (1, ?, '[[0.5]]', '[0.5]', '{\"BTC/USD\":0.5}', 10)",
    )
    .bind(T0)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // Opened by this version: migrated, the old decision without a version
    // (an upgrade of a SQLite file: this test is SQLite's alone).
    let store = Store::open(&StoreLocation::Sqlite(path.clone()), None)
        .await
        .unwrap();
    let rows = store.decisions_of_run(1).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ensemble_version, None);
    assert_eq!(rows[0].target_weights, r#"{"BTC/USD":0.5}"#);
    let status = store.profile_status("lean").await.unwrap();
    assert_eq!(
        status.last_decision.as_ref().unwrap().ensemble_version,
        None
    );
    assert!(status.ensemble.is_none());

    // The run resumes and goes on with versions.
    let resumed = store
        .start_run("lean", "hash", "{}", RunMode::Live, T0 + 3600)
        .await
        .unwrap();
    assert_eq!((resumed.run_id, resumed.resumed), (1, true));
    let a = first("3f9a1c0b7d2e", &["trial_0003"]);
    store.record_adoption(1, &a).await.unwrap();
    store
        .record_decision(1, &decision(T0 + 3600, Some("3f9a1c0b7d2e")), &[], T0)
        .await
        .unwrap();
    let versions: Vec<_> = store
        .decisions_of_run(1)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.ensemble_version)
        .collect();
    assert_eq!(versions, vec![None, Some("3f9a1c0b7d2e".to_owned())]);
    assert_eq!(store.adoptions_of_run(1).await.unwrap(), vec![a]);
    store.close().await;
    // Opened again: nothing left to migrate.
    let store = Store::open(&StoreLocation::Sqlite(path), None)
        .await
        .unwrap();
    assert_eq!(store.decisions_of_run(1).await.unwrap().len(), 2);
}

//! The store on real SQLite files through the real migrations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::{DateTime, Utc};
use trader_core::{Bar, StoreLocation, Symbol};
use trader_store::Recorder as _;
use trader_store::{HistoryWindow, InsertReport, Store, StoreError};

const T0: i64 = 1_530_000_000; // 2018-06-26T08:00:00Z, on the hour

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + 1000 * 3600, 0).unwrap()
}

fn bar(hour: i64) -> Bar {
    let c = 100.0 + hour as f64;
    Bar {
        t: T0 + hour * 3600,
        open: c - 0.5,
        high: c + 1.0,
        low: c - 1.0,
        close: c,
        volume: 2.5,
    }
}

fn btc() -> Symbol {
    "BTC/USD".parse().unwrap()
}

async fn all_bars(store: &Store) -> Vec<Bar> {
    store.latest_bars(&btc(), 100_000, None).await.unwrap()
}

#[tokio::test]
async fn prune_keeps_exactly_the_newest_history_hours() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &crate::store_at(&dir.path().join("s.sqlite")).await,
        Some(72),
    )
    .await
    .unwrap();
    let bars: Vec<Bar> = (0..200).map(bar).collect();
    for chunk in bars.chunks(64) {
        store.insert_bars(&btc(), chunk, now()).await.unwrap();
    }
    let held = all_bars(&store).await;
    assert_eq!(held.len(), 72);
    assert_eq!(held[0].t, bar(128).t);
    assert_eq!(held[71].t, bar(199).t);
}

#[tokio::test]
async fn same_bar_twice_changes_nothing_and_a_correction_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let r = store
        .insert_bars(&btc(), &[bar(0), bar(1)], now())
        .await
        .unwrap();
    assert_eq!(
        r,
        InsertReport {
            inserted: 2,
            ..Default::default()
        }
    );
    let r = store
        .insert_bars(&btc(), &[bar(0), bar(1)], now())
        .await
        .unwrap();
    assert_eq!(
        r,
        InsertReport {
            unchanged: 2,
            ..Default::default()
        }
    );
    let corrected = Bar {
        close: 100.25,
        ..bar(1)
    };
    let r = store
        .insert_bars(&btc(), &[corrected], now())
        .await
        .unwrap();
    assert_eq!(
        r,
        InsertReport {
            replaced: 1,
            ..Default::default()
        }
    );
    assert_eq!(all_bars(&store).await, vec![bar(0), corrected]);
}

#[tokio::test]
async fn out_of_order_bars_are_placed_right() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &crate::store_at(&dir.path().join("s.sqlite")).await,
        Some(10),
    )
    .await
    .unwrap();
    store
        .insert_bars(&btc(), &[bar(5), bar(3), bar(4)], now())
        .await
        .unwrap();
    store.insert_bars(&btc(), &[bar(1)], now()).await.unwrap();
    let t: Vec<i64> = all_bars(&store)
        .await
        .iter()
        .map(|b| (b.t - T0) / 3600)
        .collect();
    assert_eq!(t, [1, 3, 4, 5]);
}

#[tokio::test]
async fn each_bad_bar_is_refused_and_nothing_stored_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    store
        .insert_bars(&btc(), &[bar(0), bar(1), bar(2)], now())
        .await
        .unwrap();
    let before = all_bars(&store).await;
    let not_closed = Bar {
        t: now().timestamp() - now().timestamp() % 3600,
        ..bar(3)
    };
    let cases = [
        (
            Bar {
                close: f64::INFINITY,
                ..bar(3)
            },
            "close is inf",
        ),
        (
            Bar {
                open: -1.0,
                ..bar(3)
            },
            "open is -1",
        ),
        (
            Bar {
                high: 1.0,
                ..bar(3)
            },
            "is below max(open, close)",
        ),
        (
            Bar {
                low: 500.0,
                ..bar(3)
            },
            "is above min(open, close)",
        ),
        (
            Bar {
                volume: -2.0,
                ..bar(3)
            },
            "volume -2 is negative",
        ),
        (
            Bar {
                t: bar(3).t + 1,
                ..bar(3)
            },
            "not on the hour",
        ),
        (not_closed, "not closed yet"),
    ];
    for (bad, want) in cases {
        // The good bar before the bad one in the same batch is not stored either.
        let err = store
            .insert_bars(&btc(), &[bar(4), bad], now())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::BadBar { .. }));
        // The bar's own error is the source, printed once after the message.
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(!err.to_string().contains(&cause), "{err}");
        let msg = format!("{err}: {cause}");
        assert!(
            msg.contains(want) && msg.contains("BTC/USD") && msg.contains("nothing of this batch"),
            "{msg}"
        );
        assert_eq!(all_bars(&store).await, before, "{want}");
    }
}

#[tokio::test]
async fn a_restart_reads_back_the_window_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let symbols = [btc()];
    let mut held = HistoryWindow::new(&symbols, 48);
    {
        let store = Store::open(&crate::store_at(&path).await, Some(48))
            .await
            .unwrap();
        for hour in (0..120).rev().step_by(1) {
            let b = bar(hour);
            store.insert_bars(&btc(), &[b], now()).await.unwrap();
            held.push(&btc(), b);
        }
        store.close().await;
    }
    let store = Store::open(&crate::store_at(&path).await, Some(48))
        .await
        .unwrap();
    let restarted = HistoryWindow::load(&store, &symbols, 48).await.unwrap();
    assert_eq!(restarted, held);
    assert_eq!(restarted.bars(&btc()).len(), 48);
}

#[tokio::test]
async fn opening_an_unwritable_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    fs_err::write(&blocker, b"x").unwrap();
    let err = Store::open(&StoreLocation::Sqlite(blocker.join("s.sqlite")), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s.sqlite"), "{err}");
}

#[tokio::test]
async fn within_one_batch_the_later_bar_for_an_hour_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let later = Bar {
        close: 100.75,
        ..bar(0)
    };
    let r = store
        .insert_bars(&btc(), &[bar(0), bar(1), later], now())
        .await
        .unwrap();
    assert_eq!(r.inserted, 2);
    assert_eq!(all_bars(&store).await, vec![later, bar(1)]);
}

#[tokio::test]
async fn a_refused_connection_names_the_database_without_its_password() {
    // Nothing listens on port 1 of loopback: refused at once, and retried
    // by sqlx until the connect timeout (10 s by default; 200 ms here,
    // which the open keeps to).
    let store = StoreLocation::parse(
        "postgres://trader:hunter2@127.0.0.1:1/trading",
        Path::new(""),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = Store::open_within(&store, None, std::time::Duration::from_millis(200))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "the open took {took:?} with a 200 ms connect timeout"
    );
    let msg = format!("{err:#} {:?}", std::error::Error::source(&err));
    assert!(matches!(err, StoreError::Open { .. }), "{msg}");
    assert!(msg.contains("127.0.0.1:1/trading"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn a_store_of_a_newer_schema_is_refused_and_left_as_it_was() {
    // A migration this binary does not know, as a newer `trader` would
    // leave it; on SQLite and (with TRADER_TEST_PG_URL) PostgreSQL.
    let dir = tempfile::tempdir().unwrap();
    let location = crate::store_at(&dir.path().join("s.sqlite")).await;
    let store = Store::open(&location, None).await.unwrap();
    store
        .insert_bars(&btc(), &[bar(0), bar(1)], now())
        .await
        .unwrap();
    store.close().await;
    let newer = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) SELECT 99, 'from a newer trader', TRUE, checksum, 0 \
                 FROM _sqlx_migrations WHERE version = 1";
    exec_raw(&location, newer).await;
    let err = Store::open(&location, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Migrate { .. }), "{err:?}");
    let chain = format!("{:?}", std::error::Error::source(&err));
    assert!(chain.contains("99"), "{chain}");
    // Nothing of it was touched: without the newer migration it opens with
    // its bars.
    exec_raw(&location, "DELETE FROM _sqlx_migrations WHERE version = 99").await;
    let store = Store::open(&location, None).await.unwrap();
    assert_eq!(store.bar_counts().await.unwrap(), vec![(btc(), 2)]);
}

/// `sql` on the store through a connection of its own, as `sqlite3` or
/// `psql` would run it.
async fn exec_raw(location: &StoreLocation, sql: &str) {
    let pool = crate::raw_pool(location).await;
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

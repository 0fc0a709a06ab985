//! `Store::import_recorded` and `Store::features_at` on real SQLite files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::DateTime;
use trader_core::{Bar, FeatureName, ManualClock, Symbol, Unavailable};
use trader_store::{FeaturesAt, IMPORT_BATCH, Store, StoreError};

const T0: i64 = 1_530_000_000; // on the hour

fn clock() -> ManualClock {
    ManualClock::new(DateTime::from_timestamp(T0 + 10_000 * 3600, 0).unwrap())
}

fn bar(hour: i64) -> Bar {
    let c = 100.0 + (hour % 50) as f64;
    Bar {
        t: T0 + hour * 3600,
        open: c - 0.5,
        high: c + 1.0,
        low: c - 1.0,
        close: c,
        volume: 2.5,
    }
}

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn files(n_btc: i64, n_eth: i64) -> Vec<(Symbol, PathBuf, Vec<Bar>)> {
    vec![
        (
            sym("BTC/USD"),
            PathBuf::from("BTCUSD.csv"),
            (0..n_btc).map(bar).collect(),
        ),
        (
            sym("ETH/USD"),
            PathBuf::from("ETHUSD.csv"),
            (0..n_eth).map(bar).collect(),
        ),
    ]
}

async fn held(store: &Store, s: &str) -> usize {
    store
        .latest_bars(&sym(s), 100_000, None)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn an_import_stopped_after_n_batches_writes_exactly_n_batches_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let stop = AtomicBool::new(false);
    let mut batches = 0;
    let report = store
        .import_recorded(&files(2500, 700), &clock(), &stop, |_, n| {
            if n > 0 {
                batches += 1;
                if batches == 2 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        })
        .await
        .unwrap();
    assert!(report.stopped);
    assert_eq!(report.written(), 2 * IMPORT_BATCH as u64);
    assert_eq!(report.symbols.len(), 1);
    assert_eq!(report.symbols[0].inserted, 2000);
    assert_eq!(report.symbols[0].rows, 2500);
    assert_eq!(held(&store, "BTC/USD").await, 2 * IMPORT_BATCH);
    assert_eq!(held(&store, "ETH/USD").await, 0);
    store.close().await;
}

#[tokio::test]
async fn a_whole_import_reports_each_symbol_and_again_reports_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &crate::store_at(&dir.path().join("s.sqlite")).await,
        Some(2000),
    )
    .await
    .unwrap();
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let first = store
        .import_recorded(&files(2500, 700), &clock(), &stop, |s, n| {
            seen.push((s.to_string(), n));
        })
        .await
        .unwrap();
    assert!(!first.stopped);
    let btc = &first.symbols[0];
    assert_eq!(
        (btc.rows, btc.inserted, btc.unchanged, btc.held),
        (2500, 2500, 0, 2000)
    );
    assert_eq!(btc.pruned, 500);
    assert_eq!(btc.file, PathBuf::from("BTCUSD.csv"));
    let eth = &first.symbols[1];
    assert_eq!((eth.rows, eth.inserted, eth.held), (700, 700, 700));
    assert_eq!(
        seen,
        [
            ("BTC/USD".to_owned(), 0),
            ("BTC/USD".to_owned(), 1000),
            ("BTC/USD".to_owned(), 1000),
            ("BTC/USD".to_owned(), 500),
            ("ETH/USD".to_owned(), 0),
            ("ETH/USD".to_owned(), 700),
        ]
    );
    let again = store
        .import_recorded(&files(0, 700), &clock(), &stop, |_, _| {})
        .await
        .unwrap();
    let eth = &again.symbols[1];
    assert_eq!(
        (eth.inserted, eth.replaced, eth.unchanged, eth.held),
        (0, 0, 700, 700)
    );
    assert_eq!(again.written(), 0);
    store.close().await;
}

#[tokio::test]
async fn a_bad_bar_names_its_file_and_keeps_the_batches_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    let mut input = files(1500, 0);
    input[0].2[1200].volume = -1.0;
    let err = store
        .import_recorded(&input, &clock(), &AtomicBool::new(false), |_, _| {})
        .await
        .unwrap_err();
    match &err {
        StoreError::Import { path, source } => {
            assert_eq!(path, &PathBuf::from("BTCUSD.csv"));
            assert!(matches!(**source, StoreError::BadBar { .. }), "{source}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.to_string(), "importing BTCUSD.csv");
    assert_eq!(held(&store, "BTC/USD").await, IMPORT_BATCH);
    store.close().await;
}

#[tokio::test]
async fn features_at_a_stored_bar_give_every_catalog_feature_and_none_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&crate::store_at(&dir.path().join("s.sqlite")).await, None)
        .await
        .unwrap();
    store
        .import_recorded(&files(200, 0), &clock(), &AtomicBool::new(false), |_, _| {})
        .await
        .unwrap();
    let btc = sym("BTC/USD");
    assert_eq!(store.features_at(&btc, bar(200).t).await.unwrap(), None);
    assert_eq!(
        store.features_at(&sym("ETH/USD"), bar(5).t).await.unwrap(),
        None
    );
    let late = store.features_at(&btc, bar(150).t).await.unwrap().unwrap();
    let names: Vec<FeatureName> = late.values.iter().map(|(f, _)| *f).collect();
    assert_eq!(names, FeatureName::ALL);
    assert!(late.values.iter().all(|(_, v)| v.is_ok()), "{late:?}");
    let bars = store
        .latest_bars(&btc, 200, Some(bar(150).t))
        .await
        .unwrap();
    assert_eq!(late, FeaturesAt::of(&bars));
    let early = store.features_at(&btc, bar(0).t).await.unwrap().unwrap();
    assert!(
        early
            .values
            .iter()
            .any(|(_, v)| matches!(v, Err(Unavailable::TooShort { have: 1, .. }))),
        "{early:?}"
    );
    store.close().await;
}

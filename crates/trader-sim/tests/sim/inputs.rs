//! What the simulator refuses at start: a bar whose price is not a finite
//! positive number (it would serve `"c": null`), and a key id given twice
//! (a second pair would silently replace the first account).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::DateTime;
use trader_core::{Bar, ManualClock, Symbol};
use trader_sim::{FaultConfig, SimConfig, SimError, SimKeys, serve};

const T: i64 = 1_504_224_000; // 2017-09-01T00:00:00Z

fn keys(id: &str) -> SimKeys {
    SimKeys {
        key_id: id.to_owned(),
        secret_key: format!("secret-{id}"),
    }
}

fn bar(t: i64, close: f64) -> Bar {
    Bar {
        t,
        open: 100.0,
        high: 110.0,
        low: 90.0,
        close,
        volume: 1.0,
    }
}

fn config(bars: Vec<Bar>, accounts: Vec<SimKeys>) -> SimConfig {
    let symbol: Symbol = "BTC/USD".parse().unwrap();
    SimConfig {
        bars: BTreeMap::from([(symbol, bars)]),
        accounts,
        starting_cash: 100_000.0,
        clock: Arc::new(ManualClock::new(DateTime::from_timestamp(T, 0).unwrap())),
        rate_limit_per_minute: 200,
        faults: FaultConfig::default(),
    }
}

#[tokio::test]
async fn a_nan_or_non_positive_price_is_refused_naming_symbol_hour_and_field() {
    for (close, says) in [
        (f64::NAN, "close is NaN"),
        (0.0, "close is 0"),
        (-5.0, "close is -5"),
    ] {
        let bars = vec![bar(T, 100.0), bar(T + 3600, close)];
        let err = serve(config(bars, vec![keys("PK1")]), 0)
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, SimError::BadBar { .. }), "{err}");
        let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            msg.contains("BTC/USD") && msg.contains("2017-09-01T01:00") && msg.contains(says),
            "{msg}"
        );
    }
    // The same set with good prices starts.
    let sim = serve(config(vec![bar(T, 100.0)], vec![keys("PK1")]), 0)
        .await
        .unwrap();
    sim.stop().await;
}

#[tokio::test]
async fn a_key_id_given_twice_is_refused_naming_it() {
    let err = serve(
        config(
            vec![bar(T, 100.0)],
            vec![keys("PK1"), keys("PK2"), keys("PK1")],
        ),
        0,
    )
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(err, SimError::DuplicateKeyId(ref id) if id == "PK1"),
        "{err}"
    );
    assert!(err.to_string().contains("\"PK1\""), "{err}");
    assert!(trader_sim::check_keys(&[keys("PK1"), keys("PK2")]).is_ok());
}

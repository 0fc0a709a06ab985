//! `trader data import | features` end to end on the shipped recorded data,
//! the history-hours check of a profile, and bad data inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn shipped() -> PathBuf {
    repo().join("data/coinbase_2017_2018")
}

/// The sqlite3 shell's answer to `sql` on `db`.
fn sqlite3(db: &Path, sql: &str) -> String {
    let o = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell is needed by this test (.ci/run installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn import_with_72_hours_leaves_the_newest_72_bars_per_symbol() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("lean.sqlite");
    let o = trader(&[
        "data",
        "import",
        &s(&shipped()),
        "--store",
        &s(&db),
        "--history-hours",
        "72",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["symbols"].as_array().unwrap().len(), 3);
    assert_eq!(v["symbols"][0]["rows"], 11_341);
    assert_eq!(v["symbols"][0]["held"], 72);
    let rows = sqlite3(
        &db,
        "SELECT symbol, COUNT(*), datetime(MIN(t), 'unixepoch'), datetime(MAX(t), 'unixepoch') FROM bars GROUP BY symbol ORDER BY symbol",
    );
    assert_eq!(
        rows,
        "BTC/USD|72|2018-10-14 00:00:00|2018-10-16 23:00:00\n\
         ETH/USD|72|2018-10-14 00:00:00|2018-10-16 23:00:00\n\
         LTC/USD|72|2018-10-14 00:00:00|2018-10-16 23:00:00\n"
    );
    // Importing again: the 72 held bars are unchanged; the older ones pass
    // through and are pruned again, so the cap holds.
    let o = trader(&[
        "data",
        "import",
        &s(&shipped()),
        "--store",
        &s(&db),
        "--history-hours",
        "72",
        "--json",
    ]);
    let v = json(&o);
    assert_eq!(v["symbols"][0]["unchanged"], 72);
    assert_eq!(v["symbols"][0]["inserted"], v["symbols"][0]["pruned"]);
    assert_eq!(sqlite3(&db, "SELECT COUNT(*) FROM bars"), "216\n");
}

fn import_all(tmp: &Path, data: &Path) -> PathBuf {
    let db = tmp.join("all.sqlite");
    let o = trader(&["data", "import", &s(data), "--store", &s(&db)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    db
}

#[test]
fn features_at_a_bar_match_the_pandas_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let db = import_all(tmp.path(), &shipped());
    let fixture: serde_json::Value = serde_json::from_str(
        &fs_err::read_to_string(
            repo().join("crates/trader-core/tests/fixtures/features_pandas.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // The zero-volume stretch and a feed restart.
    for (symbol, at) in [
        ("BTC/USD", "2018-08-10T12:00:00Z"),
        ("ETH/USD", "2017-09-22T21:00:00Z"),
    ] {
        let want = fixture["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["symbol"] == symbol && r["t"] == at)
            .unwrap();
        let o = trader(&[
            "data",
            "features",
            "--store",
            &s(&db),
            "--symbol",
            symbol,
            "--at",
            at,
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json(&o);
        for (name, w) in want["features"].as_object().unwrap() {
            let got = v["features"][name].as_f64().unwrap();
            let w = w.as_f64().unwrap();
            assert!(
                (got - w).abs() <= 1e-8 * w.abs().max(1.0),
                "{symbol} {at} {name}: {got} vs {w}"
            );
        }
    }
}

/// A copy of the shipped set, cut to its first `hours` rows, with `edit`
/// applied to the BTC file's lines.
fn small_set(tmp: &Path, hours: usize, edit: impl Fn(&mut Vec<String>)) -> PathBuf {
    let dir = tmp.join("set");
    fs_err::create_dir_all(&dir).unwrap();
    for f in ["BTCUSD.csv", "ETHUSD.csv", "LTCUSD.csv"] {
        let text = fs_err::read_to_string(shipped().join(f)).unwrap();
        let mut lines: Vec<String> = text.lines().take(hours + 1).map(str::to_owned).collect();
        if f == "BTCUSD.csv" {
            edit(&mut lines);
        }
        fs_err::write(dir.join(f), lines.join("\n") + "\n").unwrap();
    }
    dir
}

#[test]
fn a_gap_makes_features_unavailable_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_set(tmp.path(), 100, |lines| {
        lines.remove(80); // one hour missing
    });
    let db = import_all(tmp.path(), &data);
    // 2017-07-05T10Z is the 96th hour: its 60-bar windows reach back over the gap.
    let o = trader(&[
        "data",
        "features",
        "--store",
        &s(&db),
        "--symbol",
        "BTC/USD",
        "--at",
        "2017-07-05T10:00:00Z",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert!(v["features"]["sma_ratio_60"].is_null());
    assert!(
        v["unavailable"]["sma_ratio_60"]
            .as_str()
            .unwrap()
            .contains("gap"),
        "{v}"
    );
    assert!(
        v["features"]["log_return"].is_f64(),
        "the last two hours are contiguous: {v}"
    );
}

#[test]
fn a_bad_bar_is_refused_naming_file_and_hour_and_nothing_stored_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let db = import_all(tmp.path(), &small_set(tmp.path(), 50, |_| {}));
    let before = sqlite3(&db, "SELECT symbol, t, close FROM bars ORDER BY symbol, t");
    let bad = tmp.path().join("bad");
    fs_err::create_dir_all(&bad).unwrap();
    // high below the close, for an hour that is already stored.
    fs_err::write(
        bad.join("BTCUSD.csv"),
        "timestamp,open,high,low,close,volume\n2017-07-01T12:00:00Z,2509.17,2500,2484.99,2488.43,157.36\n",
    )
    .unwrap();
    let o = trader(&["data", "import", &s(&bad), "--store", &s(&db)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("BTCUSD.csv")
            && err.contains("2017-07-01T12:00:00")
            && err.contains("high 2500"),
        "{err}"
    );
    assert_eq!(
        sqlite3(&db, "SELECT symbol, t, close FROM bars ORDER BY symbol, t"),
        before
    );
}

#[test]
fn bad_data_directories_and_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("x.sqlite");
    let empty = tmp.path().join("empty");
    fs_err::create_dir_all(&empty).unwrap();
    let o = trader(&["data", "import", &s(&empty), "--store", &s(&db)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no CSV files in"), "{}", stderr(&o));

    let header = tmp.path().join("header");
    fs_err::create_dir_all(&header).unwrap();
    fs_err::write(header.join("BTCUSD.csv"), "time,o,h,l,c,v\n").unwrap();
    let o = trader(&["data", "import", &s(&header), "--store", &s(&db)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("BTCUSD.csv: header is \"time,o,h,l,c,v\""),
        "{}",
        stderr(&o)
    );

    let stamp = tmp.path().join("stamp");
    fs_err::create_dir_all(&stamp).unwrap();
    fs_err::write(
        stamp.join("BTCUSD.csv"),
        "timestamp,open,high,low,close,volume\nyesterday,1,1,1,1,1\n",
    )
    .unwrap();
    let o = trader(&["data", "import", &s(&stamp), "--store", &s(&db)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 2") && stderr(&o).contains("\"yesterday\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn lean_profile_refuses_a_model_that_needs_83_hours_and_takes_one_that_needs_71() {
    let tmp = tempfile::tempdir().unwrap();
    let configs = tmp.path().join("configs");
    copy_dir(&repo().join("configs"), &configs);
    let lean = configs.join("lean.toml");
    let text = fs_err::read_to_string(&lean).unwrap();
    fs_err::write(&lean, text.replace("../models/demo", "../ens")).unwrap();

    write_linear_ensemble(&tmp.path().join("ens"), 24, &["log_return", "sma_ratio_60"]);
    let o = trader(&[
        "budget",
        "--profile",
        "lean",
        "--config-dir",
        &s(&configs),
        "--top-n",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("history_hours = 72") && err.contains("83 h"),
        "{err}"
    );

    fs_err::remove_dir_all(tmp.path().join("ens")).unwrap();
    write_linear_ensemble(&tmp.path().join("ens"), 12, &["log_return", "sma_ratio_60"]);
    let o = trader(&[
        "budget",
        "--profile",
        "lean",
        "--config-dir",
        &s(&configs),
        "--top-n",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

//! The one loader: sorted on load, bad bars and repeated hours refused with
//! the file, line, symbol, hour and field named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::{DateTime, Utc};
use trader_core::Symbol;
use trader_recorded::{
    RecordedError, read_recorded_csv, read_recorded_set, read_recorded_symbols, recorded_files,
};

const HEADER: &str = "timestamp,open,high,low,close,volume\n";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_600_000_000, 0).unwrap()
}

fn btc() -> Symbol {
    "BTC/USD".parse().unwrap()
}

fn write(dir: &Path, name: &str, rows: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    fs_err::write(&path, format!("{HEADER}{}\n", rows.join("\n"))).unwrap();
    path
}

const ROWS: [&str; 3] = [
    "2018-01-01T00:00:00Z,10,11,9,10.5,3",
    "2018-01-01T01:00:00Z,10.5,12,10,11,4",
    "2018-01-01T02:00:00Z,11,11.5,10.5,11.2,5",
];

#[test]
fn an_unsorted_file_loads_the_same_bars_as_the_sorted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let sorted = read_recorded_csv(&write(tmp.path(), "a.csv", &ROWS), &btc(), now()).unwrap();
    let swapped = read_recorded_csv(
        &write(tmp.path(), "b.csv", &[ROWS[1], ROWS[0], ROWS[2]]),
        &btc(),
        now(),
    )
    .unwrap();
    assert_eq!(sorted.len(), 3);
    assert_eq!(sorted, swapped);
    assert!(sorted.windows(2).all(|w| w[0].t < w[1].t));
}

#[test]
fn a_repeated_identical_hour_is_kept_once_and_a_different_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bars = read_recorded_csv(
        &write(tmp.path(), "a.csv", &[ROWS[0], ROWS[1], ROWS[1], ROWS[2]]),
        &btc(),
        now(),
    )
    .unwrap();
    assert_eq!(bars.len(), 3);
    let path = write(
        tmp.path(),
        "b.csv",
        &[
            ROWS[0],
            ROWS[1],
            ROWS[2],
            "2018-01-01T01:00:00Z,10.5,12,10,11.5,4",
        ],
    );
    let err = read_recorded_csv(&path, &btc(), now()).unwrap_err();
    assert!(matches!(err, RecordedError::DuplicateHour { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("b.csv") && msg.contains("lines 3 and 5") && msg.contains("2018-01-01T01:00"),
        "{msg}"
    );
}

#[test]
fn a_bad_bar_is_refused_naming_file_line_symbol_hour_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    for (row, field) in [
        (
            "2018-01-01T01:00:00Z,10.5,12,10,11,-4",
            "volume -4 is negative",
        ),
        ("2018-01-01T01:00:00Z,10.5,12,10,NaN,4", "close is NaN"),
        (
            "2018-01-01T01:00:00Z,0,12,0,11,4",
            "open is 0; prices must be positive",
        ),
        (
            "2018-01-01T01:00:00Z,-1,12,-2,11,4",
            "open is -1; prices must be positive",
        ),
        ("2018-01-01T01:00:00Z,10.5,inf,10,11,4", "high is inf"),
        ("2018-01-01T01:30:00Z,10.5,12,10,11,4", "not on the hour"),
        (
            "2018-01-01T01:00:00Z,10.5,10.6,10,11,4",
            "high 10.6 is below",
        ),
    ] {
        let path = write(tmp.path(), "BTCUSD.csv", &[ROWS[0], row, ROWS[2]]);
        let err = read_recorded_csv(&path, &btc(), now()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("BTCUSD.csv: line 3: BTC/USD bar at 2018-01-01T01:")
                && msg.contains(field),
            "{msg}"
        );
    }
    // A bar not closed yet at `now` is refused too.
    let early = DateTime::from_timestamp(1_514_768_400, 0).unwrap(); // 2018-01-01T01:00Z
    let path = write(tmp.path(), "BTCUSD.csv", &ROWS);
    let msg = read_recorded_csv(&path, &btc(), early)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("line 3") && msg.contains("not closed yet"),
        "{msg}"
    );
}

#[test]
fn rows_that_do_not_parse_and_wrong_headers_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "x.csv",
        &[ROWS[0], "2018-01-01T01:00:00Z,10.5,twelve,10,11,4"],
    );
    let msg = read_recorded_csv(&path, &btc(), now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("x.csv: line 3"), "{msg}");
    let path = write(tmp.path(), "y.csv", &[ROWS[0], "yesterday,10.5,12,10,11,4"]);
    let msg = read_recorded_csv(&path, &btc(), now())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("y.csv: line 3") && msg.contains("\"yesterday\""),
        "{msg}"
    );
    let path = tmp.path().join("z.csv");
    fs_err::write(&path, "time,open,high,low,close,volume\n").unwrap();
    let msg = read_recorded_csv(&path, &btc(), now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("z.csv: header is"), "{msg}");
    let msg = read_recorded_csv(&tmp.path().join("missing.csv"), &btc(), now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.csv"), "{msg}");
}

#[test]
fn a_set_is_read_by_symbol_and_bad_folders_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "BTCUSD.csv", &ROWS);
    write(tmp.path(), "ETHUSD.csv", &ROWS);
    fs_err::create_dir(tmp.path().join("old.csv")).unwrap();
    let files = recorded_files(tmp.path()).unwrap();
    assert_eq!(files.len(), 2, "a folder named .csv is not a file");
    let set = read_recorded_set(tmp.path(), |s| s.as_str() == "ETH/USD", now()).unwrap();
    assert_eq!(
        set.keys().map(Symbol::as_str).collect::<Vec<_>>(),
        ["ETH/USD"]
    );
    let both: Vec<Symbol> = vec![btc(), "XRP/USD".parse().unwrap()];
    let msg = read_recorded_symbols(tmp.path(), &both, now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("has no CSV for XRP/USD"), "{msg}");
    let empty = tempfile::tempdir().unwrap();
    let msg = recorded_files(empty.path()).unwrap_err().to_string();
    assert!(msg.starts_with("no CSV files in"), "{msg}");
    let file = tmp.path().join("BTCUSD.csv");
    let msg = recorded_files(&file).unwrap_err().to_string();
    assert!(msg.contains("is not a directory"), "{msg}");
    let msg = recorded_files(&tmp.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("nope"), "{msg}");
}

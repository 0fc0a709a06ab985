//! `trader backtest`: deterministic output, the same decisions as a replay
//! through the simulator, and clear errors on bad data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

fn backtest(tmp: &Path, data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp)
        .args(["--config-dir", "configs", "backtest", "--profile", "lean"])
        .args(["--data", &data.display().to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn shipped() -> std::path::PathBuf {
    repo().join("data/coinbase_2017_2018")
}

const WEEK: [&str; 4] = [
    "--from",
    "2018-09-01T00:00:00Z",
    "--to",
    "2018-09-07T23:00:00Z",
];

/// A day of the week with positive targets (15:00 and 23:00): the CLI's
/// replay against backtest.
const DAY: [&str; 4] = [
    "--from",
    "2018-09-04T00:00:00Z",
    "--to",
    "2018-09-04T23:00:00Z",
];

#[test]
fn same_inputs_give_byte_identical_json_and_the_files() {
    let tmp = sandbox();
    let out = tmp.path().join("out");
    let a = backtest(
        tmp.path(),
        &shipped(),
        &[&WEEK[..], &["--json", "--out", &out.display().to_string()]].concat(),
    );
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let b = backtest(tmp.path(), &shipped(), &[&WEEK[..], &["--json"]].concat());
    assert_eq!(a.stdout, b.stdout, "two runs differ");
    let m = json(&a);
    assert_eq!(m["hours"], 168);
    assert_eq!(
        m["decisions"].as_u64().unwrap() + m["skipped"].as_u64().unwrap(),
        168
    );
    assert_eq!(
        fs_err::read_to_string(out.join("metrics.json")).unwrap(),
        stdout(&a)
    );
    let equity = fs_err::read_to_string(out.join("equity.csv")).unwrap();
    assert_eq!(equity.lines().count(), 169);
    assert_eq!(
        fs_err::read_to_string(out.join("decisions.csv"))
            .unwrap()
            .lines()
            .count(),
        169
    );

    // Buy and hold, recomputed here from the CSVs: equal weights from the
    // first hour's close to the last's.
    let close = |file: &str, t: &str| -> f64 {
        let text = fs_err::read_to_string(shipped().join(file)).unwrap();
        let line = text.lines().find(|l| l.starts_with(t)).unwrap();
        line.split(',').nth(4).unwrap().parse().unwrap()
    };
    let bh = ["BTCUSD.csv", "ETHUSD.csv", "LTCUSD.csv"]
        .iter()
        .map(|f| close(f, "2018-09-07T23:00:00Z") / close(f, "2018-09-01T00:00:00Z"))
        .sum::<f64>()
        / 3.0
        - 1.0;
    assert!(
        (m["buy_and_hold_return"].as_f64().unwrap() - bh).abs() < 1e-12,
        "{m}"
    );
    assert!(m["max_drawdown"].as_f64().unwrap() >= 0.0);
    assert!(m["buy_and_hold_max_drawdown"].as_f64().unwrap() > 0.0);
}

/// The target weights column of a backtest's decisions.csv over `span`.
fn backtest_targets(dir: &Path, forward: &str, span: &[&str]) -> Vec<String> {
    let out = dir.join(format!("out-{forward}"));
    let b = backtest(
        dir,
        &shipped(),
        &[
            span,
            &["--out", &out.display().to_string(), "--forward", forward],
        ]
        .concat(),
    );
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    let decisions = fs_err::read_to_string(out.join("decisions.csv")).unwrap();
    csv::Reader::from_reader(decisions.as_bytes())
        .records()
        .map(|r| r.unwrap()[2].to_owned())
        .collect()
}

/// The binary's path of the proof in
/// `crates/trader-engine/tests/replay_matches_backtest.rs` (which compares
/// the whole week in process, on a stepping clock): `trader run` replaying
/// a day through its embedded simulator (over loopback, at a speed that
/// leaves each hour ample time) decides the same target weights at every
/// hour as `trader backtest` over the same day: exactly with `--forward
/// plain` (the same computation as `trader run`), within float rounding
/// with the batched first layer (the default).
#[test]
fn backtest_and_replay_decide_the_same() {
    let tmp = sandbox();
    let plain = backtest_targets(tmp.path(), "plain", &DAY);
    let batched = backtest_targets(tmp.path(), "batched", &DAY);
    let db = tmp.path().join("replay.sqlite");
    let r = Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp.path())
        .args([
            "--config-dir",
            "configs",
            "run",
            "--profile",
            "lean",
            "--no-metrics",
        ])
        .args([
            "--data",
            &shipped().display().to_string(),
            "--store",
            &db.display().to_string(),
        ])
        .args([
            "--from",
            "2018-09-04T00:00:00Z",
            "--until",
            "2018-09-05T00:00:00Z",
            "--speed",
            "30000",
        ])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let q = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT target_weights FROM decisions ORDER BY bar_t")
        .output()
        .unwrap();
    let replay: Vec<String> = String::from_utf8(q.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(replay.len(), 24);
    assert_eq!(plain, replay);
    assert_eq!(batched.len(), 24);
    let weights = |s: &str| -> BTreeMap<String, f64> { serde_json::from_str(s).unwrap() };
    let mut traded = 0;
    for (b, r) in batched.iter().zip(&replay) {
        let (b, r) = (weights(b), weights(r));
        assert_eq!(b.keys().collect::<Vec<_>>(), r.keys().collect::<Vec<_>>());
        for (x, y) in b.values().zip(r.values()) {
            assert!((x - y).abs() <= 1e-6, "batched {b:?} vs replay {r:?}");
            traded += usize::from(*y > 0.0);
        }
    }
    assert!(
        traded > 0,
        "no hour with a positive target: the comparison is empty"
    );
}

#[test]
fn bad_data_is_named() {
    let tmp = sandbox();
    // No CSVs at all.
    let empty = tmp.path().join("empty");
    fs_err::create_dir_all(&empty).unwrap();
    let o = backtest(tmp.path(), &empty, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no CSV files in"), "{}", stderr(&o));
    // A bad header.
    let bad = tmp.path().join("bad");
    fs_err::create_dir_all(&bad).unwrap();
    for f in ["BTCUSD.csv", "ETHUSD.csv", "LTCUSD.csv"] {
        fs_err::copy(shipped().join(f), bad.join(f)).unwrap();
    }
    let text = fs_err::read_to_string(bad.join("ETHUSD.csv")).unwrap();
    fs_err::write(
        bad.join("ETHUSD.csv"),
        text.replacen("timestamp,open", "time,open", 1),
    )
    .unwrap();
    let o = backtest(tmp.path(), &bad, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ETHUSD.csv"), "{}", stderr(&o));
    // A range with no bars.
    let o = backtest(
        tmp.path(),
        &shipped(),
        &[
            "--from",
            "2030-01-01T00:00:00Z",
            "--to",
            "2030-02-01T00:00:00Z",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no hour with bars of every symbol"),
        "{}",
        stderr(&o)
    );
    // Symbols the profile trades but the data lacks.
    let partial = tmp.path().join("partial");
    fs_err::create_dir_all(&partial).unwrap();
    fs_err::copy(shipped().join("BTCUSD.csv"), partial.join("BTCUSD.csv")).unwrap();
    let o = backtest(tmp.path(), &partial, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("has no CSV for ETH/USD, LTC/USD"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn compare_full_and_lean_writes_the_report() {
    let tmp = sandbox();
    let out = tmp.path().join("cmp");
    let o = Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp.path())
        .args([
            "--config-dir",
            "configs",
            "compare",
            "--profiles",
            "full,lean",
        ])
        .args([
            "--data",
            &shipped().display().to_string(),
            "--out",
            &out.display().to_string(),
        ])
        .args([
            "--from",
            "2018-09-01T00:00:00Z",
            "--to",
            "2018-09-03T23:00:00Z",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["profiles"], serde_json::json!(["full", "lean"]));
    assert_eq!(r["agreement"]["hours_compared"], 72);
    let share = r["agreement"]["same_way_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share));
    // Each profile's own backtest, in its own process and directory.
    for p in ["full", "lean"] {
        assert_eq!(r["metrics"][p]["profile"], p);
        assert!(r["resources"][p]["peak_rss_bytes"].as_u64().unwrap() > 1_000_000);
        assert!(
            r["resources"][p]["budget_predicted_rss_bytes"]
                .as_u64()
                .unwrap()
                > 1_000_000
        );
        assert!(out.join(p).join("equity.csv").exists());
    }
    let d = r["difference"]["values"]["total_return"].as_f64().unwrap();
    let want = r["metrics"]["lean"]["total_return"].as_f64().unwrap()
        - r["metrics"]["full"]["total_return"].as_f64().unwrap();
    assert_eq!(d, want);
    // Both curves and buy-and-hold, and their three drawdowns, with text.
    let svg = fs_err::read_to_string(out.join("equity.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
    assert!(
        svg.matches("<polyline").count() >= 6,
        "{}",
        svg.matches("<polyline").count()
    );
    for label in ["full", "lean", "buy and hold", "Drawdown (%)"] {
        assert!(
            svg.contains(&format!(">{label}<")) || svg.contains(label),
            "{label} missing"
        );
    }
    let md = fs_err::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| total_return |") && md.contains("## Decision agreement"),
        "{md}"
    );

    let o = Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp.path())
        .args(["--config-dir", "configs", "compare", "--profiles", "full"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--profiles takes two profiles"),
        "{}",
        stderr(&o)
    );
}

/// CI smoke: both shipped profiles on the shipped slice give the committed
/// golden metrics (floats to 1e-9 relative: a different CPU may round the
/// last bits of a matmul differently). Regenerate on purpose only:
/// `scripts/regenerate_golden.sh`.
#[test]
fn shipped_profiles_match_their_golden_metrics() {
    // The shipped configs as they are (they trade models/demo).
    for profile in ["full", "lean"] {
        let o = Command::new(env!("CARGO_BIN_EXE_trader"))
            .current_dir(repo())
            .args([
                "--config-dir",
                "configs",
                "backtest",
                "--profile",
                profile,
                "--json",
            ])
            .args([
                "--data",
                &repo().join("tests/fixtures/slice").display().to_string(),
            ])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let got = json(&o);
        let path = repo().join(format!("tests/fixtures/golden/backtest-{profile}.json"));
        let golden: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(&path).unwrap()).unwrap();
        let (got_map, golden_map) = (got.as_object().unwrap(), golden.as_object().unwrap());
        assert_eq!(
            got_map.keys().collect::<Vec<_>>(),
            golden_map.keys().collect::<Vec<_>>(),
            "fields changed; if intended, run scripts/regenerate_golden.sh"
        );
        for (k, want) in golden_map {
            let have = &got_map[k];
            let same = match (have.as_f64(), want.as_f64()) {
                (Some(x), Some(y)) if have.is_f64() || want.is_f64() => {
                    (x - y).abs() <= 1e-9 * y.abs().max(1e-3)
                }
                _ => have == want,
            };
            assert!(
                same,
                "{profile}.{k}: got {have}, golden {want} ({}); if the change is intended, run scripts/regenerate_golden.sh",
                path.display()
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn compare_live_runs_two_traders_against_one_simulator() {
    let tmp = sandbox();
    let out = tmp.path().join("live");
    let o = Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp.path())
        .args([
            "--config-dir",
            "configs",
            "compare",
            "--profiles",
            "full,lean",
            "--live",
        ])
        .args([
            "--data",
            &shipped().display().to_string(),
            "--out",
            &out.display().to_string(),
        ])
        .args([
            "--duration-secs",
            "7",
            "--speed",
            "3600",
            "--start",
            "2018-09-01T00:10:00Z",
        ])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in ["report.json", "report.md", "equity.svg"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    assert!(
        !out.join("sim-keys.toml").exists(),
        "throwaway keys left on disk"
    );
    let r: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(
        r["agreement"]["hours_compared"].as_u64().unwrap() >= 3,
        "{r}"
    );
    for p in ["full", "lean"] {
        // Each from its own store: decisions there equal the metrics' count.
        let db = out.join(p).join("store.sqlite");
        let q = Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT COUNT(*) FROM decisions WHERE skipped_reason IS NULL")
            .output()
            .unwrap();
        let n: u64 = String::from_utf8(q.stdout).unwrap().trim().parse().unwrap();
        assert_eq!(r["metrics"][p]["decisions"].as_u64().unwrap(), n, "{p}");
        assert!(r["resources"][p]["peak_rss_bytes"].as_u64().unwrap() > 1_000_000);
    }
}

/// Records in memory (the default) and in a SQLite store give the same
/// files; the store holds the run as `trader run` would record it.
#[test]
fn memory_and_sqlite_records_give_the_same_backtest() {
    let tmp = sandbox();
    let db = tmp.path().join("records.sqlite");
    let mut files = Vec::new();
    for (name, extra) in [
        ("memory", vec![]),
        (
            "sqlite",
            vec!["--store".to_owned(), db.display().to_string()],
        ),
    ] {
        let out = tmp.path().join(name);
        let mut args: Vec<String> = WEEK.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--out".to_owned(), out.display().to_string()]);
        args.extend(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = backtest(tmp.path(), &shipped(), &args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let read = |f: &str| fs_err::read_to_string(out.join(f)).unwrap();
        files.push((
            read("metrics.json"),
            read("decisions.csv"),
            read("equity.csv"),
        ));
        let resources: serde_json::Value = serde_json::from_str(&read("resources.json")).unwrap();
        assert_eq!(resources["records"], name);
    }
    assert_eq!(files[0], files[1]);
    let m: serde_json::Value = serde_json::from_str(&files[0].0).unwrap();
    assert!(
        m["orders"].as_u64().unwrap() > 0,
        "no order: the comparison is empty"
    );
    let q = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT (SELECT COUNT(*) FROM decisions), (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM fills)")
        .output()
        .unwrap();
    let counts = String::from_utf8(q.stdout).unwrap();
    assert_eq!(
        counts.trim(),
        format!("168|{}|{}", m["orders"], m["fills"]),
        "store vs metrics"
    );
}

/// A disk that fills up while `--out DIR` is written (here: the file size
/// limit, with SIGXFSZ ignored, so writes fail with EFBIG as on a full
/// disk): an error naming the file, and the previous run's four files left
/// as they were, with no partial file beside them.
#[cfg(target_os = "linux")]
#[test]
fn full_disk_during_out_keeps_the_previous_files_and_names_the_file() {
    let tmp = sandbox();
    let out = tmp.path().join("out");
    let out_arg = out.display().to_string();
    let first = backtest(
        tmp.path(),
        &shipped(),
        &[
            "--from",
            "2018-09-01T00:00:00Z",
            "--to",
            "2018-09-02T23:00:00Z",
            "--out",
            &out_arg,
        ],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let files = [
        "metrics.json",
        "equity.csv",
        "decisions.csv",
        "resources.json",
    ];
    let read_all = || -> Vec<String> {
        files
            .iter()
            .map(|f| fs_err::read_to_string(out.join(f)).unwrap())
            .collect()
    };
    let before = read_all();
    // 4 KiB: metrics.json fits, the week's equity.csv does not.
    let o = Command::new("bash")
        .current_dir(tmp.path())
        .args(["-c", "trap '' XFSZ; ulimit -f 4; exec \"$@\"", "bash"])
        .arg(env!("CARGO_BIN_EXE_trader"))
        .args(["--config-dir", "configs", "backtest", "--profile", "lean"])
        .args(["--data", &shipped().display().to_string()])
        .args(WEEK)
        .args(["--out", &out_arg])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&out.join("equity.csv").display().to_string())
            && err.contains("File too large"),
        "{err}"
    );
    assert_eq!(read_all(), before, "the previous run's files changed");
    let names: Vec<String> = fs_err::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

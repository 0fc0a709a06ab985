//! Every run is safe to repeat and nothing is ever lost (issue 13): the
//! README's replay three times on one store and after a SIGKILL, imported
//! bars left alone, one trader per store and profile, SIGTERM answered at
//! once in every state, the one loader's verdict on bad and unsorted CSVs
//! shared by every command, and two imports into one store at once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    clippy::print_stderr
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn sql(db: &Path, query: &str) -> String {
    let o = Command::new("sqlite3").arg(db).arg(query).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

fn slice() -> PathBuf {
    repo().join("tests/fixtures/slice")
}

/// `trader run --profile lean` without keys in `tmp` (its default store,
/// tmp/var/lean.sqlite) over two days of the slice.
fn replay_cmd(tmp: &Path, speed: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader"));
    cmd.current_dir(tmp)
        .args(["--config-dir", "configs", "run", "--profile", "lean"])
        .args(["--data", &slice().display().to_string()])
        .args([
            "--from",
            "2018-03-06T00:00:00Z",
            "--until",
            "2018-03-08T00:00:00Z",
        ])
        .args(["--speed", speed, "--no-metrics"])
        .args(extra)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn");
    cmd
}

fn replay(tmp: &Path) -> Output {
    replay_cmd(tmp, "2000000", &["--json"]).output().unwrap()
}

/// Waits (bounded) until `query` on `db` answers something other than "0".
fn wait_for_rows(db: &Path, query: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        if db.exists() {
            let o = Command::new("sqlite3").arg(db).arg(query).output().unwrap();
            let out = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if o.status.success() && !out.is_empty() && out != "0" {
                return;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the trader exited ({status}) before {query}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {query}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// SIGTERM, then the exit status, the output and how long the exit took.
fn terminate(mut child: Child) -> (Output, Duration) {
    signal(&child, "-TERM");
    let sent = Instant::now();
    let deadline = sent + Duration::from_mins(1);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "still running a minute after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = sent.elapsed();
    (child.wait_with_output().unwrap(), took)
}

fn bar_counts(db: &Path) -> String {
    sql(
        db,
        "SELECT GROUP_CONCAT(symbol || '=' || n) FROM (SELECT symbol, COUNT(*) AS n FROM bars GROUP BY symbol ORDER BY symbol)",
    )
}

#[test]
fn the_readme_replay_three_times_on_one_store_and_after_a_sigkill_all_exit_0() {
    let tmp = sandbox();
    // A policy that trades every hour, so that every replay orders.
    use_momentum_policy(tmp.path());
    let db = tmp.path().join("var/lean.sqlite");
    // Imported bars first: one symbol the profile does not trade (XRP), and
    // the slice's BTC, more hours than the profile's 72 h history.
    let imported = tmp.path().join("imported");
    fs_err::create_dir_all(&imported).unwrap();
    fs_err::copy(slice().join("BTCUSD.csv"), imported.join("XRPUSD.csv")).unwrap();
    fs_err::copy(slice().join("BTCUSD.csv"), imported.join("BTCUSD.csv")).unwrap();
    let o = trader(&[
        "data",
        "import",
        &imported.display().to_string(),
        "--store",
        &db.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let imported_counts = bar_counts(&db);
    assert_eq!(imported_counts, "BTC/USD=576,XRP/USD=576");

    let mut runs: Vec<(i64, String)> = Vec::new();
    for i in 0..3 {
        let o = replay(tmp.path());
        assert_eq!(o.status.code(), Some(0), "replay {i}: {}", stderr(&o));
        let s = json(&o);
        assert_eq!(s["mode"], "replay");
        assert_eq!(s["resumed"], false);
        assert_eq!(
            s["decisions"].as_u64().unwrap() + s["skipped"].as_u64().unwrap(),
            48
        );
        let run = s["run_id"].as_i64().unwrap();
        // Every earlier run's records are intact.
        let counts = sql(
            &db,
            &format!(
                "SELECT COUNT(*) || '/' || (SELECT COUNT(*) FROM orders WHERE run_id = {run}) FROM decisions WHERE run_id = {run}"
            ),
        );
        runs.push((run, counts));
        for (earlier, was) in &runs {
            let now = sql(
                &db,
                &format!(
                    "SELECT COUNT(*) || '/' || (SELECT COUNT(*) FROM orders WHERE run_id = {earlier}) FROM decisions WHERE run_id = {earlier}"
                ),
            );
            assert_eq!(&now, was, "run {earlier} after replay {i}");
        }
        assert_eq!(
            bar_counts(&db),
            imported_counts,
            "a replay leaves the store's bars alone"
        );
        // A clean exit leaves nothing in the WAL: the .sqlite alone is the store.
        let wal = db.with_file_name("lean.sqlite-wal");
        assert_eq!(fs_err::metadata(&wal).map_or(0, |m| m.len()), 0);
    }
    assert!(
        runs.iter().all(|(_, c)| !c.ends_with("/0")),
        "every replay orders: {runs:?}"
    );

    // Killed with SIGKILL after it has decided something, then run again.
    let mut child = replay_cmd(tmp.path(), "20000", &["--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let last = runs.last().unwrap().0;
    wait_for_rows(
        &db,
        &format!("SELECT COUNT(*) FROM decisions WHERE run_id > {last}"),
        &mut child,
    );
    signal(&child, "-KILL");
    child.wait().unwrap();
    let killed = sql(&db, "SELECT MAX(id) FROM runs");
    assert_eq!(
        sql(
            &db,
            &format!("SELECT ended_at IS NULL FROM runs WHERE id = {killed}")
        ),
        "1"
    );
    let o = replay(tmp.path());
    assert_eq!(o.status.code(), Some(0), "after a SIGKILL: {}", stderr(&o));
    let after = json(&o)["run_id"].as_i64().unwrap();
    assert!(after > killed.parse::<i64>().unwrap());
    assert_eq!(
        sql(
            &db,
            &format!("SELECT outcome FROM runs WHERE id = {killed}")
        ),
        "abandoned"
    );
    assert_eq!(
        sql(
            &db,
            &format!("SELECT GROUP_CONCAT(DISTINCT outcome) FROM runs WHERE id != {killed}")
        ),
        "finished"
    );
    // No order id twice, and each names its run.
    assert_eq!(
        sql(
            &db,
            "SELECT COUNT(DISTINCT client_order_id) = COUNT(*) FROM orders"
        ),
        "1"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT COUNT(*) FROM orders WHERE client_order_id NOT LIKE 'lean-r' || run_id || '-2018%'"
        ),
        "0"
    );
    assert_eq!(bar_counts(&db), imported_counts);
}

#[test]
fn a_second_trader_on_the_same_store_and_profile_is_refused_naming_the_first() {
    let tmp = sandbox();
    let db = tmp.path().join("var/lean.sqlite");
    let mut first = replay_cmd(tmp.path(), "2000", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&db, "SELECT COUNT(*) FROM runs", &mut first);
    let second = replay_cmd(tmp.path(), "200000", &[]).output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let msg = stderr(&second);
    assert!(
        msg.contains("lean.sqlite")
            && msg.contains(&format!("trader run (pid {}", first.id()))
            && msg.contains("one trader per store and profile lean"),
        "{msg}"
    );
    assert_eq!(
        sql(&db, "SELECT COUNT(*) FROM runs"),
        "1",
        "the second started nothing"
    );
    // The full profile on the same store is another trader: it may run.
    let (o, _) = terminate(first);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Released: the next one runs.
    let o = replay(tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn sigterm_ends_trader_run_promptly_while_waiting_and_while_the_broker_is_down() {
    let tmp = sandbox();
    // 1. A replay between two polls: a clean end with the summary.
    let db = tmp.path().join("var/lean.sqlite");
    let mut child = replay_cmd(tmp.path(), "2000", &["--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&db, "SELECT COUNT(*) FROM decisions", &mut child);
    let (o, took) = terminate(child);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["mode"], "replay");
    eprintln!("replay: exit {took:?} after SIGTERM");
    assert_eq!(sql(&db, "SELECT outcome FROM runs"), "finished");

    // 2. A broker that refuses every connection: reconcile and polls retry
    // with back-off (43 s before a SIGTERM was answered, in the probe).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let store = tmp.path().join("down.sqlite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trader"))
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
            "--store",
            &store.display().to_string(),
            "--timeout-ms",
            "2000",
        ])
        .env("APCA_API_KEY_ID", "PKTEST")
        .env("APCA_API_SECRET_KEY", "secret-test")
        .env("APCA_API_BASE_URL", &url)
        .env("APCA_API_DATA_URL", &url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until it has met the dead broker (a retry or an unreadable read logged).
    let err = child.stderr.take().unwrap();
    let (met, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(err)).map_while(Result::ok) {
            if line.contains("retrying") || line.contains("unreadable") {
                let _ = met.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    seen.recv_timeout(Duration::from_mins(1))
        .expect("the trader never met the dead broker");
    let (o, took) = terminate(child);
    let log = reader.join().unwrap();
    eprintln!("broker down: exit {took:?} after SIGTERM");
    assert_eq!(o.status.code(), Some(0), "{log}");
    assert!(
        log.contains("retrying") || log.contains("unreadable"),
        "{log}"
    );
    // The budget is 2 s; a shared CI machine gets slack, the probe's 43 s does not fit.
    assert!(took < Duration::from_secs(10), "took {took:?}: {log}");
}

/// A copy of the slice in `tmp/name` with `edit` applied to BTCUSD.csv's lines.
fn edited_slice(tmp: &Path, name: &str, edit: impl Fn(&mut Vec<String>)) -> PathBuf {
    let dir = tmp.join(name);
    copy_dir(&slice(), &dir);
    fs_err::remove_file(dir.join("README.md")).ok();
    let path = dir.join("BTCUSD.csv");
    let mut lines: Vec<String> = fs_err::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    edit(&mut lines);
    fs_err::write(&path, lines.join("\n") + "\n").unwrap();
    dir
}

fn backtest(tmp: &Path, data: &Path, forward: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp)
        .args([
            "--config-dir",
            "configs",
            "backtest",
            "--profile",
            "lean",
            "--json",
        ])
        .args(["--data", &data.display().to_string(), "--forward", forward])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_bad_bar_is_refused_alike_by_backtest_batched_and_plain_run_sim_and_import() {
    let tmp = sandbox();
    for (field_edit, want) in [
        (",-1\n", "volume -1 is negative"),
        (",NaN,5\n", "close is NaN"),
    ] {
        let data = edited_slice(tmp.path(), "bad", |lines| {
            // Line 101 of the file (the header is line 1).
            let row = &lines[100];
            let cut = if want.contains("volume") {
                row.rfind(',').unwrap()
            } else {
                row.rfind(',')
                    .map(|i| row[..i].rfind(',').unwrap())
                    .unwrap()
            };
            lines[100] = format!("{}{}", &row[..cut], field_edit.trim_end());
        });
        let expected =
            format!("BTCUSD.csv: line 101: BTC/USD bar at 2018-03-05T03:00:00+00:00: {want}");
        let outputs = [
            ("backtest batched", backtest(tmp.path(), &data, "batched")),
            ("backtest plain", backtest(tmp.path(), &data, "plain")),
            (
                "run",
                Command::new(env!("CARGO_BIN_EXE_trader"))
                    .current_dir(tmp.path())
                    .args([
                        "--config-dir",
                        "configs",
                        "run",
                        "--profile",
                        "lean",
                        "--no-metrics",
                    ])
                    .args(["--data", &data.display().to_string()])
                    .args([
                        "--store",
                        &tmp.path().join("r.sqlite").display().to_string(),
                    ])
                    .env_remove("APCA_API_KEY_ID")
                    .env_remove("APCA_API_SECRET_KEY")
                    .output()
                    .unwrap(),
            ),
            (
                "import",
                trader(&[
                    "data",
                    "import",
                    &data.display().to_string(),
                    "--store",
                    &tmp.path().join("i.sqlite").display().to_string(),
                ]),
            ),
        ];
        for (what, o) in outputs {
            assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
            assert!(stderr(&o).contains(&expected), "{what}: {}", stderr(&o));
        }
    }
}

#[test]
fn an_unsorted_csv_gives_the_same_backtest_as_the_sorted_one() {
    let tmp = sandbox();
    let swapped = edited_slice(tmp.path(), "swapped", |lines| lines.swap(200, 201));
    let sorted = backtest(tmp.path(), &slice(), "batched");
    let unsorted = backtest(tmp.path(), &swapped, "batched");
    assert_eq!(sorted.status.code(), Some(0), "{}", stderr(&sorted));
    assert_eq!(unsorted.status.code(), Some(0), "{}", stderr(&unsorted));
    assert_eq!(json(&unsorted), json(&sorted));
}

#[test]
fn two_imports_into_one_store_at_once_both_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.sqlite");
    let data = repo().join("data/coinbase_2017_2018");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_trader"))
            .args(["data", "import", &data.display().to_string()])
            .args(["--store", &db.display().to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for o in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert_eq!(bar_counts(&db), "BTC/USD=11341,ETH/USD=11341,LTC/USD=11341");
}

#[test]
fn sigterm_stops_an_import_at_a_batch_boundary_and_says_how_many_rows_are_stored() {
    let tmp = tempfile::tempdir().unwrap();
    // 60,000 hours of one symbol (from 1985): 60 batches of 1000, enough
    // that the SIGTERM sent once the first batch is seen lands mid-import
    // (a whole import takes about 2 s of the debug binary).
    const HOURS: i64 = 60_000;
    let data = tmp.path().join("data");
    fs_err::create_dir_all(&data).unwrap();
    let start = 473_385_600_i64; // 1985-01-01T00:00:00Z
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for h in 0..HOURS {
        let t = chrono::DateTime::from_timestamp(start + h * 3600, 0).unwrap();
        text.push_str(&format!(
            "{},10,11,9,10.5,1\n",
            t.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    fs_err::write(data.join("BTCUSD.csv"), text).unwrap();
    let db = tmp.path().join("s.sqlite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trader"))
        .args(["data", "import", &data.display().to_string()])
        .args(["--store", &db.display().to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&db, "SELECT COUNT(*) FROM bars", &mut child);
    let (o, _) = terminate(child);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let msg = stderr(&o);
    let stored = sql(&db, "SELECT COUNT(*) FROM bars");
    assert!(
        msg.contains(&format!("{stored} rows written")) && msg.contains("at a batch boundary"),
        "store holds {stored}: {msg}"
    );
    let n: u64 = stored.parse().unwrap();
    assert!(
        n > 0 && n < HOURS as u64 && n.is_multiple_of(1000),
        "whole batches only: {n}"
    );
    // The same import again completes it.
    let o = trader(&[
        "data",
        "import",
        &data.display().to_string(),
        "--store",
        &db.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sql(&db, "SELECT COUNT(*) FROM bars"), HOURS.to_string());
}

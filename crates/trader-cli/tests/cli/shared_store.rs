//! One PostgreSQL database shared by two traders (full and lean) and by
//! two training hosts (two `trader train` processes with their own
//! folders): both traders' records intact and apart, each trial done once,
//! and a host killed with SIGKILL in the middle of a trial gives it back.
//!
//! These need a PostgreSQL server: `TRADER_TEST_PG_URL` (CI starts a
//! throwaway cluster with scripts/pg_cluster.sh and runs `shared_store::`
//! on it). Without one, each test prints that it did not run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A fresh database of its own on the test server, named after `dir`.
fn database(dir: &Path) -> Option<String> {
    let Some(server) = trader_config::test_pg_url() else {
        eprintln!("not run: TRADER_TEST_PG_URL names no PostgreSQL server");
        return None;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let location = runtime
        .block_on(trader_store::scratch_location(
            &dir.join("shared"),
            Some(&server),
        ))
        .unwrap();
    let trader_core::StoreLocation::Postgres(url) = location else {
        panic!("{location:?}")
    };
    Some(url.expose().to_owned())
}

/// One value per row, columns `|`-separated, from `psql`.
fn psql(url: &str, query: &str) -> String {
    let o = Command::new("psql")
        .args(["-X", "-A", "-t", "-F", "|", "-c", query, url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

fn replay(tmp: &Path, profile: &str, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp)
        .args(["--config-dir", "configs", "run", "--profile", profile])
        .args(["--store", url, "--json", "--speed", "1000000"])
        .args([
            "--from",
            "2018-09-01T00:00:00Z",
            "--until",
            "2018-09-04T00:00:00Z",
        ])
        .args([
            "--data",
            &repo().join("data/coinbase_2017_2018").display().to_string(),
        ])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env_remove("TRADER_STORE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_traders_on_one_database_keep_their_records_apart() {
    let tmp = sandbox();
    let Some(url) = database(tmp.path()) else {
        return;
    };
    // Both at once, one database.
    let (full, lean) = (
        replay(tmp.path(), "full", &url),
        replay(tmp.path(), "lean", &url),
    );
    let mut runs = Vec::new();
    for (profile, child) in [("full", full), ("lean", lean)] {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{profile}: {}", stderr(&o));
        let s = json(&o);
        assert_eq!(
            s["decisions"].as_u64().unwrap() + s["skipped"].as_u64().unwrap(),
            72,
            "{profile}: {s}"
        );
        assert!(!s["store"].as_str().unwrap().is_empty());
        runs.push((profile, s["run_id"].as_i64().unwrap()));
    }
    for (profile, run) in &runs {
        // Every hour of each run once, under its own profile.
        assert_eq!(
            psql(
                &url,
                &format!(
                    "SELECT COUNT(*), COUNT(DISTINCT bar_t), MIN(r.profile) FROM decisions d \
                     JOIN runs r ON r.id = d.run_id WHERE d.run_id = {run}"
                )
            ),
            format!("72|72|{profile}")
        );
        assert_eq!(
            psql(&url, &format!("SELECT outcome FROM runs WHERE id = {run}")),
            "finished"
        );
    }
    assert_ne!(runs[0].1, runs[1].1);
    // Orders carry their profile in the client order id: none shared.
    assert_eq!(
        psql(
            &url,
            "SELECT COUNT(*) FROM orders o JOIN runs r ON r.id = o.run_id \
             WHERE o.client_order_id NOT LIKE r.profile || '%'"
        ),
        "0"
    );
    // Each profile's lock was released at the end: lean runs again, and
    // `trader status` reads both from the database.
    let again = replay(tmp.path(), "lean", &url).wait_with_output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        psql(&url, "SELECT COUNT(*) FROM runs WHERE profile = 'lean'"),
        "2"
    );
    assert_eq!(psql(&url, "SELECT COUNT(*) FROM profile_locks"), "0");
    for profile in ["full", "lean"] {
        let o = trader(&[
            "--config-dir",
            &configs().display().to_string(),
            "status",
            "--profile",
            profile,
            "--store",
            &url,
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json(&o);
        assert_eq!(v["profile"], profile);
        assert!(v["run"][0].as_i64().is_some(), "{v}");
        assert_eq!(v["run_outcome"], "finished", "{v}");
    }
    // `status --all`: both profiles of the database, none holding its lock.
    let all = trader(&["status", "--all", "--store", &url, "--json"]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let all = json(&all);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["profile"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["full", "lean"]);
    // `compare --live --store`: the two traders' runs read from the database
    // (the newest of each), side by side, hour by hour.
    let out = tmp.path().join("cmp");
    let cmp = trader(&[
        "--config-dir",
        &configs().display().to_string(),
        "compare",
        "--profiles",
        "full,lean",
        "--live",
        "--store",
        &url,
        "--data",
        &repo().join("data/coinbase_2017_2018").display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(cmp.status.code(), Some(0), "{}", stderr(&cmp));
    let report: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["agreement"]["hours_compared"], 72, "{report}");
}

fn train_host(out: &Path, url: &str, trials: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader"));
    cmd.args(["--config-dir", &configs().display().to_string(), "train"])
        .args([
            "--data",
            &repo().join("data/coinbase_2017_2018").display().to_string(),
        ])
        .args(["--out", &out.display().to_string()])
        .args(["--trials", &trials.to_string(), "--workers", "1"])
        .args(["--seed", "5", "--max-epochs", "3", "--top-n", "3"])
        .args(["--queue", url, "--search", "e2e", "--json"])
        .env("RUST_LOG", "info")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn two_training_hosts_share_a_search_and_a_killed_host_gives_its_trial_back() {
    let tmp = sandbox();
    let Some(url) = database(tmp.path()) else {
        return;
    };
    const TRIALS: u32 = 5;
    let (out_a, out_b) = (tmp.path().join("host_a"), tmp.path().join("host_b"));
    // Both hosts at once, each with its own folder.
    let mut a = train_host(&out_a, &url, TRIALS).spawn().unwrap();
    let b = train_host(&out_b, &url, TRIALS).spawn().unwrap();
    // Host A's first claim, then SIGKILL to it and its worker in the
    // middle of that trial.
    let mut lines = BufReader::new(a.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let claimed: i64 = loop {
        let line = lines
            .next()
            .expect("host A ended before claiming a trial")
            .unwrap();
        if line.contains("claimed from the shared queue") {
            let t = line.split("trial=").nth(1).unwrap();
            break t.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(started.elapsed() < Duration::from_mins(1), "no claim");
    };
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", a.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = a.wait();
    // Host B runs every other trial and waits for the one A held, which
    // comes back to the queue when A's connection dies.
    let o = b.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary = json(&o);
    assert_eq!(summary["done"], u64::from(TRIALS), "{summary}");
    assert_eq!(
        psql(
            &url,
            "SELECT COUNT(*), COUNT(DISTINCT trial), MIN(status), MAX(status) FROM trials \
             WHERE search = 'e2e'"
        ),
        format!("{TRIALS}|{TRIALS}|done|done")
    );
    // Done once, by the host that lived, with its member stored.
    let b_pid = psql(
        &url,
        &format!("SELECT host FROM trials WHERE search = 'e2e' AND trial = {claimed}"),
    );
    assert!(!b_pid.ends_with(&format!("pid {}", a.id())), "{b_pid}");
    assert_eq!(
        psql(
            &url,
            "SELECT COUNT(DISTINCT trial) FROM trial_files WHERE search = 'e2e' \
             AND file = 'actor.safetensors'"
        ),
        TRIALS.to_string()
    );
    // B's folder holds the database's top 3 as an ensemble a trader loads.
    let ranked = psql(
        &url,
        "SELECT trial FROM trials WHERE search = 'e2e' ORDER BY score DESC, trial LIMIT 3",
    );
    let in_b: Vec<String> = members(&out_b).into_iter().map(|(dir, _)| dir).collect();
    for t in ranked.lines() {
        let dir = format!("trial_{:04}", t.parse::<u32>().unwrap());
        assert!(in_b.contains(&dir), "{dir} not in {in_b:?}");
        assert!(out_b.join(&dir).join("actor.safetensors").is_file());
    }
    let inspect = trader(&[
        "ensemble",
        "inspect",
        &out_b.display().to_string(),
        "--top-n",
        "3",
    ]);
    assert_eq!(inspect.status.code(), Some(0), "{}", stderr(&inspect));
    // A trader's box without training: the same top 3 synced from the
    // database into a folder of its own; an unknown search is named.
    let box_c = tmp.path().join("trader_box");
    let sync = |search: &str| {
        trader(&[
            "ensemble",
            "sync",
            &box_c.display().to_string(),
            "--queue",
            &url,
            "--search",
            search,
        ])
    };
    let synced = sync("e2e");
    assert_eq!(synced.status.code(), Some(0), "{}", stderr(&synced));
    let in_c: Vec<String> = members(&box_c).into_iter().map(|(dir, _)| dir).collect();
    assert_eq!(in_c.len(), 3, "{in_c:?}");
    for dir in &in_c {
        assert!(in_b.contains(dir), "{dir} not in {in_b:?}");
    }
    let unknown = sync("no-such-search");
    assert_ne!(unknown.status.code(), Some(0));
    assert!(
        stderr(&unknown).contains("no-such-search"),
        "{}",
        stderr(&unknown)
    );
}

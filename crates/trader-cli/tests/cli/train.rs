//! `trader train` on the smoke slice (March 2018): a search interrupted
//! (SIGTERM to the parent and its workers, as a service manager stops it) and restarted ends with the same
//! ensemble as an uninterrupted one of the same seed; `ensemble_params.json`
//! parses whenever it is read during the search; the budgeter refuses a
//! worker count that does not fit, naming how many would; bad spans named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn train_cmd(out: &Path, trials: u32, workers: u32, seed: u32) -> Command {
    spans_cmd(
        out,
        trials,
        workers,
        seed,
        "2018-03-19T23:00:00Z",
        "2018-03-24T23:00:00Z",
    )
}

fn spans_cmd(
    out: &Path,
    trials: u32,
    workers: u32,
    seed: u32,
    train: &str,
    valid: &str,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trader"));
    cmd.args(["--config-dir", &configs().display().to_string(), "train"])
        .args([
            "--data",
            &repo().join("tests/fixtures/slice").display().to_string(),
        ])
        .args(["--out", &out.display().to_string()])
        .args([
            "--trials",
            &trials.to_string(),
            "--workers",
            &workers.to_string(),
        ])
        .args(["--seed", &seed.to_string(), "--max-epochs", "4"])
        .args(["--train-until", train, "--valid-until", valid])
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
fn an_interrupted_search_resumes_to_the_same_ensemble() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let trials = 8;
    let o = train_cmd(&a, trials, 2, 9)
        .args(["--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["done"], trials);
    assert_eq!(summary["per_worker"].as_array().unwrap().len(), 2);
    let uninterrupted = members(&a);
    assert_eq!(uninterrupted.len(), trials as usize);
    assert!(uninterrupted.windows(2).all(|w| w[0].1 >= w[1].1), "ranked");
    // Distinct trials: not one member copied six times.
    let mut scores: Vec<String> = uninterrupted.iter().map(|m| format!("{}", m.1)).collect();
    scores.dedup();
    assert!(scores.len() >= 3, "{uninterrupted:?}");

    // Interrupted after the first finished trial, with others in flight.
    let mut child = train_cmd(&b, trials, 2, 9)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut reads = 0;
    while members_if_any(&b) < 1 {
        assert!(
            started.elapsed() < Duration::from_mins(2),
            "no trial finished"
        );
        std::thread::sleep(Duration::from_millis(20));
        reads += 1;
    }
    let pgid = child.id().to_string();
    let kill = Command::new("kill")
        .args(["-s", "TERM", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(
        !child.wait().unwrap().success(),
        "the search was not stopped"
    );
    let after_kill = members(&b);
    assert!(
        after_kill.len() < trials as usize,
        "interrupted too late: {after_kill:?}"
    );
    assert!(reads > 0);
    // Restarted: only the missing trials run.
    let o = train_cmd(&b, trials, 2, 9)
        .args(["--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // A worker may rename its finished member into place after the
    // coordinator died and before it did (the ensemble file then lists one
    // fewer): the restart counts what is on disk.
    let done_before = summary["done_before"].as_u64().unwrap() as usize;
    assert!(
        done_before >= after_kill.len() && done_before < trials as usize,
        "done before the restart: {done_before}, listed after the kill: {}",
        after_kill.len()
    );
    assert_eq!(
        members(&b),
        uninterrupted,
        "same seed, same data: same trials and scores"
    );
    assert!(
        !b.join(".staging").exists() || fs_err::read_dir(b.join(".staging")).unwrap().count() == 0
    );
}

/// Finished members listed, reading the file as a trader would (it must
/// always parse).
fn members_if_any(out: &Path) -> usize {
    match fs_err::read_to_string(out.join("ensemble_params.json")) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("half-written ensemble_params.json: {e}: {text:?}"));
            v["members"].as_array().unwrap().len()
        }
        Err(_) => 0,
    }
}

#[test]
fn too_many_workers_are_refused_naming_how_many_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.toml");
    // The shipped host file on a 300 MB machine: 90 % = 270 MB, less the
    // monitoring process (0.6 GB -> 200 MB here).
    let shipped = fs_err::read_to_string(configs().join("host.toml")).unwrap();
    fs_err::write(
        &host,
        shipped
            .replace("ram = \"auto\"", "ram = \"300MB\"")
            .replace("ram = \"0.6GB\"", "ram = \"200MB\""),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = train_cmd(&out, 2, 8, 1)
        .args(["--host", &host.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("REFUSED: 8 workers"), "{err}");
    assert!(err.contains("less 200.0 MB of other co-tenants"), "{err}");
    assert!(err.contains("worker(s) fit (--workers 2)"), "{err}");
    assert!(!out.exists(), "nothing written when refused");
}

#[test]
fn bad_spans_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = spans_cmd(
        &out,
        1,
        1,
        1,
        "2018-03-19T23:00:00Z",
        "2018-03-10T00:00:00Z",
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--valid-until 2018-03-10T00:00:00Z must be after --train-until"),
        "{}",
        stderr(&o)
    );
    let o = spans_cmd(&out, 1, 1, 1, "yesterday", "2018-03-24T23:00:00Z")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--train-until \"yesterday\" is not an RFC 3339 time"),
        "{}",
        stderr(&o)
    );
}

/// models/demo/README.md's command, cut to its first trial, gives the
/// shipped trial_0000: same hyperparameters, normalisation and validation
/// score (scores to 1e-9 relative: another CPU may round a matmul's last
/// bits differently, as for the golden metrics).
#[test]
fn the_shipped_demo_is_reproduced_by_its_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(repo())
        .args(["train", "--trials", "1", "--workers", "1", "--seed", "1"])
        .args(["--out", &out.display().to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let params = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&fs_err::read_to_string(dir.join("trial_0000/params.json")).unwrap())
            .unwrap()
    };
    let (got, shipped) = (params(&out), params(&repo().join("models/demo")));
    for key in ["hparams", "layers", "features", "lookback", "symbols"] {
        assert_eq!(got[key], shipped[key], "{key}");
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1e-12);
    let (score, shipped_score) = (
        got["score"].as_f64().unwrap(),
        shipped["score"].as_f64().unwrap(),
    );
    assert!(
        close(score, shipped_score),
        "score {score} vs shipped {shipped_score}"
    );
    for part in ["mean", "std"] {
        let xs = got["normalize"][part].as_array().unwrap();
        let ys = shipped["normalize"][part].as_array().unwrap();
        assert_eq!(xs.len(), ys.len());
        for (x, y) in xs.iter().zip(ys) {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1e-6),
                "normalize.{part}: {x} vs {y}"
            );
        }
    }
}

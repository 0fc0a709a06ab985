//! The search around the trials: settings from the profile, the bars and
//! their spans, the resume of a stopped search, and the scheduling over a
//! launcher (here in process: no worker processes, no training).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use trader_core::Symbol;
use trader_train::{
    FinishedTrial, LaunchError, Launcher, Resumed, SearchPlan, SearchSettings, TrainingBars,
    TrialResult, WorkerFailure, WorkerSignal, missing_trials, run_search, trial_dir_name,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

/// A finished member directory: the shipped demo member's params.json with
/// `score`.
fn finished_member(out: &Path, trial: u32, score: f64) {
    let text = fs_err::read_to_string(repo().join("models/demo/trial_0000/params.json")).unwrap();
    let mut params: serde_json::Value = serde_json::from_str(&text).unwrap();
    params["score"] = score.into();
    let dir = out.join(trial_dir_name(trial));
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::write(dir.join("params.json"), params.to_string()).unwrap();
}

fn ranked(out: &Path) -> Vec<(String, f64)> {
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(out.join("ensemble_params.json")).unwrap())
            .unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["dir"].as_str().unwrap().to_owned(),
                m["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn settings_default_to_the_profile_and_take_the_callers_choices() {
    let configs = repo().join("configs");
    let lean = SearchSettings::resolve("lean", &configs, None, None, 12).unwrap();
    assert_eq!(lean.symbols, lean.profile.symbols);
    assert_eq!(lean.space.max_history_hours, lean.profile.history_hours);
    assert_eq!(lean.space.max_epochs, 12);
    let chosen =
        SearchSettings::resolve("lean", &configs, Some(&[sym("BTC/USD")]), Some(24), 3).unwrap();
    assert_eq!(chosen.symbols, vec![sym("BTC/USD")]);
    assert_eq!(chosen.space.max_history_hours, 24);
    assert!(SearchSettings::resolve("no-such-profile", &configs, None, None, 1).is_err());
}

#[test]
fn the_bars_are_cut_to_common_hours_and_counted_per_span() {
    let symbols = [sym("BTC/USD"), sym("ETH/USD")];
    let data = TrainingBars::load(
        &repo().join("tests/fixtures/slice"),
        &symbols,
        trader_core::Clock::now(&trader_core::SystemClock),
    )
    .unwrap();
    assert!(data.hours.windows(2).all(|w| w[0] < w[1]));
    for bars in data.bars.values() {
        let t: Vec<i64> = bars.iter().map(|b| b.t).collect();
        assert_eq!(t, data.hours);
    }
    let (first, last) = (data.hours[0], *data.hours.last().unwrap());
    let mid = data.hours[100];
    let rows = data.span_rows(mid, last);
    assert_eq!(rows.train, 101);
    assert_eq!(rows.train + rows.valid, data.hours.len());
    assert_eq!(data.span_rows(first - 1, first - 1).valid, 0);
}

#[test]
fn a_resumed_search_clears_its_staging_and_runs_only_the_missing_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // Nothing yet: every trial to run, the directory created.
    let fresh = Resumed::prepare(&out, 3, 10).unwrap();
    assert!(out.is_dir() && fresh.finished.is_empty());
    assert_eq!(fresh.todo, vec![0, 1, 2]);
    assert!(!out.join("ensemble_params.json").exists());
    // Trials 1 and 9 finished (9 is beyond this search), 2 was in flight.
    finished_member(&out, 1, 0.25);
    finished_member(&out, 9, 2.0);
    fs_err::create_dir_all(out.join(".staging/trial_0002/trial_0002")).unwrap();
    let resumed = Resumed::prepare(&out, 4, 10).unwrap();
    assert!(!out.join(".staging").exists());
    assert_eq!(
        resumed.finished,
        vec![FinishedTrial {
            trial: 1,
            dir: "trial_0001".to_owned(),
            score: 0.25,
        }]
    );
    assert_eq!(resumed.todo, vec![0, 2, 3]);
    assert_eq!(ranked(&out), vec![("trial_0001".to_owned(), 0.25)]);
    assert_eq!(missing_trials(2, &resumed.finished), vec![0]);
}

/// Workers that end at once, with a result per trial.
struct Scripted {
    results: BTreeMap<u32, Result<f64, WorkerFailure>>,
    launched: Vec<(u32, u32)>,
}

impl Launcher for Scripted {
    type Worker = u32;

    fn launch(&mut self, trial: u32, slot: u32) -> Result<u32, LaunchError> {
        self.launched.push((trial, slot));
        Ok(trial)
    }

    fn has_ended(&mut self, _: &mut u32) -> Result<bool, LaunchError> {
        Ok(true)
    }

    fn pid(&self, _: &u32) -> Option<u32> {
        None
    }

    fn signal(&mut self, _: &mut u32, signal: WorkerSignal) -> Result<(), LaunchError> {
        Err(format!("no governor in this search, yet {signal:?}").into())
    }

    fn collect(&mut self, trial: u32) -> Result<TrialResult, WorkerFailure> {
        let score = self.results[&trial].clone()?;
        Ok(TrialResult {
            trial,
            score,
            seconds: 0.1,
            peak_rss_bytes: 1_000 + u64::from(trial),
            train_rows: 10,
            final_loss: 0.5,
            validation_return: 0.0,
            validation_orders: 0,
        })
    }
}

#[test]
fn the_search_keeps_its_workers_busy_records_failures_and_stops_when_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_path_buf();
    finished_member(&out, 0, 0.5);
    let resumed = Resumed::prepare(&out, 9, 3).unwrap();
    let failed = |m: &str| Err(WorkerFailure::Failed(m.to_owned()));
    let mut launcher = Scripted {
        results: BTreeMap::from([
            (1, Ok(0.1)),
            (2, Ok(0.9)),
            (3, failed("worker exited with exit status: 1")),
            (4, Ok(-0.3)),
            (5, Err(WorkerFailure::Interrupted { signal: 15 })),
            (6, Ok(0.9)),
        ]),
        launched: Vec::new(),
    };
    let plan = SearchPlan {
        out: out.clone(),
        trials: 9,
        workers: 2,
        top_n: 3,
        predicted_worker_rss_bytes: 42,
        retries: 0,
        write_ensemble: true,
    };
    let mut progress = Vec::new();
    let summary = run_search(
        &plan,
        resumed,
        &mut launcher,
        |p| {
            progress.push((p.done, p.slot, p.result.trial, p.best.unwrap().dir.clone()));
        },
        None,
    )
    .unwrap();
    // Two at a time in trial order, each in the lowest free slot; nothing
    // launched after the interrupted trial 5 (6 was already running).
    assert_eq!(
        launcher.launched,
        vec![(1, 0), (2, 1), (3, 0), (4, 1), (5, 0), (6, 1)]
    );
    assert_eq!(
        progress,
        vec![
            (2, 0, 1, "trial_0000".to_owned()),
            (3, 1, 2, "trial_0002".to_owned()),
            (4, 1, 4, "trial_0002".to_owned()),
            (5, 1, 6, "trial_0006".to_owned()),
        ]
    );
    assert_eq!(summary.done, 5);
    assert_eq!(summary.done_before, 1);
    assert_eq!(
        summary.failed,
        vec![
            "trial_0003: worker exited with exit status: 1".to_owned(),
            "trial_0005: interrupted (signal 15)".to_owned(),
        ]
    );
    // Ties go to the first directory.
    assert_eq!(summary.best, Some(("trial_0002".to_owned(), 0.9)));
    assert_eq!(summary.predicted_worker_rss_bytes, 42);
    let per_worker: Vec<(u32, u32, u64)> = summary
        .per_worker
        .iter()
        .map(|w| (w.worker, w.trials, w.peak_rss_bytes))
        .collect();
    assert_eq!(per_worker, vec![(0, 1, 1_001), (1, 3, 1_006)]);
    // Every finished trial ranked in the file, best first.
    let dirs: Vec<String> = ranked(&out).into_iter().map(|(d, _)| d).collect();
    assert_eq!(
        dirs,
        [
            "trial_0002",
            "trial_0006",
            "trial_0000",
            "trial_0001",
            "trial_0004"
        ]
    );
}

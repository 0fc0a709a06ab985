//! Training on the committed smoke slice (576 hours of March 2018):
//! determinism, learning, member files the trader loads, and the ranked,
//! atomically replaced ensemble file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use trader_core::{Aggregate, Bar, ComputeDevice, DType, Symbol};
use trader_ensemble::{Ensemble, EnsembleCatalog, ForwardMode, LoadOptions};
use trader_train::{
    Dataset, FinishedTrial, HyperParams, SearchSpace, TrainedMember, finished_trials, train_member,
    trial_dir_name, write_ensemble_file, write_member,
};

fn symbols() -> Vec<Symbol> {
    ["BTC/USD", "ETH/USD", "LTC/USD"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn slice() -> BTreeMap<Symbol, Vec<Bar>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/slice");
    symbols()
        .into_iter()
        .map(|s| {
            let file = dir.join(format!("{}.csv", s.as_str().replace('/', "")));
            let bars = fs_err::read_to_string(file)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    let n = |i: usize| f[i].parse::<f64>().unwrap();
                    Bar {
                        t: chrono::DateTime::parse_from_rfc3339(f[0])
                            .unwrap()
                            .timestamp(),
                        open: n(1),
                        high: n(2),
                        low: n(3),
                        close: n(4),
                        volume: n(5),
                    }
                })
                .collect();
            (s, bars)
        })
        .collect()
}

fn hp(trial: u32) -> HyperParams {
    HyperParams::sample(
        5,
        trial,
        SearchSpace {
            max_history_hours: 72,
            max_epochs: 4,
        },
    )
}

fn span(bars: &BTreeMap<Symbol, Vec<Bar>>) -> (i64, i64) {
    let b = &bars[&symbols()[0]];
    (b[0].t, b[b.len() - 1].t)
}

fn trained(hp: &HyperParams) -> TrainedMember {
    let bars = slice();
    let (from, until) = span(&bars);
    let data = Dataset::build(&bars, &symbols(), hp, from, until).unwrap();
    train_member(&data, hp, &symbols()).unwrap()
}

#[test]
fn training_is_deterministic_learns_and_writes_a_loadable_member() {
    let bars = slice();
    let (from, until) = span(&bars);
    let hp = hp(1);
    let data = Dataset::build(&bars, &symbols(), &hp, from, until).unwrap();
    assert!(data.rows > 400, "{} rows", data.rows);
    assert!(data.targets.iter().all(|y| (-1.0..=1.0).contains(y)));
    let a = train_member(&data, &hp, &symbols()).unwrap();
    let b = train_member(&data, &hp, &symbols()).unwrap();
    assert_eq!(
        a.epoch_losses, b.epoch_losses,
        "same seed, different losses"
    );
    for (name, t) in &a.tensors {
        let (x, y) = (
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.tensors[name]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
        assert_eq!(x, y, "{name} differs between two runs");
    }
    let first = a.epoch_losses[0];
    let last = *a.epoch_losses.last().unwrap();
    assert!(last < first, "loss did not fall: {:?}", a.epoch_losses);

    // Written as a member, it loads in the trader with its normalisation.
    let dir = tempfile::tempdir().unwrap();
    write_member(&dir.path().join(trial_dir_name(1)), &a, Some(0.5)).unwrap();
    let trials = finished_trials(dir.path()).unwrap();
    assert_eq!(
        trials,
        vec![FinishedTrial {
            trial: 1,
            dir: "trial_0001".to_owned(),
            score: 0.5
        }]
    );
    write_ensemble_file(dir.path(), &trials, 10).unwrap();
    let e = Ensemble::load(
        &EnsembleCatalog::open(dir.path()).unwrap(),
        LoadOptions {
            top_n: 1,
            dtype: DType::F32,
            device: ComputeDevice::Cpu,
            aggregate: Aggregate::Mean,
            mode: ForwardMode::Stacked,
        },
    )
    .unwrap();
    assert_eq!(
        e.members()[0].params.required_history_hours(),
        hp.required_history_hours()
    );
    assert!(e.members()[0].params.normalize.is_some());
}

#[test]
fn different_trials_train_different_members() {
    let (one, two) = (hp(1), hp(2));
    assert_ne!(one, two);
    assert_ne!(trained(&one).epoch_losses, trained(&two).epoch_losses);
}

#[test]
fn targets_never_reach_past_until() {
    let bars = slice();
    let (from, until) = span(&bars);
    let hp = HyperParams {
        horizon_hours: 12,
        ..hp(3)
    };
    let all = Dataset::build(&bars, &symbols(), &hp, from, until).unwrap();
    // 100 hours earlier: the last 100 hours (and their targets) are not used.
    let cut = Dataset::build(&bars, &symbols(), &hp, from, until - 100 * 3600).unwrap();
    assert!(cut.rows <= all.rows - 100, "{} vs {}", cut.rows, all.rows);
    let err = Dataset::build(&bars, &symbols(), &hp, from, from + 50 * 3600)
        .unwrap_err()
        .to_string();
    assert!(err.contains("training samples between"), "{err}");
    assert!(err.contains("need at least 200"), "{err}");
}

#[test]
fn the_ensemble_file_is_ranked_replaced_whole_and_skips_unfinished_trials() {
    let dir = tempfile::tempdir().unwrap();
    let m = trained(&hp(4));
    write_member(&dir.path().join("trial_0000"), &m, Some(-0.2)).unwrap();
    write_member(&dir.path().join("trial_0003"), &m, Some(1.5)).unwrap();
    // Unfinished: no score, no params.json, not a trial name.
    write_member(&dir.path().join("trial_0004"), &m, None).unwrap();
    fs_err::create_dir_all(dir.path().join("trial_0005")).unwrap();
    write_member(&dir.path().join("staging"), &m, Some(9.0)).unwrap();
    let trials = finished_trials(dir.path()).unwrap();
    assert_eq!(
        trials.iter().map(|t| t.trial).collect::<Vec<_>>(),
        vec![0, 3]
    );
    let path = write_ensemble_file(dir.path(), &trials, 10).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["members"][0]["dir"], "trial_0003");
    assert_eq!(v["members"][1]["dir"], "trial_0000");
    assert!(!dir.path().join(".ensemble_params.json.tmp").exists());
    // Replaced by a rename: a reader holding the old file reads it whole.
    let held = fs_err::File::open(&path).unwrap();
    write_ensemble_file(dir.path(), &trials[..1], 10).unwrap();
    let old: serde_json::Value = serde_json::from_reader(held).unwrap();
    assert_eq!(old["members"].as_array().unwrap().len(), 2);
    let new: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(new["members"].as_array().unwrap().len(), 1);
}

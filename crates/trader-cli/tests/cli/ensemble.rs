//! `trader ensemble inspect | infer` end to end, and every bad ensemble input:
//! exit 1 with a message naming the member and the tensor or key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::common::*;

fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ens");
    copy_dir(&repo().join("models/fixture-small"), &dir);
    (tmp, dir)
}

/// A state of the right length (364 = 1 + 3 + 12*3*10) for fixture-small.
fn state_file(dir: &Path, len: usize) -> PathBuf {
    let values: Vec<f64> = (0..len)
        .map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0)
        .collect();
    let p = dir.join("state.json");
    fs_err::write(&p, serde_json::to_string(&values).unwrap()).unwrap();
    p
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn edit_json(path: &Path, from: &str, to: &str) {
    let text = fs_err::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    fs_err::write(path, text.replacen(from, to, 1)).unwrap();
}

fn infer_err(dir: &Path, state: &Path, extra: &[&str], needles: &[&str]) {
    let mut args = vec!["ensemble", "infer"];
    let d = s(dir);
    let st = s(state);
    args.extend([d.as_str(), "--state", st.as_str()]);
    args.extend(extra);
    let o = trader(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}{err}", stdout(&o));
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
}

#[test]
fn inspect_prints_the_true_parameter_count() {
    let dir = repo().join("models/fixture-small");
    let o = trader(&["ensemble", "inspect", &s(&dir), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 10);
    // 364*64+64 + 64*32+32 + 32*3+3, computed from the layer sizes.
    let per_member = 364 * 64 + 64 + 64 * 32 + 32 + 32 * 3 + 3;
    assert_eq!(members[0]["parameters"], per_member);
    assert_eq!(v["total_parameters"], 10 * per_member);
    assert_eq!(members[0]["layers"], "364-64-32-3");
    // Rank order follows the score.
    let scores: Vec<f64> = members
        .iter()
        .map(|m| m["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let o = trader(&[
        "ensemble",
        "inspect",
        &s(&dir),
        "--top-n",
        "2",
        "--dtype",
        "f16",
    ]);
    assert!(
        stdout(&o).contains("total: 2 members, 51078 parameters, 102156 bytes at f16"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn infer_json_has_members_in_rank_order_and_their_aggregate() {
    let (tmp, dir) = fixture_copy();
    let state = state_file(tmp.path(), 364);
    let o = trader(&[
        "ensemble",
        "infer",
        &s(&dir),
        "--state",
        &s(&state),
        "--top-n",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(v["names"][0], "trial_0004");
    for s in 0..3 {
        let mean = members.iter().map(|m| m[s].as_f64().unwrap()).sum::<f64>() / 3.0;
        let agg = v["aggregate"][s].as_f64().unwrap();
        assert!((mean - agg).abs() < 1e-6, "{mean} vs {agg}");
        assert!(members.iter().all(|m| m[s].as_f64().unwrap().abs() <= 1.0));
    }
    // Deterministic: the same input gives the same bytes.
    let again = trader(&[
        "ensemble",
        "infer",
        &s(&dir),
        "--state",
        &s(&state),
        "--top-n",
        "3",
        "--json",
    ]);
    assert_eq!(o.stdout, again.stdout);
}

#[test]
fn missing_member_dir_is_named() {
    let (tmp, dir) = fixture_copy();
    fs_err::remove_dir_all(dir.join("trial_0009")).unwrap();
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &[],
        &["trial_0009", "does not exist"],
    );
}

#[test]
fn truncated_safetensors_is_named() {
    let (tmp, dir) = fixture_copy();
    let f = dir.join("trial_0007/actor.safetensors");
    let bytes = fs_err::read(&f).unwrap();
    fs_err::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &[],
        &["trial_0007", "actor.safetensors", "truncated"],
    );
}

#[test]
fn tensor_with_the_wrong_shape_is_named() {
    let (tmp, dir) = fixture_copy();
    // params.json now says 65 hidden units; the tensors still have 64.
    let p = dir.join("trial_0004/params.json");
    edit_json(&p, "\"out\": 64", "\"out\": 65");
    edit_json(&p, "\"in\": 64", "\"in\": 65");
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &[],
        &["trial_0004", "net.0.weight", "[64, 364]", "[65, 364]"],
    );
}

#[test]
fn nan_weight_is_named() {
    let (tmp, dir) = fixture_copy();
    let f = dir.join("trial_0009/actor.safetensors");
    let mut bytes = fs_err::read(&f).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start =
        header["net.2.weight"]["data_offsets"][0].as_u64().unwrap() as usize + 8 + header_len;
    bytes[start + 8..start + 12].copy_from_slice(&f32::NAN.to_le_bytes());
    fs_err::write(&f, bytes).unwrap();
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &[],
        &["trial_0009", "net.2.weight", "non-finite", "index 2"],
    );
}

#[test]
fn layers_that_do_not_chain_are_named() {
    let (tmp, dir) = fixture_copy();
    edit_json(
        &dir.join("trial_0004/params.json"),
        "\"in\": 32",
        "\"in\": 31",
    );
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &[],
        &["trial_0004", "do not chain", "layers[2].in = 31"],
    );
}

#[test]
fn input_size_that_does_not_match_lookback_is_named() {
    let (tmp, dir) = fixture_copy();
    edit_json(
        &dir.join("trial_0004/params.json"),
        "\"lookback\": 12",
        "\"lookback\": 11",
    );
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &[],
        &["trial_0004", "layers[0].in = 364", "= 334"],
    );
}

#[test]
fn unknown_feature_is_named() {
    let (tmp, dir) = fixture_copy();
    edit_json(
        &dir.join("trial_0004/params.json"),
        "\"rsi_14\"",
        "\"rsi_15\"",
    );
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &[],
        &["trial_0004", "unknown feature \"rsi_15\""],
    );
}

#[test]
fn top_n_larger_than_the_ensemble_says_how_many() {
    let (tmp, dir) = fixture_copy();
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &["--top-n", "11"],
        &["top_n = 11", "only 10 members"],
    );
}

#[test]
fn state_of_the_wrong_length_is_refused() {
    let (tmp, dir) = fixture_copy();
    infer_err(
        &dir,
        &state_file(tmp.path(), 363),
        &[],
        &["state.json", "363 values", "364"],
    );
}

#[test]
fn cuda_on_a_cpu_build_is_a_clear_error() {
    let (tmp, dir) = fixture_copy();
    infer_err(
        &dir,
        &state_file(tmp.path(), 364),
        &["--device", "cuda"],
        &["built without the `cuda` feature"],
    );
}

#[test]
fn infer_agrees_with_the_independent_numpy_implementation() {
    let parity = repo().join("crates/trader-ensemble/tests/fixtures/parity");
    let states: Vec<Vec<f64>> =
        serde_json::from_str(&fs_err::read_to_string(parity.join("states.json")).unwrap()).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(parity.join("expected_numpy.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (i, state) in states.iter().enumerate() {
        let f = tmp.path().join(format!("state{i}.json"));
        fs_err::write(&f, serde_json::to_string(state).unwrap()).unwrap();
        let o = trader(&[
            "ensemble",
            "infer",
            &s(&parity.join("ensemble")),
            "--state",
            &s(&f),
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json(&o);
        assert_eq!(v["names"], expected["names"]);
        for (m, row) in v["members"].as_array().unwrap().iter().enumerate() {
            for (k, got) in row.as_array().unwrap().iter().enumerate() {
                let got = got.as_f64().unwrap();
                let want = expected["outputs"][i][m][k].as_f64().unwrap();
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs(),
                    "state {i} member {m} out {k}: {got} vs {want}"
                );
            }
        }
    }
}

//! Every command that loads an ensemble does the checks of `trader run`
//! first: the profile against its ensemble (history long enough for every
//! member: an error naming both numbers) and the budget of its own process
//! (refused: the table and exit 3, before any model is loaded).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

fn slice() -> PathBuf {
    repo().join("tests/fixtures/slice")
}

/// `trader ARGS` in `dir` (whose `configs/` is the sandbox's).
fn trader_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(dir)
        .args(["--config-dir", "configs"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs_err::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    fs_err::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Hidden units of the huge member: 4 * 815e6 * (364 + 1 + 3) + 12 bytes
/// of f32 weights, 1.2 TB.
const HUGE_HIDDEN: u64 = 815_000_000;

/// A sandbox whose best fixture member (trial_0004, in every profile's
/// top_n) is a consistent 1.2 TB member: params.json and the safetensors
/// header agree, and the file is as long as its header says (sparse: no
/// disk used).
fn sandbox_with_a_huge_member() -> tempfile::TempDir {
    let sb = sandbox();
    let member = sb.path().join("models/fixture-small/trial_0004");
    let params_path = member.join("params.json");
    let mut params: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&params_path).unwrap()).unwrap();
    params["layers"] = serde_json::json!([
        {"in": 364, "out": HUGE_HIDDEN, "activation": "relu"},
        {"in": HUGE_HIDDEN, "out": 3, "activation": "tanh"},
    ]);
    fs_err::write(&params_path, params.to_string()).unwrap();
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in [
        ("net.0.weight", vec![HUGE_HIDDEN, 364]),
        ("net.0.bias", vec![HUGE_HIDDEN]),
        ("net.2.weight", vec![3, HUGE_HIDDEN]),
        ("net.2.bias", vec![3]),
    ] {
        let bytes = shape.iter().product::<u64>() * 4;
        header.insert(
            name.to_owned(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::Value::Object(header).to_string();
    while !json.len().is_multiple_of(8) {
        json.push(' ');
    }
    let mut file = fs_err::File::create(member.join("actor.safetensors")).unwrap();
    file.write_all(&(json.len() as u64).to_le_bytes()).unwrap();
    file.write_all(json.as_bytes()).unwrap();
    file.set_len(8 + json.len() as u64 + offset).unwrap();
    assert!(offset > 1_199_000_000_000, "{offset}");
    sb
}

fn assert_refused(o: &Output, command: &str) {
    let out = stdout(o);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{command}: {:?}\n{out}{}",
        o.status,
        stderr(o)
    );
    assert!(
        out.contains("refused by the budget") && out.contains("verdict: REFUSED"),
        "{command}: {out}"
    );
}

#[test]
fn backtest_with_history_shorter_than_the_members_need_is_refused_naming_both_numbers() {
    let sb = sandbox();
    edit(
        &sb.path().join("configs/lean.toml"),
        "history_hours = 72",
        "history_hours = 24",
    );
    let out = sb.path().join("out");
    let o = trader_in(
        sb.path(),
        &[
            "backtest",
            "--profile",
            "lean",
            "--data",
            &slice().display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}{err}", stdout(&o));
    // The fixture's members need lookback 12 + the 60 h window - 1.
    assert!(
        err.contains("history_hours = 24") && err.contains("71 h"),
        "{err}"
    );
    assert!(
        err.lines().count() < 5,
        "one error, not a log per hour: {err}"
    );
    assert!(!out.join("metrics.json").exists());
}

#[test]
fn backtest_refuses_a_member_larger_than_the_machine_with_exit_3() {
    let sb = sandbox_with_a_huge_member();
    let out = sb.path().join("out");
    let o = trader_in(
        sb.path(),
        &[
            "backtest",
            "--profile",
            "lean",
            "--data",
            &slice().display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
    );
    assert_refused(&o, "backtest");
    assert!(stdout(&o).contains("trader backtest: profile lean"));
    assert!(!out.exists());
}

#[test]
fn compare_refuses_a_member_larger_than_the_machine_before_any_backtest() {
    let sb = sandbox_with_a_huge_member();
    let out = sb.path().join("cmp");
    let data = slice();
    for live in [false, true] {
        let mut args = vec![
            "compare",
            "--profiles",
            "full,lean",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        if live {
            args.push("--live");
        }
        let o = trader_in(sb.path(), &args);
        assert_refused(&o, &format!("compare live={live}"));
        assert!(!out.exists(), "live={live}: a child ran");
    }
}

#[test]
fn ensemble_infer_and_bench_refuse_a_member_larger_than_the_machine_with_exit_3() {
    let sb = sandbox_with_a_huge_member();
    let dir = sb.path().join("models/fixture-small");
    let state = sb.path().join("state.json");
    fs_err::write(&state, serde_json::to_string(&vec![0.0f32; 364]).unwrap()).unwrap();
    let (dir, state) = (dir.display().to_string(), state.display().to_string());
    let infer = trader(&["ensemble", "infer", &dir, "--state", &state]);
    assert_refused(&infer, "infer");
    assert!(stdout(&infer).contains("trader ensemble infer:"));
    let bench = trader(&["ensemble", "bench", &dir, "--iters", "1"]);
    assert_refused(&bench, "bench");
    // The shipped fixture fits: the check does not refuse a sane run.
    let fixture = repo().join("models/fixture-small").display().to_string();
    let o = trader(&["ensemble", "bench", &fixture, "--iters", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

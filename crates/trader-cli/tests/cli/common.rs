//! Helpers shared by the CLI tests: run the built `trader`, find the repo's files,
//! and make throw-away copies of configs and ensembles to break.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::must_use_candidate,
    clippy::missing_panics_doc
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn configs() -> PathBuf {
    repo().join("configs")
}

pub fn trader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("spawn trader")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), target).unwrap();
        }
    }
}

/// A temp dir holding `configs/` (copies of the shipped ones, pointing at a copy
/// of the fixture ensemble in `models/fixture-small`), to be broken by a test.
/// The shipped profiles trade `models/demo` with a 3000 USD minimum order;
/// the sandbox's copies are pointed at the fixture, whose exact shape
/// (lookback 12, 10 features, 10 members) the tests built on it rely on, and
/// trade orders from 10 USD, as those tests were written for.
pub fn sandbox() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&configs(), &tmp.path().join("configs"));
    for profile in ["full", "lean"] {
        let path = tmp.path().join("configs").join(format!("{profile}.toml"));
        let text = fs_err::read_to_string(&path).unwrap();
        // ... and at the order size those tests were written for.
        let text = text
            .replace("../models/demo", "../models/fixture-small")
            .replace("min_trade_notional = 3000.0", "min_trade_notional = 10.0");
        fs_err::write(&path, text).unwrap();
    }
    copy_dir(
        &repo().join("models/fixture-small"),
        &tmp.path().join("models/fixture-small"),
    );
    tmp
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

/// Writes a one-layer member (state -> 3 tanh outputs, zero weights) for the
/// three shipped symbols with this lookback and these features, and an
/// `ensemble_params.json` listing it, under `dir`.
pub fn write_linear_ensemble(dir: &Path, lookback: usize, features: &[&str]) {
    write_linear_ensemble_with(dir, lookback, features, |_, _| 0.0, [0.0; 3]);
}

/// As [`write_linear_ensemble`], with `weight(output, input)` and `bias`.
pub fn write_linear_ensemble_with(
    dir: &Path,
    lookback: usize,
    features: &[&str],
    weight: impl Fn(usize, usize) -> f32,
    bias: [f32; 3],
) {
    use safetensors::tensor::{Dtype, TensorView};
    let member = dir.join("trial_0000");
    fs_err::create_dir_all(&member).unwrap();
    let inputs = 1 + 3 + lookback * 3 * features.len();
    let weight: Vec<u8> = (0..3)
        .flat_map(|o| (0..inputs).map(move |i| (o, i)))
        .flat_map(|(o, i)| weight(o, i).to_le_bytes())
        .collect();
    let bias: Vec<u8> = bias.iter().flat_map(|b| b.to_le_bytes()).collect();
    let tensors = [
        (
            "net.0.weight",
            TensorView::new(Dtype::F32, vec![3, inputs], &weight).unwrap(),
        ),
        (
            "net.0.bias",
            TensorView::new(Dtype::F32, vec![3], &bias).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, &member.join("actor.safetensors")).unwrap();
    let params = serde_json::json!({
        "format": 1,
        "symbols": ["BTC/USD", "ETH/USD", "LTC/USD"],
        "lookback": lookback,
        "features": features,
        "layers": [{"in": inputs, "out": 3, "activation": "tanh"}],
        "normalize": null,
        "score": 1.0,
        "hparams": {}
    });
    fs_err::write(member.join("params.json"), params.to_string()).unwrap();
    let ensemble =
        serde_json::json!({"format": 1, "members": [{"dir": "trial_0000", "score": 1.0}]});
    fs_err::write(dir.join("ensemble_params.json"), ensemble.to_string()).unwrap();
}

/// Points the sandbox's lean profile at a momentum policy that rebalances
/// every hour: action of symbol s = tanh(0.5 + 60 x its last log return).
pub fn use_momentum_policy(tmp: &Path) {
    write_linear_ensemble_with(
        &tmp.join("models/momentum"),
        1,
        &["log_return"],
        |o, i| if i == 4 + o { 60.0 } else { 0.0 },
        [0.5, 0.5, 0.5],
    );
    let lean = tmp.join("configs/lean.toml");
    let text = fs_err::read_to_string(&lean).unwrap();
    fs_err::write(
        &lean,
        text.replace("../models/fixture-small", "../models/momentum")
            .replace("top_n = 5", "top_n = 1"),
    )
    .unwrap();
}

/// `query` on the SQLite file `db` through the `sqlite3` CLI, trimmed.
/// The members listed in `dir/ensemble_params.json`, as written: (directory,
/// score).
pub fn members(dir: &Path) -> Vec<(String, f64)> {
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(dir.join("ensemble_params.json")).unwrap())
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

pub fn sql(db: &Path, query: &str) -> String {
    let o = Command::new("sqlite3").arg(db).arg(query).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// Starts `trader sim` over the shipped data with these key pairs and extra
/// flags; returns the child and its URL.
pub fn start_sim(tmp: &Path, pairs: &[(&str, &str)], extra: &[&str]) -> (Child, String) {
    let keys = tmp.join(format!("keys-{}.toml", pairs[0].0));
    let mut text = String::new();
    for (k, s) in pairs {
        text += &format!("[[keys]]\nkey_id = \"{k}\"\nsecret_key = \"{s}\"\n\n");
    }
    fs_err::write(&keys, text).unwrap();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_trader"))
        .args([
            "sim",
            "--data",
            &repo().join("data/coinbase_2017_2018").display().to_string(),
        ])
        .args(["--keys", &keys.display().to_string()])
        .args(extra)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (sim, line.trim().to_owned())
}

/// Starts `trader run` in `tmp` against the simulator at `url` with one key
/// pair, storing in `tmp/STORE`; stdout piped (for `--json`).
pub fn start_trader(
    tmp: &Path,
    url: &str,
    (key, secret): (&str, &str),
    store: &str,
    args: &[&str],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp)
        .args(["--config-dir", "configs", "run"])
        .args(args)
        .args(if args.contains(&"--metrics-port") {
            &[][..]
        } else {
            &["--no-metrics"][..]
        })
        .args(["--store", &tmp.join(store).display().to_string()])
        .env("APCA_API_KEY_ID", key)
        .env("APCA_API_SECRET_KEY", secret)
        .env("APCA_API_BASE_URL", url)
        .env("APCA_API_DATA_URL", url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

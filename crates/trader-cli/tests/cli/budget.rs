//! `trader budget` end to end: the shipped profiles, the user's GPU situation,
//! and every kind of bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

/// The shipped configs pointed at models/fixture-small (whose exact numbers
/// these tests check), in a temp dir made once per test binary and left in
/// the temp folder (small: the fixture's 1.6 MB).
fn cfg() -> String {
    static SANDBOX: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    SANDBOX
        .get_or_init(|| sandbox().keep())
        .join("configs")
        .display()
        .to_string()
}

#[test]
fn shipped_profiles_with_the_demo_ensemble_fit_on_this_machine() {
    let shipped = configs().display().to_string();
    for profile in ["full", "lean"] {
        let o = trader(&[
            "budget",
            "--profile",
            profile,
            "--config-dir",
            &shipped,
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{profile}: {}", stderr(&o));
        let v = json(&o);
        assert_eq!(v["verdict"], "fits", "{v}");
        let weights = |v: &serde_json::Value| -> String {
            v["trader_terms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["component"] == "weights")
                .unwrap()["basis"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let basis = weights(&v);
        let members = if profile == "full" { 10 } else { 5 };
        assert!(basis.contains(&format!("in {members} members")), "{basis}");
        // The demo's members, not the fixture's.
        let fixture = json(&trader(&[
            "budget",
            "--profile",
            profile,
            "--config-dir",
            &cfg(),
            "--json",
        ]));
        assert_ne!(basis, weights(&fixture));
    }
}

#[test]
fn lean_profile_fits_on_this_machine_and_prints_the_table() {
    let o = trader(&["budget", "--profile", "lean", "--config-dir", &cfg()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for needle in [
        "runtime base",
        "weights",
        "load transient",
        "activations",
        "history",
        "store cache",
        "threads",
        "training-worker",
        "monitoring",
        "total",
        "headroom",
        "verdict: FITS",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // A CPU trader adds no VRAM: the co-tenants' overrun is a warning, not a refusal.
    assert!(out.contains("warning: VRAM"), "{out}");
    // The backtest's own terms, as in the JSON's `backtest` section.
    let backtest = out
        .split("  trader backtest (")
        .nth(1)
        .unwrap_or_else(|| panic!("no backtest section in:\n{out}"));
    assert!(
        backtest.starts_with("720 decided hours in memory, 256-hour batched blocks)"),
        "{backtest}"
    );
    for needle in ["projection", "records", "backtest loop", "= backtest"] {
        assert!(
            backtest.contains(needle),
            "missing {needle:?} in:\n{backtest}"
        );
    }
}

#[test]
fn lean_json_parses_with_a_top_level_verdict() {
    let o = trader(&[
        "budget",
        "--profile",
        "lean",
        "--config-dir",
        &cfg(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["verdict"], "fits");
    assert_eq!(v["profile"], "lean");
    assert_eq!(v["knobs"]["top_n"], 5);
    assert_eq!(v["knobs"]["history_hours"], 72);
    // 5 members x 25,539 params x 4 B, read from the safetensors headers.
    let weights = v["trader_terms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["component"] == "weights")
        .unwrap();
    assert_eq!(weights["ram_bytes"], 5 * 25_539 * 4);
    // 72 h x 3 symbols x 48 B.
    let history = v["trader_terms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["component"] == "history")
        .unwrap();
    assert_eq!(
        history["ram_bytes"],
        72 * 3 * trader_budget::RUN_HISTORY_BYTES_PER_SYMBOL_HOUR
    );
}

#[test]
fn users_gpu_situation_is_refused_and_seven_workers_fit() {
    let host = configs().join("host.toml").display().to_string();
    let base = [
        "budget",
        "--profile",
        "full",
        "--config-dir",
        &cfg(),
        "--host",
        &host,
        "--device",
        "cuda",
    ];

    let o = trader(&[&base[..], &["--json"]].concat());
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    let v = json(&o);
    assert_eq!(v["verdict"], "refused");
    // The user's figures: 9 x 850 MB = 7.65 GB ("7.6 GB"), 93 % of 8.2 GB.
    assert_eq!(v["vram"]["tenants"], 7_650_000_000_u64);
    let pct = v["vram"]["tenants_percent_of_machine"].as_f64().unwrap();
    assert_eq!(pct.round() as i64, 93, "{pct}");
    assert_eq!(v["envelope"]["vram"]["machine_total"], 8_200_000_000_u64);
    let fixes: Vec<String> = v["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fixes.first().map(String::as_str),
        Some("--workers 7"),
        "{fixes:?}"
    );
    // Fewer members cannot help: the workers alone are over the 85 % line.
    assert!(!fixes.iter().any(|f| f.starts_with("--top-n")), "{fixes:?}");
    assert!(fixes.iter().any(|f| f == "--device cpu"), "{fixes:?}");

    let text = stdout(&trader(&base));
    assert!(
        text.contains("verdict: REFUSED") && text.contains("--workers 7"),
        "{text}"
    );
    assert!(text.contains("VRAM: needs"), "{text}");

    let o = trader(&[&base[..], &["--workers", "7", "--json"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v = json(&o);
    assert_eq!(v["verdict"], "fits");
    // 7 x 850 MB = 5.95 GB ("6.0 GB"), 73 % of 8.2 GB.
    assert_eq!(v["vram"]["tenants"], 5_950_000_000_u64);
    let pct = v["vram"]["tenants_percent_of_machine"].as_f64().unwrap();
    assert_eq!(pct.round() as i64, 73, "{pct}");
    let pct = v["vram"]["percent_of_machine"].as_f64().unwrap();
    assert!(pct > 73.0 && pct < 85.0, "{pct}");

    // 8 workers leave too little for a CUDA context: 7 is the largest that fits.
    let o = trader(&[&base[..], &["--workers", "8"]].concat());
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
}

#[test]
fn what_if_flags_change_the_numbers() {
    let o = trader(&[
        "budget",
        "--profile",
        "full",
        "--config-dir",
        &cfg(),
        "--top-n",
        "3",
        "--dtype",
        "f16",
        "--history-hours",
        "100",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["knobs"]["top_n"], 3);
    assert_eq!(v["knobs"]["dtype"], "f16");
    let weights = v["trader_terms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["component"] == "weights")
        .unwrap();
    assert_eq!(weights["ram_bytes"], 3 * 25_539 * 2);
}

#[test]
fn tiny_ram_envelope_is_refused_with_computed_fixes() {
    let sb = sandbox();
    let host = sb.path().join("configs/host.toml");
    let text = fs_err::read_to_string(&host).unwrap();
    // 12.5 GB x 90 % = 11.25 GB: the 9 workers' RAM alone; 7 workers leave room.
    fs_err::write(&host, text.replace("ram = \"auto\"", "ram = \"12.5GB\"")).unwrap();
    let o = trader(&[
        "budget",
        "--profile",
        "lean",
        "--config-dir",
        &sb.path().join("configs").display().to_string(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let v = json(&o);
    assert!(v["reasons"][0].as_str().unwrap().starts_with("RAM"), "{v}");
    assert_eq!(v["fixes"][0]["flag"], "--workers 8");
}

#[test]
fn profile_may_be_a_path() {
    let path = configs().join("lean.toml").display().to_string();
    let o = trader(&["budget", "--profile", &path, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

// ---- bad input: exit 1, the message names the file and the key or value ----

fn expect_error(args: &[&str], needles: &[&str]) {
    let o = trader(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}{err}", stdout(&o));
    for n in needles {
        assert!(err.contains(n), "{args:?}: missing {n:?} in: {err}");
    }
}

fn edit(path: &std::path::Path, from: &str, to: &str) {
    let text = fs_err::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    fs_err::write(path, text.replacen(from, to, 1)).unwrap();
}

fn budget_in(sb: &tempfile::TempDir, profile: &str) -> Vec<String> {
    vec![
        "budget".into(),
        "--profile".into(),
        profile.into(),
        "--config-dir".into(),
        sb.path().join("configs").display().to_string(),
    ]
}

fn run_err(sb: &tempfile::TempDir, profile: &str, needles: &[&str]) {
    let args = budget_in(sb, profile);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    expect_error(&args, needles);
}

#[test]
fn unknown_key_in_profile_is_named() {
    let sb = sandbox();
    edit(
        &sb.path().join("configs/lean.toml"),
        "top_n = 5",
        "top_n = 5\nfp16 = true",
    );
    run_err(&sb, "lean", &["lean.toml", "unknown field `fp16`"]);
}

#[test]
fn wrong_type_in_profile_is_named() {
    let sb = sandbox();
    edit(
        &sb.path().join("configs/lean.toml"),
        "history_hours = 72",
        "history_hours = \"72h\"",
    );
    run_err(&sb, "lean", &["lean.toml", "history_hours"]);
}

#[test]
fn zero_and_negative_values_are_named() {
    let sb = sandbox();
    edit(
        &sb.path().join("configs/lean.toml"),
        "top_n = 5",
        "top_n = 0",
    );
    run_err(&sb, "lean", &["lean.toml", "top_n"]);
    let sb = sandbox();
    edit(
        &sb.path().join("configs/host.toml"),
        "vram = \"850MB\"",
        "vram = \"-850MB\"",
    );
    run_err(&sb, "lean", &["host.toml", "-850MB", "negative"]);
    let sb = sandbox();
    edit(
        &sb.path().join("configs/host.toml"),
        "ram = \"0.6GB\"",
        "ram = \"0GB\"",
    );
    run_err(&sb, "lean", &["host.toml", "0GB", "zero"]);
}

#[test]
fn unparsable_size_is_named() {
    let sb = sandbox();
    edit(
        &sb.path().join("configs/host.toml"),
        "vram = \"8.2GB\"",
        "vram = \"8.2 gigabytes\"",
    );
    run_err(&sb, "lean", &["host.toml", "8.2 gigabytes", "vram"]);
}

#[test]
fn missing_profile_is_named() {
    let sb = sandbox();
    run_err(&sb, "medium", &["\"medium\"", "medium.toml", "not found"]);
}

#[test]
fn missing_ensemble_dir_is_named() {
    let sb = sandbox();
    fs_err::remove_dir_all(sb.path().join("models/fixture-small")).unwrap();
    run_err(
        &sb,
        "lean",
        &["fixture-small", "does not exist", "lean.toml"],
    );
}

#[test]
fn corrupt_safetensors_header_is_named() {
    let sb = sandbox();
    let weights = sb
        .path()
        .join("models/fixture-small/trial_0004/actor.safetensors");
    let mut bytes = fs_err::read(&weights).unwrap();
    bytes[8..16].copy_from_slice(b"!garbage");
    fs_err::write(&weights, bytes).unwrap();
    run_err(
        &sb,
        "lean",
        &[
            "trial_0004",
            "actor.safetensors",
            "corrupt safetensors header",
        ],
    );
}

#[test]
fn truncated_safetensors_is_named() {
    let sb = sandbox();
    let weights = sb
        .path()
        .join("models/fixture-small/trial_0004/actor.safetensors");
    let bytes = fs_err::read(&weights).unwrap();
    fs_err::write(&weights, &bytes[..bytes.len() - 100]).unwrap();
    run_err(&sb, "lean", &["trial_0004", "truncated"]);
}

#[test]
fn top_n_larger_than_the_ensemble_says_how_many_there_are() {
    let o = trader(&[
        "budget",
        "--profile",
        "full",
        "--config-dir",
        &cfg(),
        "--top-n",
        "12",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("top_n = 12") && err.contains("only 10 members"),
        "{err}"
    );
}

#[test]
fn history_shorter_than_the_models_need_names_both_numbers() {
    let o = trader(&[
        "budget",
        "--profile",
        "lean",
        "--config-dir",
        &cfg(),
        "--history-hours",
        "60",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("history_hours = 60") && err.contains("71 h"),
        "{err}"
    );
}

#[test]
fn bad_flag_value_is_a_usage_error() {
    let o = trader(&[
        "budget",
        "--profile",
        "lean",
        "--config-dir",
        &cfg(),
        "--dtype",
        "f8",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("f8"));
}

#[test]
fn measure_replaces_declared_tenants_with_what_is_in_use() {
    let o = trader(&[
        "budget",
        "--profile",
        "lean",
        "--config-dir",
        &cfg(),
        "--measure",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let tenants = v["tenants"].as_array().unwrap();
    assert_eq!(tenants[0]["name"], "in use now (measured)");
    let used = tenants[0]["ram"].as_u64().unwrap();
    let total = v["envelope"]["ram"]["machine_total"].as_u64().unwrap();
    assert!(used > 0 && used < total, "{used} of {total}");
    // No GPU here: the declared VRAM tenants stay, with their RAM now measured.
    assert!(
        tenants
            .iter()
            .any(|t| t["name"] == "training-worker" && t["ram"] == 0)
    );
    assert!(
        v["warnings"].to_string().contains("no GPU found"),
        "{}",
        v["warnings"]
    );
}

#[test]
fn workers_flag_without_a_worker_tenant_is_an_error() {
    let sb = sandbox();
    let host = sb.path().join("configs/host.toml");
    let text = fs_err::read_to_string(&host).unwrap();
    fs_err::write(&host, text.replace("training-worker", "trainer")).unwrap();
    let args = budget_in(&sb, "lean");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--workers", "3"]);
    expect_error(&args, &["--workers", "\"training-worker\""]);
}

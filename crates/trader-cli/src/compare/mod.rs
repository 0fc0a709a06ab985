//! `trader compare --profiles A,B [--data DIR] [--from T] [--to T] [--out DIR]`:
//! each profile's backtest in its own process (so each peak RSS is its own),
//! then one report: metrics side by side and their difference, decision
//! agreement, and resources (the budget's prediction next to the measured
//! peak RSS, decision latency). Writes `report.json`, `report.md` and
//! `equity.svg` (both equity curves and buy-and-hold, drawdowns below).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use trader_budget::Tenant;
use trader_engine::{Decisions, decision_agreement};

use crate::gate::{Gate, admit};
mod live;

use crate::supervise::{Interrupted, Stop, Supervised};
use crate::{Outcome, output};
use trader_files::{self as files, Staged};

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Two profiles, comma-separated (names or TOML paths).
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) profiles: Vec<String>,
    /// Recorded set (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    pub(crate) data: PathBuf,
    /// First hour decided, RFC 3339.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Last hour decided, RFC 3339.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Report directory (each profile's files go in a subdirectory).
    #[arg(long, default_value = "compare")]
    pub(crate) out: PathBuf,
    /// Instead of backtests: two concurrent `trader run` against one
    /// standalone simulator (separate accounts and stores), reported from
    /// their stores.
    #[arg(long)]
    pub(crate) live: bool,
    /// --live: how long both traders run, in real seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) duration_secs: u64,
    /// --live: the simulator's speed (simulated seconds per real second).
    #[arg(long, default_value_t = 3600.0)]
    pub(crate) speed: f64,
    /// --live: the simulator's start, RFC 3339 (default: 30 days before the
    /// end of the recorded set).
    #[arg(long)]
    pub(crate) start: Option<String>,
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The decided (not skipped) hours of a backtest's decisions.csv.
fn read_decisions(path: &Path) -> anyhow::Result<Decisions> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for record in reader.records() {
        let r = record.with_context(|| format!("reading {}", path.display()))?;
        if !r.get(3).unwrap_or("").is_empty() {
            continue; // skipped hour
        }
        let aggregate: Vec<f64> = serde_json::from_str(r.get(1).unwrap_or("[]"))?;
        let targets: BTreeMap<String, f64> = serde_json::from_str(r.get(2).unwrap_or("{}"))?;
        out.insert(r.get(0).unwrap_or("").to_owned(), (aggregate, targets));
    }
    Ok(out)
}

/// Runs each profile's backtest in its own process into `out/NAME/`;
/// returns the names.
fn produce_backtests(
    a: &CompareArgs,
    config_dir: &Path,
    profiles: [&String; 2],
    stop: &Stop,
) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe().context("finding the trader binary")?;
    let mut names = Vec::new();
    for profile in profiles {
        let name = profile_name(profile);
        let dir = a.out.join(&name);
        let mut cmd = Command::new(&exe);
        cmd.arg("--config-dir")
            .arg(config_dir)
            .args(["backtest", "--profile", profile, "--json", "--out"])
            .arg(&dir)
            .arg("--data")
            .arg(&a.data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(f) = &a.from {
            cmd.args(["--from", f]);
        }
        if let Some(t) = &a.to {
            cmd.args(["--to", t]);
        }
        // The child is gone when `run_child` returns: what it left
        // half-written goes (its finished files replace the old ones whole
        // or not at all).
        run_child(&mut cmd, profile, stop).inspect_err(|_| {
            let _ = files::remove_stale(&dir);
        })?;
        names.push(name);
    }
    Ok(names)
}

/// Runs one backtest child to its end (or kills it on a signal).
fn run_child(cmd: &mut Command, profile: &str, stop: &Stop) -> anyhow::Result<()> {
    let mut child = Supervised::spawn(cmd, &format!("the backtest of {profile}"))?;
    let status = child.wait(stop)?;
    if !status.success() {
        bail!(
            "the backtest of {profile} failed ({status}): {}",
            child.stderr_text().trim()
        );
    }
    Ok(())
}

/// The directory name of a profile argument (`lean`, or `x/y.toml` -> `y`).
pub(crate) fn profile_name(profile: &str) -> String {
    Path::new(profile)
        .file_stem()
        .map_or_else(|| profile.to_owned(), |s| s.to_string_lossy().into_owned())
}

/// equity.csv of a backtest: equity, buy-and-hold, and the first hour.
fn read_equity(path: &Path) -> anyhow::Result<(Vec<f64>, Vec<f64>, String)> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut eq, mut bh, mut first) = (Vec::new(), Vec::new(), None);
    for record in reader.records() {
        let r = record.with_context(|| format!("reading {}", path.display()))?;
        first.get_or_insert_with(|| r.get(0).unwrap_or("").to_owned());
        eq.push(r.get(1).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN));
        bh.push(r.get(2).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN));
    }
    Ok((eq, bh, first.unwrap_or_default()))
}

/// The checks of `trader run` for both profiles (the profile against its
/// ensemble, the budget): each backtest alone in its process, or with
/// `--live` both traders at once, each counted as a co-tenant of the other.
/// Returns each one's predicted RSS; `None` when refused (the table printed).
fn admit_both(
    a: &CompareArgs,
    config_dir: &Path,
    profiles: [&String; 2],
) -> anyhow::Result<Option<[u64; 2]>> {
    let command = if a.live { "compare --live" } else { "compare" };
    let resolved =
        |p: &str| trader_budget::resolve(p, None, &trader_budget::WhatIf::default(), config_dir);
    let (inputs_a, mut inputs_b) = (resolved(profiles[0])?, resolved(profiles[1])?);
    let first = match admit(command, inputs_a)? {
        Gate::Fits(admitted) => admitted,
        Gate::Refused => return Ok(None),
    };
    let predicted_a = predicted_rss(&first.report);
    if a.live {
        inputs_b.tenants.push(Tenant {
            name: format!("trader run --profile {} (compare --live)", profiles[0]),
            count: 1,
            ram_each: predicted_a,
            vram_each: first.report.trader_terms.iter().map(|t| t.vram_bytes).sum(),
        });
    }
    let second = match admit(command, inputs_b)? {
        Gate::Fits(admitted) => admitted,
        Gate::Refused => return Ok(None),
    };
    Ok(Some([predicted_a, predicted_rss(&second.report)]))
}

/// The RAM the budget predicts for the trader itself.
fn predicted_rss(report: &trader_budget::Report) -> u64 {
    report.trader_terms.iter().map(|t| t.ram_bytes).sum()
}

pub(crate) fn run(a: &CompareArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let [pa, pb] = a.profiles.as_slice() else {
        bail!(
            "--profiles takes two profiles, e.g. full,lean (got {})",
            a.profiles.len()
        );
    };
    // Both profiles pass the checks of `trader run` before anything starts.
    let Some(predicted) = admit_both(a, config_dir, [pa, pb])? else {
        return Ok(Outcome::Refused);
    };
    let stop = Stop::install()?;
    let produced = if a.live {
        live::produce(a, config_dir, [pa, pb], &stop)
    } else {
        produce_backtests(a, config_dir, [pa, pb], &stop)
    };
    let names = match produced {
        Ok(names) => names,
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            output::eprint(&format!("trader compare: {e:#}; no report written\n"));
            return Ok(Outcome::Interrupted);
        }
        Err(e) => return Err(e),
    };
    let mut reports = Vec::new();
    for (predicted, name) in predicted.into_iter().zip(names) {
        let dir = a.out.join(&name);
        let metrics = read_json(&dir.join("metrics.json"))?;
        let resources = read_json(&dir.join("resources.json"))?;
        let decisions = read_decisions(&dir.join("decisions.csv"))?;
        reports.push((name, metrics, resources, decisions, predicted));
    }
    let (na, ma, ra, da, pra) = &reports[0];
    let (nb, mb, rb, db, prb) = &reports[1];
    let mut difference = serde_json::Map::new();
    if let (Some(oa), Some(ob)) = (ma.as_object(), mb.as_object()) {
        for (k, va) in oa {
            if let (Some(x), Some(y)) = (va.as_f64(), ob.get(k).and_then(Value::as_f64)) {
                difference.insert(k.clone(), json!(y - x));
            }
        }
    }
    let agree = decision_agreement(da, db);
    let resources = |r: &Value, predicted: u64| {
        json!({
            "budget_predicted_rss_bytes": predicted,
            "peak_rss_bytes": r["peak_rss_bytes"],
            "decision_latency_us_p50": r["decision_latency_us_p50"],
            "decision_latency_us_p99": r["decision_latency_us_p99"],
        })
    };
    let report = json!({
        "profiles": [na, nb],
        "metrics": { na.as_str(): ma, nb.as_str(): mb },
        "difference": { "of": format!("{nb} - {na}"), "values": difference },
        "agreement": {
            "hours_compared": agree.hours,
            "same_way_share": agree.same_way_share,
            "mean_abs_action_difference": agree.mean_abs_action_difference,
        },
        "resources": { na.as_str(): resources(ra, *pra), nb.as_str(): resources(rb, *prb) },
    });
    fs_err::create_dir_all(&a.out)?;
    let (eq_a, bh, first) = read_equity(&a.out.join(na).join("equity.csv"))?;
    let (eq_b, _, _) = read_equity(&a.out.join(nb).join("equity.csv"))?;
    let md = render_md(&report, na, nb);
    // The three replaced together, once all are written.
    let mut staged = Staged::default();
    staged.add(
        &a.out.join("report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    staged.add_with(&a.out.join("equity.svg"), |svg| {
        crate::plot::equity_svg(
            svg,
            &first,
            &[
                crate::plot::Curve {
                    name: na,
                    values: &eq_a,
                },
                crate::plot::Curve {
                    name: nb,
                    values: &eq_b,
                },
                crate::plot::Curve {
                    name: "buy and hold",
                    values: &bh,
                },
            ],
        )
    })?;
    staged.add(&a.out.join("report.md"), &md)?;
    staged.commit()?;
    output::print(&md);
    Ok(Outcome::Ok)
}

fn render_md(report: &Value, a: &str, b: &str) -> String {
    let r = report;
    let mut md = format!(
        "# trader compare: {a} vs {b}\n\n| metric | {a} | {b} | {b} - {a} |\n|---|---|---|---|\n"
    );
    if let Some(m) = r["metrics"][a].as_object() {
        for (k, va) in m {
            let vb = &r["metrics"][b][k];
            let diff = &r["difference"]["values"][k];
            let fmt = |v: &Value| match v.as_f64() {
                Some(x) if v.is_f64() => format!("{x:.6}"),
                _ => v.to_string().trim_matches('"').to_owned(),
            };
            md += &format!(
                "| {k} | {} | {} | {} |\n",
                fmt(va),
                fmt(vb),
                if diff.is_null() {
                    String::new()
                } else {
                    fmt(diff)
                }
            );
        }
    }
    let agree = &r["agreement"];
    md += &format!(
        "\n## Decision agreement\n\n{} hours compared: target weights point the same way (same symbols held) in {:.1} % of them; mean absolute difference of the aggregated actions {:.4}.\n",
        agree["hours_compared"],
        agree["same_way_share"].as_f64().unwrap_or(0.0) * 100.0,
        agree["mean_abs_action_difference"].as_f64().unwrap_or(0.0)
    );
    md += &format!("\n## Resources\n\n| | {a} | {b} |\n|---|---|---|\n");
    for (label, key, scale) in [
        ("budget predicts (MB)", "budget_predicted_rss_bytes", 1e6),
        ("peak RSS measured (MB)", "peak_rss_bytes", 1e6),
        ("decision latency p50 (us)", "decision_latency_us_p50", 1.0),
        ("decision latency p99 (us)", "decision_latency_us_p99", 1.0),
    ] {
        let v = |p: &str| {
            r["resources"][p][key]
                .as_f64()
                .map_or_else(String::new, |x| format!("{:.1}", x / scale))
        };
        md += &format!("| {label} | {} | {} |\n", v(a), v(b));
    }
    md
}

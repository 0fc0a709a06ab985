//! `trader compare --live`: a standalone `trader sim` (one key pair per
//! profile), two `trader run` processes against it for `--duration-secs`,
//! stopped with SIGTERM, then each profile's metrics, equity and decisions
//! from its own store, written as the files a backtest writes so the same
//! report is built from them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use trader_config::Profile;
use trader_core::{HOUR_SECS, format_time};
use trader_store::Store;

use crate::backtest_cmd::{Hourly, buy_and_hold, load_bars, report_files};
use crate::compare_cmd::{CompareArgs, profile_name};

fn spawn_sim(a: &CompareArgs, keys: &Path) -> anyhow::Result<(Child, String)> {
    let exe = std::env::current_exe().context("finding the trader binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("sim")
        .arg("--data")
        .arg(&a.data)
        .arg("--keys")
        .arg(keys)
        .args(["--speed", &a.speed.to_string()])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(s) = &a.start {
        cmd.args(["--start", s]);
    }
    let mut child = cmd.spawn().context("starting the simulator")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let url = line.trim().to_owned();
    if !url.starts_with("http://") {
        let _ = child.kill();
        bail!("the simulator did not start (printed {url:?})");
    }
    Ok((child, url))
}

/// Writes `out/NAME/{metrics.json, resources.json, equity.csv,
/// decisions.csv}` for both profiles from their live runs; returns the names.
pub(crate) fn produce(
    a: &CompareArgs,
    config_dir: &Path,
    profiles: [&String; 2],
) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(&a.out)?;
    let names: Vec<String> = profiles.iter().map(|p| profile_name(p)).collect();
    // One generated key pair per profile: separate accounts.
    let pairs: Vec<(String, String)> = names
        .iter()
        .map(|n| {
            (
                format!("PKCMP{}", n.to_uppercase()),
                format!("compare-{n}-{:016x}", fastrand::u64(..)),
            )
        })
        .collect();
    let keys = a.out.join("sim-keys.toml");
    let text: String = pairs.iter().fold(String::new(), |acc, (k, s)| {
        acc + &format!("[[keys]]\nkey_id = \"{k}\"\nsecret_key = \"{s}\"\n\n")
    });
    std::fs::write(&keys, text)?;
    let started = spawn_sim(a, &keys);
    // The simulator has read its throwaway keys (or failed): none stay on disk.
    let _ = std::fs::remove_file(&keys);
    let (mut sim, url) = started?;
    let exe = std::env::current_exe().context("finding the trader binary")?;
    let mut traders = Vec::new();
    for ((profile, name), (key, secret)) in profiles.iter().zip(&names).zip(&pairs) {
        let dir = a.out.join(name);
        std::fs::create_dir_all(&dir)?;
        let _ = std::fs::remove_file(dir.join("store.sqlite"));
        let child = Command::new(&exe)
            .arg("--config-dir")
            .arg(config_dir)
            .args([
                "run",
                "--profile",
                profile,
                "--json",
                "--no-metrics",
                "--speed",
                &a.speed.to_string(),
            ])
            .arg("--store")
            .arg(dir.join("store.sqlite"))
            .env("APCA_API_KEY_ID", key)
            .env("APCA_API_SECRET_KEY", secret)
            .env("APCA_API_BASE_URL", &url)
            .env("APCA_API_DATA_URL", &url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting trader run --profile {profile}"))?;
        traders.push(child);
    }
    std::thread::sleep(Duration::from_secs(a.duration_secs));
    let mut summaries = Vec::new();
    for child in traders {
        // SIGTERM: each trader finishes its step and its run.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let o = child.wait_with_output()?;
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout)
            .with_context(|| "a trader ended without its summary".to_owned())?;
        summaries.push(summary);
    }
    let _ = sim.kill();
    let _ = sim.wait();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for ((profile, name), summary) in profiles.iter().zip(&names).zip(&summaries) {
        let dir = a.out.join(name);
        let resources = serde_json::json!({
            "peak_rss_bytes": summary["peak_rss_bytes"],
            "decision_latency_us_p50": summary["decision_latency_us_p50"],
            "decision_latency_us_p99": summary["decision_latency_us_p99"],
        });
        std::fs::write(
            dir.join("resources.json"),
            serde_json::to_string_pretty(&resources)? + "\n",
        )?;
        let run_id = summary["run_id"].as_i64().unwrap_or(0);
        let profile = Profile::load(profile, config_dir)?;
        let bars = load_bars(&profile, &a.data)?;
        runtime.block_on(write_files(&dir, name, run_id, &bars, a.duration_secs))?;
    }
    Ok(names)
}

/// metrics.json, equity.csv and decisions.csv of one live run, from its store.
async fn write_files(
    dir: &Path,
    name: &str,
    run_id: i64,
    bars: &std::collections::BTreeMap<trader_core::Symbol, Vec<trader_core::Bar>>,
    duration_secs: u64,
) -> anyhow::Result<()> {
    let store = Store::open(&dir.join("store.sqlite"), None).await?;
    let snapshots = store.equity_curve(run_id).await?;
    if snapshots.is_empty() {
        bail!(
            "{name} decided no hour in {duration_secs} s: run longer (--duration-secs) or faster (--speed)"
        );
    }
    let decided: Vec<i64> = snapshots.iter().map(|s| s.0).collect();
    let curve: Vec<f64> = snapshots.iter().map(|s| s.2).collect();
    let exposure: Vec<f64> = snapshots
        .iter()
        .map(|(_, cash, eq)| if *eq > 0.0 { 1.0 - cash / eq } else { 0.0 })
        .collect();
    let bh = buy_and_hold(bars, &decided);
    let (metrics, equity_csv, decisions_csv) = report_files(
        &store,
        run_id,
        name,
        &decided,
        Hourly {
            curve: &curve,
            exposure: &exposure,
            buy_and_hold: &bh,
        },
    )
    .await?;
    store.close().await;
    std::fs::write(
        dir.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)? + "\n",
    )?;
    std::fs::write(dir.join("equity.csv"), equity_csv)?;
    std::fs::write(dir.join("decisions.csv"), decisions_csv)?;
    tracing::info!(profile = %name, hours = decided.len(), from = %format_time(decided[0]), to = %format_time(decided[decided.len() - 1] + HOUR_SECS), "live run summarised");
    Ok(())
}

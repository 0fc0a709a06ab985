//! `trader compare --live`: a standalone `trader sim` (one key pair per
//! profile), two `trader run` processes against it for `--duration-secs`,
//! stopped with SIGTERM, then each profile's metrics, equity and decisions
//! from its own store, written as the files a backtest writes so the same
//! report is built from them. With `--store URL`, nothing is started: the
//! newest run of each profile is read from that shared store (traders on
//! other hosts).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use trader_config::Profile;
use trader_core::{Bar, Clock, HOUR_SECS, StoreLocation, Symbol, SystemClock, format_time};
use trader_engine::{Hourly, buy_and_hold, report_files};
use trader_files::{self as files, Staged};
use trader_store::Store;

use crate::supervise::Supervised;
use crate::{Comparison, Live, Stop, profile_name};

/// How long the simulator has to print its address.
const SIM_START: Duration = Duration::from_secs(30);

/// How long a trader has to finish its run after SIGTERM before it is killed.
const TRADER_GRACE: Duration = Duration::from_secs(10);

/// The same when this process was itself stopped: shorter, it was asked to end.
const STOP_GRACE: Duration = Duration::from_secs(2);

fn spawn_sim(
    c: &Comparison,
    live: &Live,
    keys: &Path,
    stop: &Stop,
) -> anyhow::Result<(Supervised, String)> {
    let mut cmd = Command::new(&c.trader_exe);
    cmd.arg("sim")
        .arg("--data")
        .arg(&c.data)
        .arg("--keys")
        .arg(keys)
        .args(["--speed", &live.speed.to_string()])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(s) = &live.start {
        cmd.args(["--start", s]);
    }
    let mut child = Supervised::spawn(&mut cmd, "the simulator")?;
    let line = child.next_line(stop, SIM_START)?.unwrap_or_default();
    let url = line.trim().to_owned();
    if !url.starts_with("http://") {
        bail!("the simulator did not start (printed {url:?})");
    }
    Ok((child, url))
}

/// The profile's bars of the recorded set (the one loader), for buy-and-hold.
fn recorded_bars(profile: &Profile, data: &Path) -> anyhow::Result<BTreeMap<Symbol, Vec<Bar>>> {
    trader_recorded::read_recorded_symbols(data, &profile.symbols, SystemClock.now())
        .with_context(|| format!("profile {} cannot be reported", profile.name))
}

/// Writes `out/NAME/{metrics.json, resources.json, equity.csv,
/// decisions.csv}` for both profiles from their live runs; returns the names.
/// The simulator and the traders end with this process: at
/// `--duration-secs`, on the caller's [`Stop`], or on an error.
pub(crate) fn produce(c: &Comparison, live: &Live, stop: &Stop) -> anyhow::Result<Vec<String>> {
    if let Some(store) = &live.store {
        return read_shared(c, store);
    }
    let profiles = &c.profiles;
    fs_err::create_dir_all(&c.out)?;
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
    let keys = c.out.join("sim-keys.toml");
    let text: String = pairs.iter().fold(String::new(), |acc, (k, s)| {
        acc + &format!("[[keys]]\nkey_id = \"{k}\"\nsecret_key = \"{s}\"\n\n")
    });
    // Written whole, readable by this user only.
    files::write_private(&keys, text)?;
    let started = spawn_sim(c, live, &keys, stop);
    // The simulator has read its throwaway keys (or failed): none stay on disk.
    let _ = fs_err::remove_file(&keys);
    let (mut sim, url) = started?;
    let mut traders = Vec::new();
    for ((profile, name), (key, secret)) in profiles.iter().zip(&names).zip(&pairs) {
        let dir = c.out.join(name);
        fs_err::create_dir_all(&dir)?;
        let _ = fs_err::remove_file(dir.join("store.sqlite"));
        let mut cmd = Command::new(&c.trader_exe);
        cmd.arg("--config-dir")
            .arg(&c.config_dir)
            .args([
                "run",
                "--profile",
                profile,
                "--json",
                "--no-metrics",
                "--speed",
                &live.speed.to_string(),
            ])
            .arg("--store")
            .arg(dir.join("store.sqlite"))
            .env("APCA_API_KEY_ID", key)
            .env("APCA_API_SECRET_KEY", secret)
            .env("APCA_API_BASE_URL", &url)
            .env("APCA_API_DATA_URL", &url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        traders.push(Supervised::spawn(
            &mut cmd,
            &format!("trader run --profile {profile}"),
        )?);
    }
    if let Err(interrupted) =
        stop.sleep_until(Instant::now() + Duration::from_secs(live.duration_secs))
    {
        // Each trader may still end its run cleanly; the guards kill the rest.
        for child in &mut traders {
            let _ = child.request_end();
        }
        for child in &mut traders {
            let _ = child.wait_or_kill(STOP_GRACE);
        }
        return Err(interrupted);
    }
    // SIGTERM to all at once: each trader finishes its step and its run.
    let mut summaries = Vec::new();
    for child in &mut traders {
        child.request_end()?;
    }
    for child in &mut traders {
        child.wait_or_kill(TRADER_GRACE)?;
    }
    for child in &mut traders {
        let summary: serde_json::Value = serde_json::from_str(&child.stdout_text())
            .with_context(|| "a trader ended without its summary".to_owned())?;
        summaries.push(summary);
    }
    sim.kill_and_wait()?;
    stop.check()?;
    write_live_files(c, live, &names, &summaries)?;
    Ok(names)
}

/// Each profile's files from its own store and its trader's summary.
fn write_live_files(
    c: &Comparison,
    live: &Live,
    names: &[String],
    summaries: &[serde_json::Value],
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for ((profile, name), summary) in c.profiles.iter().zip(names).zip(summaries) {
        let dir = c.out.join(name);
        let resources = serde_json::json!({
            "peak_rss_bytes": summary["peak_rss_bytes"],
            "decision_latency_us_p50": summary["decision_latency_us_p50"],
            "decision_latency_us_p99": summary["decision_latency_us_p99"],
        });
        let run_id = summary["run_id"].as_i64().unwrap_or(0);
        let profile = Profile::load(profile, &c.config_dir)?;
        let bars = recorded_bars(&profile, &c.data)?;
        let store = StoreLocation::Sqlite(dir.join("store.sqlite"));
        let none_decided = format!(
            "{name} decided no hour in {} s: run longer (--duration-secs) or faster (--speed)",
            live.duration_secs
        );
        runtime.block_on(async {
            let store = Store::open(&store, None).await?;
            let written = write_files(
                &store,
                &dir,
                (name, run_id),
                &bars,
                &none_decided,
                resources,
            )
            .await;
            store.close().await;
            written
        })?;
    }
    Ok(())
}

/// `--live --store URL`: the newest run of each profile in the shared
/// store, reported as if this process had run them (their RSS and
/// latency are the traders' own, not in the store: left empty).
fn read_shared(c: &Comparison, location: &StoreLocation) -> anyhow::Result<Vec<String>> {
    fs_err::create_dir_all(&c.out)?;
    let names: Vec<String> = c.profiles.iter().map(|p| profile_name(p)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime.block_on(Store::open(location, None))?;
    let read = names
        .iter()
        .zip(&c.profiles)
        .try_for_each(|(name, profile)| {
            let profile = Profile::load(profile, &c.config_dir)?;
            let Some(run) = runtime.block_on(store.profile_status(&profile.name))?.run else {
                bail!("profile {} has no run in {location}", profile.name);
            };
            let dir = c.out.join(name);
            fs_err::create_dir_all(&dir)?;
            let bars = recorded_bars(&profile, &c.data)?;
            let resources = serde_json::json!({
                "peak_rss_bytes": null,
                "decision_latency_us_p50": null,
                "decision_latency_us_p99": null,
            });
            let none_decided = format!(
                "{name}: its run {} in {location} decided no hour yet",
                run.id
            );
            runtime.block_on(write_files(
                &store,
                &dir,
                (name, run.id),
                &bars,
                &none_decided,
                resources,
            ))
        });
    runtime.block_on(store.close());
    read.map(|()| names)
}

/// metrics.json, equity.csv and decisions.csv of one live run, from
/// `store` (opened and closed by the caller), and its `resources`.
async fn write_files(
    store: &Store,
    dir: &Path,
    (name, run_id): (&str, i64),
    bars: &BTreeMap<Symbol, Vec<Bar>>,
    none_decided: &str,
    resources: serde_json::Value,
) -> anyhow::Result<()> {
    let snapshots = store.equity_curve(run_id).await?;
    if snapshots.is_empty() {
        bail!("{none_decided}");
    }
    let decided: Vec<i64> = snapshots.iter().map(|s| s.0).collect();
    let curve: Vec<f64> = snapshots.iter().map(|s| s.2).collect();
    let exposure: Vec<f64> = snapshots
        .iter()
        .map(|(_, cash, eq)| if *eq > 0.0 { 1.0 - cash / eq } else { 0.0 })
        .collect();
    let bh = buy_and_hold(bars, &decided);
    let (metrics, equity_csv, decisions_csv) = report_files(
        store,
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
    // The four replaced together, once all are written.
    let mut files = Staged::default();
    files.add(
        &dir.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)? + "\n",
    )?;
    files.add(&dir.join("equity.csv"), equity_csv)?;
    files.add(&dir.join("decisions.csv"), decisions_csv)?;
    files.add(
        &dir.join("resources.json"),
        serde_json::to_string_pretty(&resources)? + "\n",
    )?;
    files.commit()?;
    tracing::info!(profile = %name, hours = decided.len(), from = %format_time(decided[0]), to = %format_time(decided[decided.len() - 1] + HOUR_SECS), "live run summarised");
    Ok(())
}

//! `trader status --profile P`: what the store says about the profile's
//! trader (newest bar per symbol, newest run, decision, equity and positions,
//! orders that may still change) and, when the trader is up, what its
//! `/metrics` says (RSS, newest bar's age, active alerts). Reads the store only (read-only use: it
//! opens the file through the same migrations, so a missing file is an
//! error, never created).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde::Serialize;
use trader_config::Profile;
use trader_core::format_time;
use trader_store::{ProfileStatus, Store};

use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Profile name (configs/NAME.toml) or path to a TOML file.
    #[arg(long)]
    profile: String,
    /// SQLite store; default: the profile's `[store] path`.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StatusView {
    profile: String,
    store: PathBuf,
    newest_bars: Vec<(String, Option<String>)>,
    #[serde(flatten)]
    status: ProfileStatus,
    /// From the running trader's `/metrics`, when it answers.
    live: Option<LiveView>,
}

#[derive(Serialize)]
struct LiveView {
    url: String,
    rss_bytes: Option<f64>,
    last_bar_age_seconds: Option<f64>,
    /// Alerts holding now, by kind.
    alerts_active: Vec<(String, f64)>,
}

/// Reads the trader's `/metrics` on 127.0.0.1:`port`, if it answers.
async fn live_view(port: u16) -> Option<LiveView> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .ok()?;
    let text = client.get(&url).send().await.ok()?.text().await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let alerts_active = text
        .lines()
        .filter_map(|l| l.strip_prefix("trader_alert_active{kind=\""))
        .filter_map(|l| {
            let (kind, rest) = l.split_once('"')?;
            let n: f64 = rest.rsplit(' ').next()?.parse().ok()?;
            (n > 0.0).then(|| (kind.to_owned(), n))
        })
        .collect();
    Some(LiveView {
        rss_bytes: value("trader_rss_bytes "),
        last_bar_age_seconds: value("trader_last_bar_age_seconds "),
        alerts_active,
        url,
    })
}

pub(crate) fn run(a: &StatusArgs, config_dir: &std::path::Path) -> anyhow::Result<Outcome> {
    let profile = Profile::load(&a.profile, config_dir)?;
    let path = a
        .store
        .clone()
        .unwrap_or_else(|| profile.store_path.clone());
    if !path.exists() {
        bail!(
            "no store at {} (profile {}): the trader has not run yet",
            path.display(),
            profile.name
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let view = runtime.block_on(async {
        let store = Store::open(&path, None).await?;
        let mut newest_bars = Vec::new();
        for s in &profile.symbols {
            let last = store.latest_bars(s, 1, None).await?;
            newest_bars.push((
                s.as_str().to_owned(),
                last.first().map(|b| format_time(b.t)),
            ));
        }
        let status = store.profile_status(&profile.name).await?;
        store.close().await;
        let live = match profile.metrics_port {
            Some(port) if port > 0 => live_view(port).await,
            _ => None,
        };
        anyhow::Ok(StatusView {
            profile: profile.name.clone(),
            store: path.clone(),
            newest_bars,
            status,
            live,
        })
    })?;
    if a.json {
        output::print_json(&view)?;
    } else {
        output::print(&render(&view));
    }
    Ok(Outcome::Ok)
}

fn render(v: &StatusView) -> String {
    let mut out = format!(
        "trader status: profile {}, store {}\n",
        v.profile,
        v.store.display()
    );
    for (s, t) in &v.newest_bars {
        out += &format!("  newest bar   {s:<9} {}\n", t.as_deref().unwrap_or("none"));
    }
    let s = &v.status;
    match &s.run {
        Some((id, mode, started, ended)) => {
            out += &format!(
                "  run          {id} ({mode}), started {}, {}\n",
                format_time(*started),
                ended.map_or_else(
                    || "not finished (running, or stopped by a kill)".to_owned(),
                    |e| format!(
                        "{} {}",
                        s.run_outcome.as_deref().unwrap_or("ended"),
                        format_time(e)
                    )
                )
            );
            if let Some(error) = &s.run_error {
                out += &format!("  run error    {error}\n");
            }
        }
        None => out += "  run          none\n",
    }
    if let Some((t, targets, skipped)) = &s.last_decision {
        out += &format!(
            "  decision     {} {}\n",
            format_time(*t),
            skipped
                .as_ref()
                .map_or_else(|| format!("targets {targets}"), |r| format!("skipped: {r}"))
        );
    }
    if let Some((t, cash, equity, positions)) = &s.last_equity {
        out += &format!(
            "  equity       {equity:.2} USD (cash {cash:.2}) at {}\n  positions    {positions}\n",
            format_time(*t)
        );
    }
    out += &format!("  open orders  {}\n", s.unsettled_orders.len());
    for o in &s.unsettled_orders {
        out += &format!(
            "    {} {} {} {}\n",
            o.client_order_id,
            o.side.as_str(),
            o.symbol,
            o.status.as_str()
        );
    }
    match &v.live {
        Some(l) => {
            out += &format!(
                "  live         {} answers: RSS {:.1} MB, newest bar closed {:.0} s ago\n",
                l.url,
                l.rss_bytes.unwrap_or(0.0) / 1e6,
                l.last_bar_age_seconds.unwrap_or(f64::NAN)
            );
            if l.alerts_active.is_empty() {
                out += "  alerts       none active\n";
            }
            for (kind, n) in &l.alerts_active {
                out += &format!("  alerts       {kind}: {n} active\n");
            }
        }
        None => {
            out += "  live         no trader answering on the profile's metrics port (not running, or --no-metrics)\n";
        }
    }
    out
}

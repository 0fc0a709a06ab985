//! `trader status`'s view of a profile: what the store says about its
//! trader (newest bar per symbol, newest run, the ensemble version it
//! decides with, decision, equity and positions, orders that may still
//! change) and, when the trader is up, what its `/metrics` says (RSS,
//! newest bar's age, active alerts). Reads the store only; a missing store
//! file is an error, never created.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;
use trader_config::Profile;
use trader_core::{StoreLocation, format_time};
use trader_store::{ProfileStatus, Store};

/// What `trader status` shows (its JSON with `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusView {
    pub profile: String,
    /// The SQLite file, or the PostgreSQL URL without its password.
    pub store: String,
    /// Per symbol of the profile, its newest stored bar (None: none).
    pub newest_bars: Vec<(String, Option<String>)>,
    #[serde(flatten)]
    pub status: ProfileStatus,
    /// From the running trader's `/metrics`, when it answers.
    pub live: Option<LiveView>,
}

/// One profile of a store, as `trader status --all` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreProfileView {
    pub profile: String,
    /// Its trader's lock holder, when the store records one (PostgreSQL).
    pub held_by: Option<String>,
    #[serde(flatten)]
    pub status: ProfileStatus,
}

/// Every profile that ran in `location` (a store several traders share,
/// on several hosts): its newest run, decision, equity and open orders.
pub async fn gather_all(location: &StoreLocation) -> anyhow::Result<Vec<StoreProfileView>> {
    if let Some(path) = location.sqlite_path()
        && !path.exists()
    {
        bail!("no store at {}", path.display());
    }
    let store = Store::open(location, None).await?;
    let holders = store.lock_holders().await?;
    let mut views = Vec::new();
    for profile in store.profiles().await? {
        let status = store.profile_status(&profile).await?;
        views.push(StoreProfileView {
            held_by: holders.get(&profile).cloned(),
            profile,
            status,
        });
    }
    store.close().await;
    Ok(views)
}

/// What a running trader's `/metrics` says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveView {
    pub url: String,
    pub rss_bytes: Option<f64>,
    pub last_bar_age_seconds: Option<f64>,
    /// Alerts holding now, by kind.
    pub alerts_active: Vec<(String, f64)>,
}

/// Reads the trader's `/metrics` on 127.0.0.1:`port`, if it answers
/// within 2 s.
pub async fn live_view(port: u16) -> Option<LiveView> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
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

/// The view of `profile` in `store` (an error when it is a SQLite file
/// that does not exist: the trader has not run yet), and of its trader's
/// `/metrics` when the profile has a fixed port.
pub async fn gather(profile: &Profile, location: &StoreLocation) -> anyhow::Result<StatusView> {
    if let Some(path) = location.sqlite_path()
        && !path.exists()
    {
        bail!(
            "no store at {} (profile {}): the trader has not run yet",
            path.display(),
            profile.name
        );
    }
    let store = Store::open(location, None).await?;
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
    Ok(StatusView {
        profile: profile.name.clone(),
        store: location.to_string(),
        newest_bars,
        status,
        live,
    })
}

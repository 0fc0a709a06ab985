//! `trader sim`: the Alpaca-compatible simulator, standalone on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::Args;
use trader_config::AlpacaKeys;
use trader_core::HOUR_SECS;
use trader_sim::{ReplayClock, SimConfig, SimKeys, serve};

use crate::data_cmd::{read_csv, recorded_files};
use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Recorded set to replay (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    data: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Simulated seconds per real second (3600: one hour per second).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Simulated "now" at launch, RFC 3339 (default: 30 days before the last bar).
    #[arg(long)]
    start: Option<String>,
    /// TOML file of key pairs (`[[keys]] key_id = "..", secret_key = ".."`),
    /// one account each; the pair in APCA_API_KEY_ID/APCA_API_SECRET_KEY too.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Requests per key per minute before 429 (Alpaca's trading API: 200).
    #[arg(long, default_value_t = 200)]
    rate_limit: u32,
}

pub(crate) fn run(a: &SimArgs) -> anyhow::Result<Outcome> {
    if !(a.speed.is_finite() && a.speed > 0.0) {
        bail!("--speed {} must be a positive number", a.speed);
    }
    let mut pairs: Vec<AlpacaKeys> = AlpacaKeys::from_env()?.into_iter().collect();
    if let Some(path) = &a.keys {
        pairs.extend(AlpacaKeys::from_file(path)?);
    }
    if pairs.is_empty() {
        bail!("no key pairs: set APCA_API_KEY_ID and APCA_API_SECRET_KEY, or give --keys FILE");
    }
    let mut bars = BTreeMap::new();
    for (symbol, path) in recorded_files(&a.data)? {
        bars.insert(symbol, read_csv(&path)?);
    }
    let last = bars
        .values()
        .filter_map(|b| b.last())
        .map(|b| b.t)
        .max()
        .unwrap_or(0);
    let start = match &a.start {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--start {s:?} is not an RFC 3339 time"))?
            .to_utc(),
        None => DateTime::from_timestamp(last - 30 * 24 * HOUR_SECS, 0).unwrap_or_default(),
    };
    let config = SimConfig {
        bars,
        accounts: pairs
            .iter()
            .map(|k| SimKeys {
                key_id: k.key_id.expose().to_owned(),
                secret_key: k.secret_key.expose().to_owned(),
            })
            .collect(),
        starting_cash: 100_000.0,
        clock: Arc::new(ReplayClock::new(start, a.speed)),
        rate_limit_per_minute: a.rate_limit,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let handle = serve(config, a.port).await?;
        output::print(&handle.base_url());
        tracing::info!(
            accounts = pairs.len(),
            start = %start.to_rfc3339(),
            speed = a.speed,
            "simulator running; Ctrl-C stops it"
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        handle.stop().await;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}
